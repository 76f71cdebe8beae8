"""Helpers shared by the tests."""

import os
import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def run_main(*args, module="stew_tf.main", cwd=REPO_ROOT, timeout=600):
  """Runs `python -m MODULE ARGS` in a fresh process; returns the CompletedProcess."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT)}
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=timeout)
