"""Tests of the stew_synthetic builder."""

import numpy as np
import tensorflow_datasets as tfds

from stew_tf import tfds_builders

Builder = tfds_builders.builder_class("stew_synthetic")


class MosiLikeTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["mosi_like"]
  SPLITS = {"train": 160, "validation": 40, "test": 120}
  SKIP_CHECKSUMS = True


class RecolaLikeTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["recola_like"]
  SPLITS = {"train": 96, "validation": 24, "test": 48}
  SKIP_CHECKSUMS = True


def _split_arrays(data_dir, config, split, keys):
  builder = Builder(config=config, data_dir=str(data_dir))
  builder.download_and_prepare()
  examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
  examples.sort(key=lambda ex: ex["clip_id"])
  return {key: [ex[key] for ex in examples] for key in keys}


def test_generation_is_deterministic_and_shaped_like_mosi(tmp_path):
  keys = ("text", "audio", "video", "sentiment")
  first = _split_arrays(tmp_path / "a", "mosi_like", "validation", keys)
  second = _split_arrays(tmp_path / "b", "mosi_like", "validation", keys)
  for key in keys:
    for x, y in zip(first[key], second[key]):
      np.testing.assert_array_equal(x, y)
  lengths = [len(labels) for labels in first["sentiment"]]
  assert min(lengths) >= 12 and max(lengths) <= 40
  assert first["text"][0].shape[1] == 100 and first["audio"][0].shape[1] == 73
  assert set(np.concatenate(first["sentiment"]).tolist()) == {0.0, 1.0}


def _linear_probe_accuracy(train, test, modality):
  """Least-squares linear classifier on single segments (a numpy reference, no TF)."""
  def stack(split):
    x = np.concatenate(split[modality])
    x = np.hstack([x, np.ones((len(x), 1))])
    return x, np.concatenate(split["sentiment"])
  x_train, y_train = stack(train)
  x_test, y_test = stack(test)
  weights, *_ = np.linalg.lstsq(x_train, 2 * y_train - 1, rcond=None)
  return np.mean((x_test @ weights > 0) == (y_test > 0.5))


def test_strong_modality_is_strong_and_weak_ones_are_weak(tmp_path):
  keys = ("text", "audio", "video", "sentiment")
  train = _split_arrays(tmp_path, "mosi_like", "train", keys)
  test = _split_arrays(tmp_path, "mosi_like", "test", keys)
  text = _linear_probe_accuracy(train, test, "text")
  audio = _linear_probe_accuracy(train, test, "audio")
  video = _linear_probe_accuracy(train, test, "video")
  assert text > 0.85, text
  assert audio < text - 0.1 and video < text - 0.1, (text, audio, video)
  # Weak, not useless: the shared factor is there to be found.
  assert audio > 0.55 and video > 0.55, (audio, video)


def test_recola_like_targets_are_in_range(tmp_path):
  arrays = _split_arrays(tmp_path, "recola_like", "test", ("arousal", "valence", "video_geometric"))
  for target in ("arousal", "valence"):
    values = np.concatenate(arrays[target])
    assert values.min() >= -1 and values.max() <= 1 and values.std() > 0.1
  assert all(x.shape == (75, 632) for x in arrays["video_geometric"])
