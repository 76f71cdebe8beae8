"""Experiments (flagfiles) and the threaded runner of `stew_tf.main` processes, with progress, ETA,
resume, and the dropout grid.

Each (experiment, seed) trains in its own `python -m stew_tf.main` process (fresh TensorFlow
state) in its own workdir, which also gets the process's output (`log.txt`) and the settings it
ran with (`reproduce_args.json`). A run whose results.json exists is skipped.
"""

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import threading
import time

from stew_tf import paper
from stew_tf import workdir as workdir_lib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
FLAGFILE_DIR = REPO_ROOT / "flags"
MAIN_COMMAND = (sys.executable, "-m", "stew_tf.main")
RECORD_FILE = "reproduce_args.json"
# Selection protocols (stew_tf.main's --select_on and --validation) and their defaults.
SELECT_ON = ("validation", "test")
VALIDATION = ("split", "none")
_RECORD_DEFAULTS = {"select_on": SELECT_ON[0], "validation": VALIDATION[0]}


class ReproduceError(Exception):
  """The request cannot be run as given; the message says why."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One flagfile: its name (the file's stem) and its `--name=value` lines."""
  name: str
  flagfile: pathlib.Path
  flags: tuple  # (name, value) pairs, in file order

  def flag(self, name, default=None):
    return dict(self.flags).get(name, default)


def read_flagfile(path):
  """The (name, value) pairs of an absl flagfile, comments and blank lines left out."""
  pairs = []
  for line in pathlib.Path(path).read_text().splitlines():
    line = line.strip()
    if line and not line.startswith(("#", "//")):
      name, _, value = line.removeprefix("--").partition("=")
      pairs.append((name, value))
  return tuple(pairs)


def _table_of(stem):
  """The table a flagfile belongs to: the longest table name that prefixes `<table>_`."""
  owners = [table for table in paper.TABLES if stem.startswith(f"{table}_")]
  return max(owners, key=len) if owners else None


def find_experiments(table, only=None, flagfile_dir=FLAGFILE_DIR):
  """The experiments of a table (`<table>_*.cfg`, not those of a longer table name such as
  mosi_score for mosi), those whose name contains `only` if given."""
  paths = [p for p in sorted(pathlib.Path(flagfile_dir).glob(f"{table}_*.cfg"))
           if _table_of(p.stem) == table]
  if not paths:
    raise ReproduceError(f"No flagfile {table}_*.cfg in {flagfile_dir}.")
  chosen = [Experiment(p.stem, p.resolve(), read_flagfile(p)) for p in paths
            if not only or only in p.stem]
  if not chosen:
    raise ReproduceError(f"--only={only} matches no experiment of --table={table}; the "
                         f"experiments are: {', '.join(p.stem for p in paths)}")
  return chosen


@dataclasses.dataclass(frozen=True)
class Run:
  """One `stew_tf.main` process: an experiment with a seed, maybe a dropout, and extra flags."""
  experiment: Experiment
  seed: int
  workdir: pathlib.Path
  dropout: float | None = None  # overrides the flagfile's --dropout
  extra: tuple = ()  # the user's flags, last so that they override everything
  tuning: bool = False  # a run of the dropout grid
  select_on: str = SELECT_ON[0]  # the split that picks the epoch
  validation: str = VALIDATION[0]  # "none": no validation split, fixed epochs

  @property
  def title(self):
    if self.tuning:
      return f"{self.experiment.name} dropout {self.dropout:g} (tuning, seed {self.seed})"
    return f"{self.experiment.name} seed {self.seed}"

  @property
  def data_key(self):
    """Runs with the same key share one prepared TFDS dataset."""
    return self.experiment.flag("dataset"), self.experiment.flag("label")

  def record(self):
    """What makes the run's results: compared with what an earlier run in the workdir used."""
    return {"flagfile": [f"--{name}={value}" for name, value in self.experiment.flags],
            "seed": self.seed, "dropout": self.dropout, "extra": list(self.extra),
            "select_on": self.select_on, "validation": self.validation}

  def args(self, manual_dir=None, data_dir=None, teacher_cache=None):
    args = [f"--flagfile={self.experiment.flagfile}", f"--seed={self.seed}",
            f"--workdir={self.workdir}"]
    args += [f"--manual_dir={manual_dir}"] if manual_dir else []
    args += [f"--data_dir={data_dir}"] if data_dir else []
    args += [f"--select_on={self.select_on}", f"--validation={self.validation}"]
    args += [f"--teacher_cache={teacher_cache}"] if teacher_cache else []
    args += [f"--dropout={self.dropout:g}"] if self.dropout is not None else []
    return args + list(self.extra)


def load_results(workdir):
  """The run's results.json as a dict, or None if it has none."""
  path = pathlib.Path(workdir) / "results.json"
  if not path.exists():
    return None
  with open(path) as f:
    return json.load(f)


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
  """The environment of a stew_tf.main child process: this repository importable, TF quiet."""
  return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
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
    path = run.workdir / RECORD_FILE
    kept = [run.workdir / name for name in ("results.json", "checkpoints")]
    if not path.exists() or not any(p.exists() for p in kept):
      return None
    with open(path) as f:
      before = json.load(f)
    now = run.record()
    # Records written before a key existed ran with its default.
    changed = [key for key in now if before.get(key, _RECORD_DEFAULTS.get(key)) != now[key]]
    if not changed:
      return None
    return (f"{run.workdir} holds a run made with other settings ({', '.join(changed)} differ: "
            f"was {[before.get(k) for k in changed]}, now {[now[k] for k in changed]}); "
            f"delete that folder or pass another --out")

  def _execute(self, run):
    """Runs one process; returns its results dict, or None if it failed."""
    number = self._count(1)
    log_path = run.workdir / "log.txt"
    self.log(f"[{number}/{self.total}] {run.title}: running (output in {log_path})")
    run.workdir.mkdir(parents=True, exist_ok=True)
    workdir_lib.write_json(run.workdir / RECORD_FILE, run.record())
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


def choose_dropout(results_by_dropout, select_on=SELECT_ON[0]):
  """(metric, dropout) with the best weak-model metric on the `select_on` split; ties go to the
  smaller dropout. The metric is the one early stopping maximises: accuracy, else CCC."""
  split = "test" if select_on == "test" else "val"
  first = next(iter(results_by_dropout.values()))
  metric = "accuracy" if "accuracy" in first["weak_model"][split] else "ccc"
  best = max(sorted(results_by_dropout),
             key=lambda d: results_by_dropout[d]["weak_model"][split][metric])
  return metric, best


def tune_dropout(runner, experiments, out, extra, select_on=SELECT_ON[0],
                 validation=VALIDATION[0]):
  """Runs each experiment's dropout grid on seed 0; returns {name: choice} (report.py's
  dropout_markdown): the metric, the split that chose, each dropout's value and the pick."""
  runs = [Run(e, 0, out / e.name / "tune_dropout" / f"dropout{d:g}", d, extra, True, select_on,
              validation) for e in experiments for d in paper.DROPOUT_GRID]
  results = runner.run(runs)
  split = "test" if select_on == "test" else "val"
  choices = {}
  for experiment in experiments:
    by_dropout = {run.dropout: results[run.workdir] for run in runs
                  if run.experiment == experiment and run.workdir in results}
    if not by_dropout:
      continue
    metric, best = choose_dropout(by_dropout, select_on)
    choices[experiment.name] = {
        "metric": metric, "dropout": best, "split": split,
        "values": {f"{d:g}": r["weak_model"][split][metric] for d, r in by_dropout.items()}}
  return choices
