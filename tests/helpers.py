"""Helpers shared by the tests."""

import concurrent.futures
import json
import os
import pathlib
import signal
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _env():
  return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT),
          "PYTHONUNBUFFERED": "1"}


def run_main(*args, module="stew_tf.main", cwd=REPO_ROOT, timeout=600):
  """Runs `python -m MODULE ARGS` in a fresh process; returns the CompletedProcess."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=_env(),
                        capture_output=True, text=True, timeout=timeout)


# The session's text_audio_run (tests/conftest.py): the default transfer, 3 epochs so that an
# interruption can fall inside any epoch of either stage and after two finished stage-2 epochs.
TEXT_AUDIO_ARGS = ["--strong=text", "--weak=audio", "--epochs=3", "--patience=5"]

# Runs that run_mains starts at once: as many as CI's CPUs. A run keeps about one and a half of
# them busy, so two runs at once take about 2/3 of the time of one after the other (measured on
# 2 CPUs: 28 s for two text-to-audio runs at once, 41 s one after the other).
JOBS = 2


def run_mains(*commands, jobs=JOBS, **kwargs):
  """run_main(*args, **kwargs) of each command (a list of args), `jobs` of them at once; returns
  their CompletedProcesses in the order of `commands`. For runs that do not depend on one another
  (and do not prepare the same data: prepare it first)."""
  with concurrent.futures.ThreadPoolExecutor(jobs) as executor:
    return list(executor.map(lambda args: run_main(*args, **kwargs), commands))


def run_in_background(*args, **kwargs):
  """Starts run_main(*args, **kwargs) and returns at once a Future of its CompletedProcess
  (.result() waits for it): an independent run, such as an uninterrupted reference, goes on while
  the test does something else."""
  return run_in_background_one_after_another([args], **kwargs)[0]


def run_in_background_one_after_another(commands, **kwargs):
  """Starts run_main(*args, **kwargs) of each command (a list of args), one after another in a
  thread of their own; returns at once their Futures, in the order of `commands`."""
  executor = concurrent.futures.ThreadPoolExecutor(1)
  futures = [executor.submit(run_main, *args, **kwargs) for args in commands]
  executor.shutdown(wait=False)
  return futures


def user_env():
  """The environment of a user who set nothing: without the TF_CPP_MIN_LOG_LEVEL and
  CUDA_VISIBLE_DEVICES that conftest.py and _env() set for the tests."""
  return {key: value for key, value in _env().items()
          if key not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}


def run_main_as_user(*args, module="stew_tf.main", timeout=600):
  """run_main in the environment of a user who set nothing (user_env)."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=user_env(),
                        capture_output=True, text=True, timeout=timeout)


def install_fake_main(source, directory, monkeypatch):
  """Writes a stand-in for `python -m stew_tf.main` that appends its argv (a JSON line) to the
  file named by $FAKE_CALLS; returns (its command, a function returning every call's argv)."""
  script = directory / "fake_main.py"
  script.write_text(source)
  calls = directory / "calls.jsonl"
  monkeypatch.setenv("FAKE_CALLS", str(calls))

  def read_calls():
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
  return (sys.executable, str(script)), read_calls


def _default_sigint():
  # A shell starts background jobs with SIGINT ignored, and children inherit that: the tests
  # that send Ctrl-C need the default disposition, as in a foreground command.
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_main(*args, cwd=REPO_ROOT):
  """Starts `python -m stew_tf.main ARGS` with unbuffered output read line by line, Ctrl-C
  acting on it as in a foreground command."""
  return subprocess.Popen([sys.executable, "-m", "stew_tf.main", *args], cwd=cwd, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=_default_sigint)


def read_until(process, prefix, timeout=300):
  """Reads `process`'s output until a line starting with `prefix`; returns the lines read."""
  import time  # pylint: disable=g-import-not-at-top
  deadline = time.time() + timeout
  lines = []
  for line in process.stdout:
    lines.append(line)
    if line.startswith(prefix):
      return lines
    if time.time() > deadline:
      break
  process.kill()
  raise AssertionError(f"no line starting with {prefix!r}; output:\n{''.join(lines)[-3000:]}")


def export_random_predictor(export_base_dir, dim, seed):
  """Exports a randomly initialised weak predictor; returns it and its version folder."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from stew_tf import export  # pylint: disable=g-import-not-at-top
  from stew_tf import models  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  encoder = models.build_encoder(dim, gru_layers=1, dropout=0.1, mean=np.zeros(dim),
                                 variance=np.ones(dim), name="weak")
  classifier = models.build_classifier(models.LATENT_DIM, "classification", "weak", 0.3)
  predictor = models.build_predictor(encoder, classifier, "weak")
  return predictor, export.export_predictor(predictor, str(export_base_dir))


TOY_DIMS = {"text": 6, "audio": 5}  # a strong and a weak modality of random toy clips


def toy_split(num_clips, lengths, batch_size=4, seed=0, poison=False):
  """A data.Split of random clips whose audio is a noisy view of their text and whose label is
  text[:, 0] > 0; `lengths` (low, high) bounds each clip's segments; `poison`: a NaN label."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from stew_tf import data  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  examples = []
  for _ in range(num_clips):
    length = int(rng.integers(*lengths))
    text = rng.normal(size=(length, TOY_DIMS["text"])).astype(np.float32)
    audio = (text[:, :TOY_DIMS["audio"]]
             + rng.normal(size=(length, TOY_DIMS["audio"]))).astype(np.float32)
    labels = (text[:, 0] > 0).astype(np.float32)
    if poison:
      labels[0] = np.nan
    examples.append({"features": {"text": text, "audio": audio}, "labels": labels,
                     "length": length})
  ds = tf.data.Dataset.from_generator(
      lambda: iter(examples),
      output_signature={"features": {m: tf.TensorSpec([None, d], tf.float32)
                                     for m, d in TOY_DIMS.items()},
                        "labels": tf.TensorSpec([None], tf.float32),
                        "length": tf.TensorSpec([], tf.int32)})
  return data.Split(ds.cache(), num_clips, tuple(TOY_DIMS), batch_size=batch_size)
