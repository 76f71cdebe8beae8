"""--dataset=clips: every inconsistency of a folder is one DataError line naming file, key, clip."""

import importlib
import json
import re

import numpy as np
import pytest

from stew_tf import data
from stew_tf import tfds_builders

tfds_builders.builder_module("clips")
make_dummy_data = importlib.import_module("stew_datasets.clips.make_dummy_data")

# time 6; train has 3 clips, the first without padding.
CLASSIFICATION = {"task": "classification", "modalities": {"text": 4, "audio": 3}}
REGRESSION = {"task": "regression", "modalities": {"audio": 3}, "label_range": [-3, 3]}


def _folder(tmp_path, spec=CLASSIFICATION):
  folder = tmp_path / "own"
  make_dummy_data.write_folder(folder, spec, seed=3)
  return folder


def _edit_npz(folder, split, edit):
  path = folder / f"{split}.npz"
  with np.load(path) as npz:
    arrays = dict(npz)
  edit(arrays)
  np.savez(path, **arrays)
  return path


def _set(key, index, value, dtype=None):
  def edit(arrays):
    if dtype is not None:
      arrays[key] = arrays[key].astype(dtype)
    arrays[key][index] = value
  return edit


def _replace(key, value):
  def edit(arrays):
    arrays[key] = value(arrays) if callable(value) else value
  return edit


def _drop(key):
  def edit(arrays):
    del arrays[key]
  return edit


def _prepare(folder, tmp_path):
  return data.make_builder("clips", "label", str(tmp_path / "tfds"), str(folder))


def _expect_one_line(tmp_path, folder, expected):
  with pytest.raises(data.DataError) as error:
    _prepare(folder, tmp_path)
  message = str(error.value)
  assert "\n" not in message
  assert re.search(expected, message), message
  return message


# (spec, split, edit, expected message after "<folder>/<split>.npz: ")
NPZ_DEFECTS = {
    "missing_modality": (CLASSIFICATION, "validation", _drop("audio"),
                         "key 'audio': missing; expected the keys labels, lengths, text, audio"),
    "missing_lengths": (CLASSIFICATION, "train", _drop("lengths"), "key 'lengths': missing"),
    "unknown_key": (CLASSIFICATION, "test", _replace("video", np.zeros((2, 6, 1))),
                    "key 'video': not a modality of spec.json"),
    "wrong_dim": (CLASSIFICATION, "train", _replace("audio", np.zeros((3, 6, 2))),
                  re.escape("key 'audio': expected shape [clips, time, dim] (clips and time as "
                            "'labels', dim from spec.json) = [3, 6, 3], got [3, 6, 2]")),
    "time_mismatch": (CLASSIFICATION, "train", _replace("text", np.zeros((3, 5, 4))),
                      re.escape("key 'text': expected shape [clips, time, dim]")),
    "length_too_long": (CLASSIFICATION, "train", _set("lengths", 1, 7),
                        "key 'lengths', clip 1: expected 1 to 6 real segments"),
    "length_zero": (CLASSIFICATION, "test", _set("lengths", 1, 0),
                    "key 'lengths', clip 1: expected 1 to 6 real segments .*, got 0"),
    "lengths_not_integer": (CLASSIFICATION, "train",
                            _replace("lengths", lambda arrays: arrays["lengths"] * 1.0),
                            "key 'lengths': expected a 1-D integer array"),
    "nan_feature": (CLASSIFICATION, "train", _set("audio", (2, 0, 1), np.nan),
                    "key 'audio', clip 2, segment 0: expected finite features in a real "
                    "segment, got nan in feature 1"),
    "float32_overflow": (CLASSIFICATION, "train", _set("text", (0, 5, 3), 1e39, np.float64),
                         "key 'text', clip 0, segment 5: .*got 1e\\+39 in feature 3"),
    "inf_label": (CLASSIFICATION, "validation", _set("labels", (0, 2), np.inf),
                  "key 'labels', clip 0, segment 2: expected a finite label in a real segment, "
                  "got inf"),
    "label_not_binary": (CLASSIFICATION, "test", _set("labels", (1, 0), 0.5),
                         "key 'labels', clip 1, segment 0: expected a classification label, 0 "
                         "or 1, got 0.5"),
    "label_out_of_range": (REGRESSION, "train", _set("labels", (2, 0), 3.5),
                           re.escape("key 'labels', clip 2, segment 0: expected a label in the "
                                     "label_range [-3, 3] of spec.json, got 3.5")),
    "empty_split": (REGRESSION, "validation", _replace("lengths", np.zeros(0, np.int64)),
                    "key 'lengths': expected at least one clip, got an empty split"),
    "strings": (REGRESSION, "train", _replace("labels", np.full((3, 6), "x")),
                "key 'labels': expected numbers, got dtype <U1"),
}


@pytest.mark.parametrize("name", sorted(NPZ_DEFECTS))
def test_npz_defect_names_file_key_and_clip(name, tmp_path):
  spec, split, edit, expected = NPZ_DEFECTS[name]
  folder = _folder(tmp_path, spec)
  path = _edit_npz(folder, split, edit)
  _expect_one_line(tmp_path, folder, f"^--dataset=clips: {re.escape(str(path))}: {expected}")


def test_padding_is_not_checked(tmp_path):
  folder = _folder(tmp_path, REGRESSION)
  # Clip 1 of train is padded (lengths[0] is the only full one); its tail may hold anything.
  with np.load(folder / "train.npz") as npz:
    length = int(npz["lengths"][1])
  assert length < 6  # the generator's seed makes clip 1 padded
  _edit_npz(folder, "train", _set("labels", (1, 5), 99.0))
  builder = _prepare(folder, tmp_path)
  assert builder.info.splits["train"].num_examples == 3


SPEC_DEFECTS = {
    "not_json": ('{"task": "classification",', "spec.json: expected JSON"),
    "not_an_object": ("[1, 2]", "spec.json: expected a JSON object"),
    "bad_task": ('{"task": "ranking", "modalities": {"a": 1}}', "spec.json: key 'task': expected "
                 "one of 'classification', 'regression', got 'ranking'"),
    "no_modalities": ('{"task": "regression"}', "spec.json: key 'modalities': expected an object"),
    "bad_dim": ('{"task": "regression", "modalities": {"a": 0}}',
                "spec.json: key 'modalities': expected a positive integer feature dimension for "
                "'a', got 0"),
    "reserved_name": ('{"task": "regression", "modalities": {"labels": 3}}',
                      "spec.json: key 'modalities': expected names of"),
    "unknown_key": ('{"task": "regression", "modalities": {"a": 3}, "range": [0, 1]}',
                    "spec.json: key 'range': unknown; expected only task, modalities, label_range"),
    "bad_range": ('{"task": "regression", "modalities": {"a": 3}, "label_range": [1, 1]}',
                  re.escape("spec.json: key 'label_range': expected [low, high], two finite "
                            "numbers with low < high, got [1, 1]")),
    "range_for_classification": (
        '{"task": "classification", "modalities": {"a": 3}, "label_range": [0, 1]}',
        "spec.json: key 'label_range': applies to \"task\": \"regression\" only"),
}


@pytest.mark.parametrize("name", sorted(SPEC_DEFECTS))
def test_spec_defect_names_the_key(name, tmp_path):
  text, expected = SPEC_DEFECTS[name]
  folder = _folder(tmp_path)
  (folder / "spec.json").write_text(text)
  for call in (lambda: data.get_spec("clips", str(folder)), lambda: _prepare(folder, tmp_path)):
    with pytest.raises(data.DataError, match=expected) as error:
      call()
    assert "\n" not in str(error.value)


def test_missing_file_is_named(tmp_path):
  folder = _folder(tmp_path)
  (folder / "validation.npz").unlink()
  _expect_one_line(tmp_path, folder, re.escape(f"{folder / 'validation.npz'}: missing"))


def test_a_file_that_is_not_npz_is_named(tmp_path):
  folder = _folder(tmp_path)
  (folder / "test.npz").write_text("clip,label\n")
  _expect_one_line(tmp_path, folder, re.escape(f"{folder / 'test.npz'}: expected an .npz file "
                                               "written by numpy.savez"))


def test_manual_dir_is_required(tmp_path):
  for manual_dir, expected in ((None, "--dataset=clips needs --manual_dir=DIR"),
                               (str(tmp_path / "absent"), "is not a folder")):
    with pytest.raises(data.DataError, match=expected):
      data.get_spec("clips", manual_dir)
    with pytest.raises(data.DataError, match=expected):
      data.make_builder("clips", "label", str(tmp_path), manual_dir)


def test_spec_json_fields_reach_the_dataset_spec(tmp_path):
  folder = _folder(tmp_path, REGRESSION)
  spec = data.get_spec("clips", str(folder))
  assert spec.modalities == {"audio": 3} and spec.labels == ("label",)
  assert spec.task_of("label") == "regression" and spec.label_range("label") == (-3.0, 3.0)
  (folder / "spec.json").write_text(json.dumps({"task": "regression", "modalities": {"a": 2}}))
  assert data.get_spec("clips", str(folder)).label_range("label") == (-1.0, 1.0)  # the default
  classification = data.get_spec("clips", str(_folder(tmp_path / "c")))
  assert classification.modalities == {"text": 4, "audio": 3}
  assert classification.task_of("label") == "classification"
  assert classification.label_range("label") is None
  assert "clips" in data.DATASETS
