"""Tests of the clips builder on dummy_data/ (both tasks) and on generated folders."""

import importlib

import numpy as np
import tensorflow_datasets as tfds

from stew_tf import tfds_builders

Builder = tfds_builders.builder_class("clips")
clips = tfds_builders.builder_module("clips")
make_dummy_data = importlib.import_module("stew_datasets.clips.make_dummy_data")
DUMMY_DATA = make_dummy_data.DUMMY_DATA


class _FolderTestCase(tfds.testing.DatasetBuilderTestCase):
  """Tests the config of the dummy folder EXAMPLE_DIR (the builder has no config of its own)."""
  DATASET_CLASS = Builder
  SPLITS = make_dummy_data.CLIPS

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.BUILDER_CONFIG_NAMES_TO_TEST = [clips.config_from_dir(cls.EXAMPLE_DIR)]

  def _make_builder(self, config=None):
    return super()._make_builder(config=config or self.BUILDER_CONFIG_NAMES_TO_TEST[0])


class ClassificationTest(_FolderTestCase):
  EXAMPLE_DIR = str(DUMMY_DATA / "classification")


class RegressionTest(_FolderTestCase):
  EXAMPLE_DIR = str(DUMMY_DATA / "regression")


del _FolderTestCase  # not a test of its own


def _prepare(folder, data_dir):
  builder = Builder(config=clips.config_from_dir(folder), data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(folder)))
  return builder


def test_examples_are_the_arrays_cut_to_their_lengths(tmp_path):
  spec = {"task": "regression", "modalities": {"face": 2, "voice": 3}, "label_range": [0, 10]}
  arrays = make_dummy_data.write_folder(tmp_path / "own", spec, clips={
      "train": 4, "validation": 2, "test": 3}, time=7, seed=5)
  builder = _prepare(tmp_path / "own", tmp_path / "data")
  assert builder.info.features["face"].shape == (None, 2)
  for split, expected in arrays.items():
    examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
    assert sorted(ex["clip_index"] for ex in examples) == list(range(len(expected["lengths"])))
    for ex in examples:
      clip = ex["clip_index"]
      length = expected["lengths"][clip]
      np.testing.assert_array_equal(ex["label"], expected["labels"][clip, :length])
      for name in ("face", "voice"):
        np.testing.assert_array_equal(ex[name], expected[name][clip, :length])
        assert not np.isnan(ex[name]).any()  # the NaN padding is cut off


def test_config_name_follows_the_files(tmp_path):
  spec = make_dummy_data.FOLDERS["classification"]
  make_dummy_data.write_folder(tmp_path / "a", spec, seed=1)
  make_dummy_data.write_folder(tmp_path / "b", spec, seed=1)
  same = clips.config_from_dir(tmp_path / "a").name
  assert clips.config_from_dir(tmp_path / "b").name == same  # same contents, other folder
  make_dummy_data.write_folder(tmp_path / "b", spec, seed=2)  # new values
  assert clips.config_from_dir(tmp_path / "b").name != same
  make_dummy_data.write_folder(tmp_path / "b", spec, seed=1)
  (tmp_path / "b" / "spec.json").write_text(
      '{"task": "classification", "modalities": {"text": 4, "audio": 3}}')  # new layout only
  assert clips.config_from_dir(tmp_path / "b").name != same
