"""The threaded runner of `stew_tf.main` processes (experiments: stew_tf.flagfiles), with progress,
ETA and resume.

Each (experiment, seed) trains in its own `python -m stew_tf.main` process (fresh TensorFlow
state) in its own workdir, which also gets the process's output (`log.txt`) and the settings it
ran with (`reproduce_args.json`). A run whose results.json exists is skipped.
"""

import concurrent.futures
import dataclasses
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import threading
import time

import stew_tf
from stew_tf import records
from stew_tf import splits
from stew_tf.flagfiles import Experiment

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
MAIN_COMMAND = (sys.executable, "-m", "stew_tf.main")
RECORD_FILE = "reproduce_args.json"
# Selection protocols (stew_tf.main's --select_on and --validation) and their defaults.


class ReproduceError(Exception):
  """The request cannot be run as given; the message says why."""


@dataclasses.dataclass(frozen=True)
class Run:
  """One `stew_tf.main` process: an experiment with a seed, maybe tuned settings, and extra
  flags."""
  experiment: Experiment
  seed: int
  workdir: pathlib.Path
  settings: tuple = ()  # (flag, value) pairs chosen by tuning: override the flagfile's
  extra: tuple = ()  # the user's flags, last so that they override everything
  select_on: str = splits.VALIDATION  # the split that picks the epoch
  validation: str = splits.VALIDATION_PROTOCOLS[0]  # "none": no validation split, fixed epochs

  @property
  def title(self):
    return f"{self.experiment.name} seed {self.seed}"

  @property
  def data_key(self):
    """Runs with the same key share one prepared TFDS dataset."""
    return self.experiment.flag("dataset"), self.experiment.flag("label")

  def record(self):
    """What makes the run's results: compared with what an earlier run in the workdir used."""
    return {"flagfile": [f"--{name}={value}" for name, value in self.experiment.flags],
            "seed": self.seed, "settings": dict(self.settings), "extra": list(self.extra),
            "select_on": self.select_on, "validation": self.validation,
            "stew_tf_version": stew_tf.__version__}

  def args(self, manual_dir=None, data_dir=None, teacher_cache=None):
    args = [f"--flagfile={self.experiment.flagfile}", f"--seed={self.seed}",
            f"--workdir={self.workdir}"]
    args += [f"--manual_dir={manual_dir}"] if manual_dir else []
    args += [f"--data_dir={data_dir}"] if data_dir else []
    args += [f"--select_on={self.select_on}", f"--validation={self.validation}"]
    args += [f"--teacher_cache={teacher_cache}"] if teacher_cache else []
    # repr keeps a number's every digit; a text (one number per teacher) goes as it is.
    args += [f"--{flag}={value if isinstance(value, str) else repr(value)}"
             for flag, value in self.settings]
    return args + list(self.extra)


def load_results(workdir):
  """The run's results.json as a dict, or None if it has none."""
  path = pathlib.Path(workdir) / "results.json"
  if not path.exists():
    return None
  return records.read_json(path, "delete its folder to run it again")


def _duration(seconds):
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _headline(results):
  """E.g. `weak test accuracy 0.634`: the first test metric of the weak model."""
  metric, value = next(iter(results["weak_model"]["test"].items()))
  return f"weak test {metric} {value:.3f}"


def main_env():
  """The environment of a stew_tf.main child process: this repository importable (TensorFlow
  quiets itself on import: stew_tf/__init__.py)."""
  return {**os.environ,
          "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                      os.environ.get("PYTHONPATH")]))}


def run_logged(argv, log_path, env):
  """Runs `argv` with its output appended to `log_path` after a `$ command` line; returns the
  exit code."""
  with open(log_path, "a") as log:
    log.write(f"$ {shlex.join(argv)}\n")
    log.flush()
    return subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def log_tail(log_path, lines):
  """The last `lines` lines of a log, for a failure message."""
  return "".join(pathlib.Path(log_path).read_text().splitlines(keepends=True)[-lines:])


class Runner:
  """Runs `stew_tf.main` processes, `jobs` at a time, skipping finished runs, with progress."""

  def __init__(self, total, jobs=1, command=MAIN_COMMAND, manual_dir=None, data_dir=None,
               log=print, teacher_cache=None):
    self.total = total  # runs of the whole reproduction, for the [n/total] counter
    self.jobs = jobs
    self.command = list(command)
    self.manual_dir = manual_dir
    self.data_dir = data_dir
    self.teacher_cache = teacher_cache  # shared stage-1 teachers of one table
    self.log = log
    self.failures = []  # (run title, reason)
    self._counted = 0
    self._durations = []
    self._prepared = set()  # data keys of runs that finished: their data is there
    self._lock = threading.Lock()
    self._env = main_env()
    if jobs > 1:
      # Without it, each TensorFlow process takes all GPU memory and the second one fails.
      self._env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"

  def run(self, runs):
    """Runs what is not finished; returns {workdir: results dict} of the runs that have results.

    Until a run of a dataset (and label) has finished, one of its runs goes alone: it prepares
    the TFDS data, which parallel processes must not all do at once. If that run fails, the
    dataset's other runs are not started (their data is most likely missing too).
    """
    results, pending = {}, []
    for run in runs:
      problem = self._settings_conflict(run)
      if problem:
        self._count(1)
        self._fail(run, problem)
      elif (finished := load_results(run.workdir)) is not None:
        results[run.workdir] = finished
        self._prepared.add(run.data_key)
      else:
        pending.append(run)
    self._count(len(results))
    if results:
      self.log(f"{len(results)} of {len(runs)} runs already have results.json: skipped.")
    firsts = {}
    for run in pending:
      if run.data_key not in self._prepared:
        firsts.setdefault(run.data_key, run)
    for run in firsts.values():
      if (finished := self._execute(run)) is not None:
        results[run.workdir] = finished
    rest = []
    for run in pending:
      if run.data_key in self._prepared:
        if run is not firsts.get(run.data_key):
          rest.append(run)
      elif run is not firsts[run.data_key]:
        self._count(1)
        self._fail(run, f"not run: {firsts[run.data_key].title}, which prepares its data, failed")
    with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
      for run, finished in zip(rest, pool.map(self._execute, rest)):
        if finished is not None:
          results[run.workdir] = finished
    return results

  def skip(self, runs, reason):
    """Counts `runs` as failed without running them."""
    self._count(len(runs))
    for run in runs:
      self._fail(run, reason)

  def _count(self, number):
    with self._lock:
      self._counted += number
      return self._counted

  def _fail(self, run, reason):
    with self._lock:
      self.failures.append((run.title, reason))
    self.log(f"{run.title}: {reason}")

  def _settings_conflict(self, run):
    """Why the workdir's results or checkpoints must not be reused for `run`, or None."""
    kept = [run.workdir / name for name in ("results.json", "checkpoints")]
    if not any(p.exists() for p in kept):
      return None
    try:
      records.check_same(run.workdir / RECORD_FILE, run.record(),
                         "delete that folder or pass another --out")
    except records.RecordError as error:
      return str(error)
    return None

  def _execute(self, run):
    """Runs one process; returns its results dict, or None if it failed."""
    number = self._count(1)
    log_path = run.workdir / "log.txt"
    self.log(f"[{number}/{self.total}] {run.title}: running (output in {log_path})")
    run.workdir.mkdir(parents=True, exist_ok=True)
    records.write_json(run.workdir / RECORD_FILE, run.record())
    args = self.command + run.args(self.manual_dir, self.data_dir, self.teacher_cache)
    start = time.time()
    returncode = run_logged(args, log_path, self._env)
    seconds = time.time() - start
    results = load_results(run.workdir) if returncode == 0 else None
    with self._lock:
      self._durations.append(seconds)
      if results is not None:
        self._prepared.add(run.data_key)
      left = self.total - self._counted
      eta = statistics.fmean(self._durations) * left / self.jobs
    if results is None:
      self._fail(run, f"failed (exit {returncode}) after {_duration(seconds)}; last lines of "
                      f"{log_path}:\n{log_tail(log_path, 15)}")
      return None
    self.log(f"[{number}/{self.total}] {run.title}: done in {_duration(seconds)}, "
             f"{_headline(results)}; ETA {_duration(eta)}")
    return results
