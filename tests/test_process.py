"""The command as a process: its first screen holds stew_tf's lines only (TensorFlow's log stays
available through TF_CPP_MIN_LOG_LEVEL), and SIGTERM (what Slurm and Kubernetes send) stops it as
Ctrl-C does, with a rerun that ends exactly as an uninterrupted run."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import numpy as np

from stew_tf import data
from tests.helpers import REPO_ROOT
from tests.helpers import read_until
from tests.helpers import run_in_background
from tests.helpers import run_main
from tests.helpers import run_main_as_user
from tests.helpers import start_main
from tests.helpers import user_env

ARGS = ["--method=enc_cls", "--weak=audio", "--epochs=3", "--patience=5"]


def test_a_users_first_screen_holds_stew_tf_lines_only(tfds_dir, tmp_path):
  data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))  # TFDS's progress: not here
  result = run_main_as_user("--method=cls_only", "--weak=audio", "--epochs=1",
                            f"--workdir={tmp_path / 'work'}", f"--data_dir={tfds_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr == ""
  assert result.stdout.startswith("stew_tf: cls_only on stew_synthetic")


def _log_of_import(module, level):
  """The lines `import MODULE` writes to stderr with TF_CPP_MIN_LOG_LEVEL=level, without the
  time stamps and thread ids of TensorFlow's log lines."""
  result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO_ROOT,
                          env={**user_env(), "TF_CPP_MIN_LOG_LEVEL": level},
                          capture_output=True, text=True, timeout=120, check=True)
  return [re.sub(r"^([IWEF])\d{4} [\d:. ]+\d+ ", r"\1 ", line)
          for line in result.stderr.splitlines()]


def test_a_tensorflow_log_level_the_user_sets_shows_tensorflow_log_as_it_is():
  assert _log_of_import("stew_tf, tensorflow", "0") == _log_of_import("tensorflow", "0")


def _results(workdir):
  results = json.loads((workdir / "results.json").read_text())
  with np.load(workdir / "predictions.npz") as predictions:
    arrays = {name: predictions[name] for name in predictions.files}
  return {key: results[key] for key in ("weak_model", "epochs", "kept_epoch")}, arrays


def test_sigterm_stops_as_ctrl_c_does_and_the_rerun_ends_as_an_uninterrupted_run(
    tfds_dir, tmp_path):
  # The uninterrupted reference trains in the background, beside the stopped and resumed run.
  data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))  # prepared once, here
  started = run_in_background(*ARGS, f"--workdir={tmp_path / 'reference'}",
                              f"--data_dir={tfds_dir}")
  args = [*ARGS, f"--workdir={tmp_path / 'work'}", f"--data_dir={tfds_dir}"]
  process = start_main(*args)
  read_until(process, "[stage1 audio] epoch   1/3")  # printed once epoch 1 is checkpointed
  process.send_signal(signal.SIGTERM)
  output = process.communicate(timeout=120)[0]
  assert process.returncode == 143, output[-3000:]
  assert output.strip().splitlines()[-1] == (
      "stopped by SIGTERM in stage1, epoch 2; 1 finished epoch(s) of stage1 are saved; rerun "
      f"to resume: {shlex.join([os.path.basename(sys.executable), '-m', 'stew_tf.main', *args])}")
  assert "Traceback" not in output
  assert not (tmp_path / "work" / "results.json").exists()
  resumed = run_main(*args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "[stage1] resuming after epoch 1 from " in resumed.stdout
  assert "[stage1 audio] epoch   1/3" not in resumed.stdout
  reference = started.result()
  assert reference.returncode == 0, reference.stderr[-3000:]
  (metrics, predictions), (expected_metrics, expected) = (
      _results(tmp_path / "work"), _results(tmp_path / "reference"))
  assert metrics == expected_metrics
  assert predictions.keys() == expected.keys()
  for name, values in expected.items():
    np.testing.assert_array_equal(predictions[name], values)
