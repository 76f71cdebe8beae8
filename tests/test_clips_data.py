"""--dataset=clips through stew_tf.data: batches, caching in --data_dir, re-preparing on edits."""

import importlib

import numpy as np

from stew_tf import data
from stew_tf import tfds_builders

tfds_builders.builder_module("clips")
make_dummy_data = importlib.import_module("stew_datasets.clips.make_dummy_data")
SPEC = {"task": "regression", "modalities": {"face": 2, "voice": 3}, "label_range": [0, 5]}


def test_batches_hold_the_arrays_with_their_mask(tmp_path):
  arrays = make_dummy_data.write_folder(tmp_path / "own", SPEC, time=5, seed=7)["validation"]
  builder = data.make_builder("clips", "label", str(tmp_path / "tfds"), str(tmp_path / "own"))
  split = data.load_split(builder, "validation", ["voice"], "label", batch_size=8)
  (batch,) = list(split.batches())
  order = np.argsort([ex["clip_index"] for ex in builder.as_dataset(split="validation",
                                                                   shuffle_files=False)])
  lengths = arrays["lengths"]
  mask = batch["mask"].numpy()[order]
  np.testing.assert_array_equal(mask.sum(axis=1), lengths)
  assert mask.shape[1] == lengths.max()
  time = mask.shape[1]
  real = mask[:, :, None]
  np.testing.assert_array_equal(np.where(real, batch["features"]["voice"].numpy()[order], 0),
                                np.where(real, arrays["voice"][:, :time], 0))
  np.testing.assert_array_equal(np.where(mask, batch["labels"].numpy()[order], 0),
                                np.where(mask, arrays["labels"][:, :time], 0))


def test_prepared_once_per_folder_content(tmp_path):
  folder, data_dir = tmp_path / "own", str(tmp_path / "tfds")
  make_dummy_data.write_folder(folder, SPEC, seed=1)
  first = data.make_builder("clips", "label", data_dir, str(folder))
  assert data.make_builder("clips", "label", data_dir, str(folder)).data_dir == first.data_dir
  labels = make_dummy_data.write_folder(folder, SPEC, seed=2)["train"]["labels"]  # edited folder
  second = data.make_builder("clips", "label", data_dir, str(folder))
  assert second.data_dir != first.data_dir
  train = {ex["clip_index"]: ex["label"]
           for ex in second.as_dataset(split="train").as_numpy_iterator()}
  np.testing.assert_array_equal(train[0], labels[0])  # clip 0 has no padding
