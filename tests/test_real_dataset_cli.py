"""--dataset=mosi / recola through the CLI: offline errors, and training on the builders' dummy data."""

import json

import numpy as np
import pytest

from tests.helpers import REPO_ROOT
from tests.helpers import run_main
from tests.helpers import run_mains


def test_mosi_without_files_names_the_flag_to_use(tmp_path):
  result = run_main("--dataset=mosi", f"--data_dir={tmp_path}", f"--workdir={tmp_path / 'w'}",
                    timeout=120)
  assert result.returncode == 1
  assert "pass --manual_dir=FOLDER, or pass --download" in result.stderr
  assert "Traceback" not in result.stderr


def test_mosi_with_an_incomplete_manual_dir_lists_the_missing_files(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "transcripts.csv").write_text("")
  result = run_main("--dataset=mosi", f"--manual_dir={manual}", f"--data_dir={tmp_path}",
                    f"--workdir={tmp_path / 'w'}", timeout=120)
  assert result.returncode == 1
  assert "lacks 9 file(s) of --dataset=mosi" in result.stderr
  assert f"{manual}/audio/audio_test0.csv  <-  https://" in result.stderr
  assert "Traceback" not in result.stderr


TRAININGS = [
    ("sentiment", "enc_cls", {"accuracy", "f1_weighted", "balanced_accuracy"}),
    # The dummy clips are too short for DCCA's covariances, so the transfer run is no_lfa.
    ("sentiment_score", "no_lfa", {"ccc", "pearson_r", "mae", "acc7", "acc2_non0", "f1_has0"}),
]


@pytest.fixture(scope="module")
def trainings(tmp_path_factory):
  """{label: (workdir, CompletedProcess)} of each run of TRAININGS, each preparing the data in a
  folder of its own; both runs at once (helpers.run_mains)."""
  folders = [tmp_path_factory.mktemp(label) for label, _, _ in TRAININGS]
  manual_dir = REPO_ROOT / "datasets" / "mosi" / "dummy_data"
  results = run_mains(*([
      "--dataset=mosi", f"--label={label}", f"--method={method}", "--strong=text",
      "--weak=audio", "--epochs=1", f"--manual_dir={manual_dir}", f"--data_dir={folder}",
      f"--workdir={folder / 'w'}"] for folder, (label, method, _) in zip(folders, TRAININGS)))
  return {label: (folder / "w", result)
          for folder, (label, _, _), result in zip(folders, TRAININGS, results)}


@pytest.mark.parametrize("label, method, metrics", TRAININGS)
def test_mosi_trains_end_to_end_from_a_manual_dir(trainings, label, method, metrics):
  workdir, result = trainings[label]
  assert result.returncode == 0, result.stderr[-3000:]
  results = json.loads((workdir / "results.json").read_text())
  assert results["dataset"] == "mosi" and results["epochs"] == {"stage1": 0, "stage2": 1}
  assert metrics <= set(results["weak_model"]["test"])
  with np.load(workdir / "predictions.npz") as arrays:
    scores = arrays["test_score"]
  # The regression head answers on the score's own scale, [-3, 3].
  assert np.all(np.abs(scores) <= (3.0 if label == "sentiment_score" else 1.0))
