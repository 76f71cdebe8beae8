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


def export_random_predictor(export_base_dir, dim, seed):
  """Exports a randomly initialised weak predictor; returns it and its version folder."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from stew_tf import export  # pylint: disable=g-import-not-at-top
  from stew_tf import models  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  encoder = models.build_encoder(dim, gru_layers=1, dropout=0.1, mean=np.zeros(dim),
                                 variance=np.ones(dim), name="weak")
  classifier = models.build_classifier(models.LATENT_DIM, "classification", "weak")
  predictor = models.build_predictor(encoder, classifier, "weak")
  return predictor, export.export_predictor(predictor, str(export_base_dir))
