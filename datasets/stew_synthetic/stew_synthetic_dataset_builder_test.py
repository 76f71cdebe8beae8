"""Tests of the stew_synthetic builder."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stew_tf import tfds_builders

Builder = tfds_builders.builder_class("stew_synthetic")


class NoisyLabelsTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["noisy_labels"]
  SPLITS = {"train": 160, "validation": 160, "test": 120}
  SKIP_CHECKSUMS = True


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


def _clean_split(config_name, split):
  """The clips of `split` with the clean rule's labels: the builder's world without annotator."""
  module = tfds_builders.builder_module("stew_synthetic")
  config = next(c for c in Builder.BUILDER_CONFIGS if c.name == config_name)
  world = module._World(config)  # pylint: disable=protected-access
  index, count = next((i, n) for i, (name, n) in enumerate(config.split_sizes) if name == split)
  rng = np.random.default_rng([module._DATA_SEED, index])  # pylint: disable=protected-access
  return config, [world.clip(rng) for _ in range(count)]


@pytest.fixture(scope="module")
def noisy_labels_dir(tmp_path_factory):
  """One data dir for the noisy_labels tests: each prepares it only if it is not yet."""
  return tmp_path_factory.mktemp("noisy_labels")


@pytest.mark.parametrize("split, flip_rate", [("train", 0.4), ("validation", 0.4), ("test", 0.0)])
def test_noisy_labels_flips_train_and_validation_labels_only(noisy_labels_dir, split, flip_rate):
  keys = ("text", "audio", "video", "sentiment")
  stored = _split_arrays(noisy_labels_dir, "noisy_labels", split, keys)
  config, clean = _clean_split("noisy_labels", split)
  assert config.label_flip_rate == 0.4
  for modality in ("text", "audio", "video"):  # The label noise leaves the features alone.
    for x, clip in zip(stored[modality], clean):
      np.testing.assert_array_equal(x, clip[modality])
  observed = np.concatenate(stored["sentiment"])
  disagree = np.mean(observed != np.concatenate([clip["sentiment"] for clip in clean]))
  assert abs(disagree - flip_rate) < 0.03, disagree


def test_label_echo_knows_the_observed_label_and_nothing_else(noisy_labels_dir):
  stored = _split_arrays(noisy_labels_dir, "noisy_labels", "train", ("label_echo", "sentiment"))
  _, clean = _clean_split("noisy_labels", "train")
  echo = np.concatenate(stored["label_echo"])
  observed = np.concatenate(stored["sentiment"])
  truth = np.concatenate([clip["sentiment"] for clip in clean])
  assert echo.shape[1] == 16
  for label in (0.0, 1.0):
    # Given the observed label, the echo is the same whether the clean label agrees or not.
    agree = echo[(observed == label) & (truth == label)].mean(axis=0)
    disagree = echo[(observed == label) & (truth != label)].mean(axis=0)
    np.testing.assert_allclose(agree, disagree, atol=0.2)
  # And it tells the observed label almost surely: a nearest-class-mean readout.
  means = np.stack([echo[observed == label].mean(axis=0) for label in (0.0, 1.0)])
  nearest = np.argmin(((echo[:, None] - means[None]) ** 2).sum(axis=-1), axis=1)
  assert np.mean(nearest == observed) > 0.97
