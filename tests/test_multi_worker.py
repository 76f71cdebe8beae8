"""Two --strategy=multi_worker processes on localhost train the model that one process trains."""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np

from stew_tf import data
from tests.helpers import REPO_ROOT, run_in_background

WORKERS = 2
TIMEOUT_S = 150
# Tiny but complete: one epoch of the labels-only weak model, global batch 32. Dropout off:
# its masks are drawn per replica, so with dropout no two replica layouts train the same model.
FLAGS = ["--dataset=stew_synthetic", "--method=enc_cls", "--weak=audio", "--epochs=1",
         "--batch_size=32", "--seed=0", "--dropout=0", "--classifier_dropout=0"]
# Metrics compared; a segment or two at the decision threshold may flip with float rounding.
METRICS = ("accuracy", "f1_weighted", "balanced_accuracy", "ccc")


def _free_ports(count):
  """Ports that were free a moment ago (bound to port 0, then released)."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("localhost", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _start_worker(index, ports, workdir, data_dir):
  tf_config = {"cluster": {"worker": [f"localhost:{port}" for port in ports]},
               "task": {"type": "worker", "index": index}}
  env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "CUDA_VISIBLE_DEVICES": "",
         "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen(
      [sys.executable, "-m", "stew_tf.main", *FLAGS, "--strategy=multi_worker",
       f"--workdir={workdir}", f"--data_dir={data_dir}"],
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _epoch_losses(output):
  """{term: value} of every loss term on the output's epoch lines (before the '|')."""
  losses = {}
  for line in output.splitlines():
    if re.match(r"\[stage\d \w+\] epoch", line):
      stage = line.split("]")[0] + "]"
      for term, value in re.findall(r"([a-z_]+) (-?\d+\.\d+)", line.split("|")[0]):
        losses[f"{stage} {term}"] = float(value)
  return losses


def _weak_metrics(workdir):
  """The weak model's scalar metrics per split in results.json."""
  results = json.loads((workdir / "results.json").read_text())
  return {f"{split}/{name}": value for split, metrics in results["weak_model"].items()
          for name, value in metrics.items() if name in METRICS}


def test_two_workers_train_the_same_model_as_one_process(tmp_path, tfds_dir):
  # The single process trains beside the workers, all on the synthetic data prepared here first.
  data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))
  started = run_in_background(*FLAGS, f"--workdir={tmp_path / 'single'}",
                              f"--data_dir={tfds_dir}", timeout=TIMEOUT_S)
  ports = _free_ports(WORKERS)
  workers = [_start_worker(i, ports, tmp_path / f"worker{i}", tfds_dir) for i in range(WORKERS)]
  outputs = []
  try:
    for worker in workers:
      outputs.append(worker.communicate(timeout=TIMEOUT_S)[0])
  finally:
    for worker in workers:
      worker.kill()
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-3000:]
  single = started.result()
  assert single.returncode == 0, single.stderr[-3000:]

  expected_losses = _epoch_losses(single.stdout)
  assert expected_losses, single.stdout[-3000:]
  expected_metrics = _weak_metrics(tmp_path / "single")
  for i, output in enumerate(outputs):
    losses = _epoch_losses(output)
    assert losses.keys() == expected_losses.keys(), output[-3000:]
    np.testing.assert_allclose(list(losses.values()), list(expected_losses.values()),
                               rtol=1e-3, atol=1e-4)
    metrics = _weak_metrics(tmp_path / f"worker{i}")
    assert metrics.keys() == expected_metrics.keys()
    np.testing.assert_allclose(list(metrics.values()), list(expected_metrics.values()),
                               atol=3e-3)
