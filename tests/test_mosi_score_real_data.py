"""sentiment_score of the mosi builder on the real files at <repo>/../shared/data/mosi (else skipped).

The reference is a plain csv join of OpinionLevelSentiment.csv with transcripts.csv, independent of
the builder's readers.
"""

import csv

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stew_tf import tfds_builders
from tests.helpers import SHARED_DATA

MOSI_DIR = SHARED_DATA / "mosi"
SCORE_FILE = MOSI_DIR / "labels" / "OpinionLevelSentiment.csv"


@pytest.fixture(scope="module")
def reference():
  """{utterance key: (binary label, score)} joined with the csv module."""
  if not SCORE_FILE.exists():
    pytest.skip(f"CMU-MOSI score file not found at {SCORE_FILE}")
  with open(MOSI_DIR / "transcripts.csv", newline="") as f:
    labels = {cells[0]: float(cells[3]) for cells in csv.reader(f)}
  with open(SCORE_FILE, newline="") as f:
    scores = {f"{cells[2]}_{cells[3]}": float(cells[4]) for cells in csv.reader(f)}
  assert set(scores) == set(labels)
  return {key: (labels[key], scores[key]) for key in labels}


def test_every_utterance_has_a_score_agreeing_with_its_label(reference):
  assert len(reference) == 2199
  assert all(label == float(score >= 0) for label, score in reference.values())
  assert sum(score == 0 for _, score in reference.values()) == 96  # MANIFEST: positive in binary


def test_builder_examples_carry_the_joined_scores(reference, tmp_path):
  builder = tfds_builders.builder_class("mosi")(data_dir=str(tmp_path))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(MOSI_DIR)))
  seen = {}
  for split in ("train", "validation", "test"):
    for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
      for key, score in zip(ex["segment_ids"], ex["sentiment_score"]):
        seen[key.decode()] = (split, score)
  assert len(seen) == 2199
  for key, (_, score) in seen.items():
    assert score == np.float32(reference[key][1]), key
  test = np.array([score for split, score in seen.values() if split == "test"], np.float64)
  # MANIFEST: test mean 0.37, sd 1.47 over 752 utterances.
  assert len(test) == 752
  assert round(test.mean(), 2) == 0.37 and round(test.std(), 2) == 1.47
