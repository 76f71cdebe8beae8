"""Damaged stored state is named, or rebuilt with a line saying so, never read silently: a stage's
checkpoints and done marker (stage_state.py) and the prepared data (data.load_split)."""

import json
import os
import shutil
import struct

import keras
import numpy as np
import pytest

from stew_tf import data
from stew_tf import records
from stew_tf import stage_state
from tests.helpers import run_main

REMEDY = "delete {stage} and rerun: the stage trains again"


def _truncate(path, size=None):
  os.truncate(path, os.path.getsize(path) // 2 if size is None else size)


def _open(directory):
  """A StageState of a small model with dropout (so that a generator state is checkpointed)."""
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                            keras.layers.Dropout(0.5, seed=1), keras.layers.Dense(1)],
                           name="weak")
  return stage_state.StageState(str(directory), [model], keras.optimizers.Adam()), model


def _train(directory, values, finish=False):
  """Ends one epoch per selection value, the weights changed before each; returns the weights
  after each epoch (the reference a resume must restore)."""
  state, model = _open(directory)
  weights = {}
  for epoch, value in enumerate(values, 1):
    model.set_weights([w + epoch for w in model.get_weights()])
    state.end_epoch(epoch, value)
    weights[epoch] = model.get_weights()
  if finish:
    state.finish()
  return weights


@pytest.fixture(name="stage_dir")
def fixture_stage_dir(tmp_path):
  """A stage's folder, its real path (which StageState's messages name)."""
  return tmp_path.resolve()


def _assert_weights(model, expected):
  for actual, wanted in zip(model.get_weights(), expected, strict=True):
    np.testing.assert_array_equal(actual, wanted)


def test_a_damaged_newest_epoch_is_trained_again_from_the_one_before(stage_dir):
  weights = _train(stage_dir, [0.5, 0.6])
  last = stage_dir / "last"
  # The files of epoch 2 were both damaged (say, the last ones written before a disk failed):
  # best/ckpt-2 is rewritten when epoch 2 runs again, so it is no reason to stop.
  _truncate(last / "ckpt-2.data-00000-of-00001")
  _truncate(stage_dir / "best" / "ckpt-2.index", 10)
  state, model = _open(stage_dir)
  lines = []
  assert state.resume(lines.append) == str(last / "ckpt-1")
  assert lines == [f"checkpoint {last / 'ckpt-2'} is truncated or corrupted; resuming from "
                   f"{last / 'ckpt-1'} instead (epoch 2 is trained again, with the same result)"]
  assert state.finished_epochs == 1
  _assert_weights(model, weights[1])


def test_every_last_checkpoint_damaged_names_the_folder_and_changes_nothing(stage_dir):
  _train(stage_dir, [0.5, 0.6])
  for number in (1, 2):
    _truncate(stage_dir / "last" / f"ckpt-{number}.index", 10)
  state, model = _open(stage_dir)
  fresh = model.get_weights()
  with pytest.raises(records.RecordError) as error:
    state.resume()
  assert str(error.value) == (
      f"no checkpoint in {stage_dir / 'last'} can be read (ckpt-2 is truncated or corrupted, "
      f"ckpt-1 is truncated or corrupted); {REMEDY.format(stage=stage_dir)}")
  _assert_weights(model, fresh)
  assert state.finished_epochs == 0
  assert sorted(os.listdir(stage_dir / "last")) == [
      "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index", "ckpt-2.data-00000-of-00001",
      "ckpt-2.index"]  # nothing deleted


@pytest.mark.parametrize("size", [0, 10, 60])  # empty; cut in the first line; in the second
def test_a_damaged_list_of_checkpoints_is_rebuilt_from_the_files(stage_dir, size):
  weights = _train(stage_dir, [0.5, 0.4, 0.3])
  _truncate(stage_dir / "last" / "checkpoint", size)
  state, model = _open(stage_dir)
  assert state.notes == [f"{stage_dir / 'last' / 'checkpoint'} (the list of the checkpoints "
                         "there) was damaged; rebuilt it from the checkpoint files (ckpt-2, ckpt-3)"]
  assert state.resume() == str(stage_dir / "last" / "ckpt-3")
  _assert_weights(model, weights[3])
  assert int(state.epochs_without_improvement.numpy()) == 2
  # The rebuilt list keeps its bound of two: the next epoch's save removes ckpt-2.
  state.end_epoch(4, 0.2)
  assert sorted(name for name in os.listdir(stage_dir / "last") if name.endswith(".index")) == [
      "ckpt-3.index", "ckpt-4.index"]


@pytest.mark.parametrize("damage", ['{\n  "epochs": 2,\n  "best_', "[]"])
def test_a_damaged_done_marker_is_written_again_from_the_checkpoints(stage_dir, damage):
  _train(stage_dir, [0.5, 0.6, 0.55], finish=True)
  done_path = stage_dir / "done.json"
  before = json.loads(done_path.read_text())
  done_path.write_text(damage)
  state, _ = _open(stage_dir)
  lines = []
  assert state.done(lines.append) is None
  assert len(lines) == 1 and lines[0].startswith(f"{done_path} is damaged (")
  assert lines[0].endswith("; it is written again from the stage's checkpoints")
  state.resume()
  assert not state.wants_more(epochs=3, patience=10)
  assert state.finish() == before == {"epochs": 3, "best_epoch": 2, "best_value": 0.6}
  assert json.loads(done_path.read_text()) == before


def test_a_damaged_best_checkpoint_names_the_folder_to_delete(stage_dir):
  _train(stage_dir, [0.5, 0.6], finish=True)
  _truncate(stage_dir / "best" / "ckpt-2.index", 10)
  state, _ = _open(stage_dir)
  expected = (f"checkpoint {stage_dir / 'best' / 'ckpt-2'} is truncated or corrupted; "
              f"{REMEDY.format(stage=stage_dir)}")
  with pytest.raises(records.RecordError) as error:
    state.load_best()
  assert str(error.value) == expected
  with pytest.raises(records.RecordError) as error:
    state.resume()
  assert str(error.value) == expected


@pytest.fixture(name="prepared_copy")
def fixture_prepared_copy(tfds_dir, tmp_path):
  """A copy of the session's prepared synthetic data (so that it can be damaged)."""
  builder = data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))
  copy = tmp_path / "tfds"
  relative = os.path.relpath(builder.data_dir, tfds_dir)
  shutil.copytree(builder.data_dir, copy / relative)
  return copy, copy / relative


def test_a_split_holds_the_prepared_examples_in_their_order(tfds_dir):
  builder = data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))
  split = data.load_split(builder, "validation", ["text", "audio"], "sentiment", 8)
  plain = builder.as_dataset(split="validation", shuffle_files=False).as_numpy_iterator()
  for loaded, example in zip(split.dataset.as_numpy_iterator(), plain, strict=True):
    np.testing.assert_array_equal(loaded["features"]["audio"], example["audio"])
    np.testing.assert_array_equal(loaded["features"]["text"], example["text"])
    np.testing.assert_array_equal(loaded["labels"], example["sentiment"])


def _record_boundary(path, records_kept):
  """The byte offset after `records_kept` TFRecords (8-byte length, 4-byte CRC, data, CRC)."""
  offset = 0
  with open(path, "rb") as f:
    for _ in range(records_kept):
      f.seek(offset)
      (length,) = struct.unpack("<Q", f.read(8))
      offset += 16 + length
  return offset


@pytest.mark.parametrize("cut, problem", [
    ("middle", "is damaged (truncated or corrupted)"),
    ("boundary", "holds 80 examples instead of 160 (truncated)"),
])
def test_a_damaged_prepared_data_file_stops_with_one_line(prepared_copy, tmp_path, cut, problem):
  data_dir, folder = prepared_copy
  shard = next(folder.glob("*-train.tfrecord-*"))
  _truncate(shard, None if cut == "middle" else _record_boundary(shard, 80))
  result = run_main("--method=cls_only", "--weak=audio", f"--workdir={tmp_path / 'work'}",
                    f"--data_dir={data_dir}", timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: prepared data file {shard} {problem}; delete the folder {folder} and rerun the "
      "same command: the dataset is prepared again")
  assert "Traceback" not in result.stderr and "epoch" not in result.stdout


def test_a_damaged_dataset_info_names_the_folder_to_delete(prepared_copy):
  data_dir, folder = prepared_copy
  _truncate(folder / "dataset_info.json", 100)
  with pytest.raises(data.DataError) as error:
    data.make_builder("stew_synthetic", "sentiment", str(data_dir))
  config_folder = folder.parent
  assert str(error.value) == (
      f"the prepared data in {config_folder} is damaged (its dataset_info.json cannot be read); "
      f"delete the folder {config_folder} and rerun the same command: the dataset is prepared "
      "again")


def test_a_damaged_checkpoint_stops_the_command_with_one_line_and_its_remedy_works(
    tfds_dir, tmp_path):
  work = tmp_path.resolve() / "work"
  args = ["--method=cls_only", "--weak=audio", "--epochs=1", f"--workdir={work}",
          f"--data_dir={tfds_dir}"]
  first = run_main(*args)
  assert first.returncode == 0, first.stderr[-3000:]
  results = json.loads((work / "results.json").read_text())
  stage = work / "checkpoints" / "stage1"
  _truncate(stage / "best" / "ckpt-1.index", 100)
  damaged = run_main(*args)
  assert damaged.returncode == 1, damaged.stderr[-3000:]
  assert damaged.stderr.strip().splitlines()[-1] == (
      f"error: checkpoint {stage / 'best' / 'ckpt-1'} is truncated or corrupted; "
      f"{REMEDY.format(stage=stage)}")
  assert "Traceback" not in damaged.stderr
  shutil.rmtree(stage)
  again = run_main(*args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "[stage1 audio] epoch   1/1" in again.stdout
  rerun = json.loads((work / "results.json").read_text())
  assert {k: rerun[k] for k in ("weak_model", "kept_epoch")} == {
      k: results[k] for k in ("weak_model", "kept_epoch")}
