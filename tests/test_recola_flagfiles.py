"""RECOLA flagfiles end to end on a small generated AVEC 2016 tree, through stew_tf.main (run from
another folder than the repository: the includes are relative to the flagfiles) and
stew_tf.reproduce (one epoch per stage: this checks that they run, not what they score). What
each flagfile resolves to is pinned by tests/test_flagfiles.py."""

import csv
import importlib
import json
import math

import pytest

from stew_tf import flagfiles
from stew_tf import tfds_builders
from tests.helpers import run_in_background
from tests.helpers import run_main


@pytest.fixture(scope="session")
def avec_tree(tmp_path_factory):
  """A 6 s AVEC 2016 tree: train_1 (4 train clips), train_9 (validation), dev_1 and dev_9 (test)."""
  if "recola" not in tfds_builders.available():
    pytest.skip("the RECOLA builder (datasets/recola/recola_dataset_builder.py) is missing")
  tfds_builders.builder_module("recola")  # imports the stew_datasets package
  make_dummy_data = importlib.import_module("stew_datasets.recola.make_dummy_data")
  return make_dummy_data.write_avec2016_tree(tmp_path_factory.mktemp("avec2016"),
                                             num_frames=150, recordings=(1, 9))


@pytest.fixture(scope="session")
def recola_data_dir(tmp_path_factory):
  """One TFDS data dir for all runs, so that each label's data is prepared once."""
  return tmp_path_factory.mktemp("recola_tfds")


FLAGFILES = {"arousal": "recola_arousal_audio_to_video_appearance_cm_stew.cfg",
             "valence": "recola_valence_video_appearance_to_audio_cm_stew.cfg"}


@pytest.fixture(scope="module")
def trained(avec_tree, recola_data_dir, tmp_path_factory):
  """{label: (workdir, CompletedProcess)} of a run of each of FLAGFILES, one epoch per stage,
  from a folder of its own (beside its workdir); both at once (each label's data is its own)."""
  workdirs = {label: tmp_path_factory.mktemp(label) / "work" for label in FLAGFILES}
  started = {label: run_in_background(
      f"--flagfile={flagfiles.FLAGFILE_DIR / flagfile}", f"--manual_dir={avec_tree}",
      f"--data_dir={recola_data_dir}", f"--workdir={workdirs[label]}", "--epochs=1",
      cwd=workdirs[label].parent) for label, flagfile in FLAGFILES.items()}
  return {label: (workdirs[label], future.result()) for label, future in started.items()}


def _results(trained, label):
  workdir, result = trained[label]
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  return json.loads((workdir / "results.json").read_text())


def test_arousal_cm_stew_flagfile(trained):
  results = _results(trained, "arousal")
  assert (results["label"], results["strong"], results["weak"], results["method"]) == (
      "arousal", "audio", "video_appearance", "cm_stew")
  assert math.isfinite(results["weak_model"]["test"]["ccc"])
  assert math.isfinite(results["strong_model"]["test"]["ccc"])
  assert results["epochs"] == {"stage1": 1, "stage2": 1}


def test_valence_cm_stew_flagfile(trained):
  results = _results(trained, "valence")
  assert (results["label"], results["strong"], results["weak"]) == (
      "valence", "video_appearance", "audio")
  assert math.isfinite(results["weak_model"]["test"]["ccc"])


def test_reproduce_runs_a_recola_experiment_and_tabulates_it(avec_tree, recola_data_dir,
                                                             tmp_path):
  out = tmp_path / "reproduce"
  result = run_main("--table=recola", "--only=recola_valence_audio_cls_only", "--seeds=1",
                    f"--manual_dir={avec_tree}", f"--data_dir={recola_data_dir}", f"--out={out}",
                    "--extra=--epochs=1 --patience=1", module="stew_tf.reproduce")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
  assert "[1/1] recola_valence_audio_cls_only seed 0: done in" in result.stdout
  (row,) = csv.DictReader(open(out / "results.csv"))
  assert (row["label"], row["method"], row["weak"], row["seeds"]) == (
      "valence", "cls_only", "audio", "1")
  assert math.isfinite(float(row["test_ccc_mean"])) and row["paper_test_ccc"] == "0.49000"
  assert "| valence | Classifier | audio | 1 |" in (out / "results.md").read_text()
