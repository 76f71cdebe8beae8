"""The mosi builder on the real CMU-MOSI files at <repo>/../shared/data/mosi (skipped if absent)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stew_tf import tfds_builders
from tests.helpers import SHARED_DATA

MOSI_DIR = SHARED_DATA / "mosi"


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
  """{split: [example]} prepared once from the real files used as the manual dir."""
  if not MOSI_DIR.is_dir():
    pytest.skip(f"CMU-MOSI files not found at {MOSI_DIR}")
  builder = tfds_builders.builder_class("mosi")(data_dir=str(tmp_path_factory.mktemp("mosi_real")))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(MOSI_DIR)))
  return {split: list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
          for split in ("train", "validation", "test")}


def _utterances(examples):
  return sum(len(ex["sentiment"]) for ex in examples)


def test_split_sizes(splits):
  assert sum(len(examples) for examples in splits.values()) == 93
  assert len(splits["test"]) == 31 and _utterances(splits["test"]) == 752
  assert len(splits["train"]) + len(splits["validation"]) == 62
  assert _utterances(splits["train"]) + _utterances(splits["validation"]) == 1447
  # The paper's sizes: 52 (1151), 10 (296), 31 (752) videos (utterances).
  assert (len(splits["train"]), _utterances(splits["train"])) == (52, 1151)
  assert (len(splits["validation"]), _utterances(splits["validation"])) == (10, 296)
  clips = [ex["clip_id"] for examples in splits.values() for ex in examples]
  assert len(set(clips)) == 93


def test_labels(splits):
  test_labels = np.concatenate([ex["sentiment"] for ex in splits["test"]])
  assert (np.sum(test_labels == 0), np.sum(test_labels == 1)) == (285, 467)
  train_labels = np.concatenate([ex["sentiment"]
                                 for ex in splits["train"] + splits["validation"]])
  assert (np.sum(train_labels == 0), np.sum(train_labels == 1)) == (738, 709)


def test_features(splits):
  for examples in splits.values():
    for ex in examples:
      length = len(ex["sentiment"])
      assert ex["text"].shape == (length, 100) and ex["video"].shape == (length, 100)
      assert ex["audio"].shape == (length, 73) and ex["segment_ids"].shape == (length,)
      assert all(np.isfinite(ex[m]).all() for m in ("text", "audio", "video"))
      clip = ex["clip_id"].decode()
      prefixes, numbers = zip(*(s.decode().rsplit("_", 1) for s in ex["segment_ids"]))
      assert set(prefixes) == {clip}
      assert list(map(int, numbers)) == sorted(map(int, numbers))


def test_validation_videos_follow_the_documented_rule(splits):
  module = tfds_builders.builder_module("mosi")
  sizes = {ex["clip_id"].decode(): len(ex["sentiment"])
           for ex in splits["train"] + splits["validation"]}
  assert {ex["clip_id"].decode() for ex in splits["validation"]} == module.VALIDATION_VIDEOS
  seed = 0
  while True:
    pick = np.random.default_rng(seed).choice(sorted(sizes), 10, replace=False)
    if sum(sizes[v] for v in pick) == 296:
      break
    seed += 1
  assert seed == module.VALIDATION_SEED
  assert set(pick.tolist()) == module.VALIDATION_VIDEOS
