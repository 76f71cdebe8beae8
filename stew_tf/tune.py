r"""Hyper-parameter search of one experiment with Optuna's seeded TPE sampler.

  python -m stew_tf.tune --flagfile=flags/X.cfg [--trials=20] [--study=DIR] [--storage=URL]
      [--jobs=1] [--search=dropout,alpha:0.01:1] [--seed=0] [--best_seeds=3] [other flags]

Each trial is an ordinary `python -m stew_tf.main` process (the other flags fixed, the searched
ones set: stew_tf.search_space) in `<study>/trials/<number>/`, with the teacher shared by every
trial in `<study>/teachers/`. Its objective is the validation metric that the run selects its
epoch on. The study lives in an Optuna storage (default: the journal file `<study>/journal.log`;
or `--storage`), so the same command resumes a killed study and several processes, on one
machine or several, share one study. `<study>/study.json` and `study.md` list every trial and the
best settings, re-run on `--best_seeds` further seeds (stew_tf.tune_records).
"""

import concurrent.futures
import math
import os
import pathlib
import socket
import sys
import time

from absl import flags
import numpy as np
import optuna

import stew_tf
from stew_tf import cli_flags
from stew_tf import config as config_lib
from stew_tf import flagfiles
from stew_tf import records
from stew_tf import runner
from stew_tf import search_space
from stew_tf import splits
from stew_tf import strong_flags
from stew_tf import tasks
from stew_tf import tune_records
from stew_tf import workdir as workdir_lib

TUNE_FLAGS = ("trials", "study", "storage", "jobs", "search", "best_seeds")
SETTINGS_FILE = "study_settings.json"
EXIT_ERROR, EXIT_USAGE = 1, 2
FAILURES_BEFORE_STOP = 3  # with no trial succeeded
EXIT_INTERRUPTED = 130
STOPPED_CODES = (130, 143)  # stew_tf.main stopped by Ctrl-C or SIGTERM: resumable, not failed
RUNNING, COMPLETE = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE


class TuneError(Exception):
  """The study cannot run as asked; the one-line message names the flag or file."""


class Stopped(Exception):
  """A trial's process was stopped (Ctrl-C, SIGTERM): its trial stays RUNNING, to resume."""


def define_tune_flags(fv):
  flags.DEFINE_integer("trials", 20, "Trials of the study in all (over every worker).",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_string("study", None, "Study folder (trials, teachers, records). Default: "
                      "runs/tune/<the run's default workdir name>.", flag_values=fv)
  flags.DEFINE_string("storage", None, "Optuna storage: an RDB URL (sqlite:///study.db, "
                      "postgresql://...) or a journal file. Default: <study>/journal.log.",
                      flag_values=fv)
  flags.DEFINE_integer("jobs", 1, "Trials at a time in this process.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_string("search", None, "Dimensions to search, NAME or NAME:LOW:HIGH, comma-"
                      f"separated, of: {', '.join(search_space.DIMENSIONS)}. Default: every one "
                      "that applies and is not given as a flag.", flag_values=fv)
  flags.DEFINE_integer("best_seeds", 3, "Further seeds the best settings are re-run on.",
                       lower_bound=0, flag_values=fv)


def _main_args(expanded):
  """stew_tf.main's arguments in the expanded argv (the tuner's own flags left out)."""
  args, rest = [], list(expanded[1:])
  while rest:
    arg = rest.pop(0)
    name, has_value, _ = arg.lstrip("-").partition("=")
    if name in TUNE_FLAGS:
      if not has_value and rest:
        rest.pop(0)
      continue
    args.append(arg)
  return args


def _refuse_run_flags(fv):
  """The flags a study sets itself, and the protocols without a validation metric."""
  for name, why in (("workdir", "trials run in <study>/trials/<number>"),
                    ("teacher_cache", "trials share <study>/teachers"),
                    ("overwrite", "a study never moves a trial aside"),
                    ("stop_after_steps", "a trial runs to its end")):
    if fv[name].present:
      raise TuneError(f"--{name}: not a flag of stew_tf.tune ({why}); leave it out")
  if fv["strong"].value == "auto":
    raise TuneError("--strong=auto: expected a modality (stew_tf.tune does not rank; run "
                    "stew_tf.main --strong=auto once and pass the modality it chose)")
  if fv["select_on"].value != splits.VALIDATION or fv["validation"].value != "split":
    raise TuneError("--select_on/--validation: expected the defaults (validation, split): the "
                    "objective is the validation metric, never the test split")


def _flag_values():
  """stew_tf.main's flags and the tuner's own, on fresh FlagValues."""
  fv = flags.FlagValues()
  cli_flags.define_flags(fv)
  define_tune_flags(fv)
  return fv


class Request:
  """A parsed command: the base config, what to search and where the study lives."""

  def __init__(self, argv):
    fv = _flag_values()
    expanded = flagfiles.expand_argv(argv)
    fv(expanded)
    _refuse_run_flags(fv)
    self.config = cli_flags.from_flag_values(fv)
    fixed = {name for name in fv if fv[name].present}
    self.dimensions = search_space.choose(self.config, fv.search, fixed)
    self.main_args = _main_args(expanded) + self._teacher_pins(fixed)
    self.trials, self.jobs, self.best_seeds = fv.trials, fv.jobs, fv.best_seeds
    name = os.path.basename(config_lib.default_workdir(self.config))
    self.study_dir = pathlib.Path(fv.study or os.path.join("runs", "tune", name))
    # A reproduction's studies share its teacher cache (stew_tf.table_tuning).
    self.teacher_cache = self.study_dir / "teachers"
    self.storage = fv.storage
    self.maximise = tasks.get(self.config.data.task).maximise

  def _teacher_pins(self, given):
    """The teachers' own settings that the command leaves to their defaults, pinned: --strong_*
    default to the (searched) student's. One value when every teacher has it, else one each."""
    teachers = self.config.teachers
    pins = {"strong_learning_rate": [t.trainer.learning_rate for t in teachers],
            "strong_dropout": [t.encoder.dropout for t in teachers]}
    return [f"--{name}={strong_flags.flag_value(values)}" for name, values in pins.items()
            if values and name not in given]

  def settings(self):
    """The study's identity: the base config without the searched leaves, the search space,
    the sampler and its seed (the trials' seed)."""
    searched = {d.leaf for d in self.dimensions}
    tree = {k: v for k, v in self.config.as_dict().items() if k != "runtime"}
    base = {k: v for k, v in records.flatten(tree).items() if k not in searched}
    return {"base": base, "search_space": {d.name: d.describe() for d in self.dimensions},
            "sampler": "TPESampler", "sampler_seed": self.config.trainer.seed,
            "stew_tf_version": stew_tf.__version__}


def open_storage(url, study_dir):
  """The Optuna storage named by `url` (None: the journal file in the study folder)."""
  try:
    if url and "://" in url:
      return optuna.storages.RDBStorage(url)
    path = url or os.path.join(study_dir, "journal.log")
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
  except Exception as error:  # pylint: disable=broad-except  # every backend raises its own
    first_line = (str(error) or type(error).__name__).splitlines()[0]
    raise TuneError(f"--storage={url or path}: cannot be opened ({first_line}); expected an RDB "
                    "URL (sqlite:///FILE, postgresql://...) or a journal file path") from None


def load_study(request):
  """Checks the study folder's settings and returns the Optuna study (created if new), under
  the folder's lock: workers starting together must not all create it."""
  request.study_dir.mkdir(parents=True, exist_ok=True)
  settings = request.settings()
  study_lock = workdir_lib.Lock(request.study_dir)
  study_lock.acquire(wait=True)
  try:
    records.check_same(request.study_dir / SETTINGS_FILE, settings,
                       "pass another --study, or the settings it was made with")
    storage = open_storage(request.storage, request.study_dir)
    records.write_json(request.study_dir / SETTINGS_FILE, settings)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=storage, sampler=optuna.samplers.TPESampler(seed=request.config.trainer.seed),
        study_name=f"stew_tf-{config_lib.settings_hash(settings)}", load_if_exists=True,
        direction="maximize" if request.maximise else "minimize")
  except records.RecordError as error:
    raise TuneError(str(error).replace("holds a run", "holds a study", 1)) from None
  finally:
    study_lock.release()


class Tuner:
  """Runs the trials of one study, `jobs` at a time, with the other workers of its storage."""

  def __init__(self, request, study, command=runner.MAIN_COMMAND, log=print):
    self.request, self.study, self.log = request, study, log
    self.command = list(command)
    self.distributions = {d.name: d.distribution() for d in request.dimensions}
    self.env = runner.main_env()
    self.host = socket.gethostname()

  def trial_dir(self, number):
    return self.request.study_dir / "trials" / str(number)

  def _claim_lock(self, number, create=False):
    folder = self.request.study_dir / "claims" / str(number)
    if create:
      folder.mkdir(parents=True, exist_ok=True)
    return workdir_lib.Lock(folder)

  def _claim_stale(self, trial):
    """The lock of a RUNNING trial whose worker stopped (its claim released) or died on this
    host (its claim free), else None. Trials claimed on other hosts are left to them, as are
    trials without a claim here (those of another study folder sharing the storage)."""
    lock = self._claim_lock(trial.number)
    if not os.path.exists(lock.path):
      return None
    holder = lock.holder()
    if (holder and holder.get("host") != self.host) or not lock.acquire():
      return None
    who = f"its worker (pid {holder['pid']}) died" if holder else "it was stopped"
    self.log(f"[trial {trial.number}] {who}: resuming it")
    return lock

  def next_trial(self):
    """(number, params, claim lock) of a stale trial to resume or a new trial, or None once
    the study has its trials. Under the study's lock: no two workers take the same one."""
    study_lock = workdir_lib.Lock(self.request.study_dir)
    study_lock.acquire(wait=True)
    try:
      trials = self.study.get_trials(deepcopy=False)
      for trial in trials:
        if trial.state == RUNNING and (lock := self._claim_stale(trial)):
          return trial.number, trial.params, lock
      # The budget is `trials` trials with a validation value: a failed trial (a NaN loss, a
      # crashed process) does not use it, so compared studies evaluate as many settings each.
      if sum(t.state in (COMPLETE, RUNNING) for t in trials) >= self.request.trials:
        return None
      # Seeded by the trial's number (the next one, under this lock): the same sequence in one
      # process, and workers with one seed do not all draw the same settings.
      seed = np.random.SeedSequence([self.request.config.trainer.seed, len(trials)])
      self.study.sampler = optuna.samplers.TPESampler(seed=int(seed.generate_state(1)[0]))
      trial = self.study.ask(self.distributions)
      lock = self._claim_lock(trial.number, create=True)
      lock.acquire()
      return trial.number, trial.params, lock
    finally:
      study_lock.release()

  def run_main(self, workdir, settings, seed=None):
    """Runs stew_tf.main with `settings` in `workdir` (unless it has results); returns (exit
    code, results or None, seconds)."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    code = 0
    if runner.load_results(workdir) is None:
      args = self.command + self.request.main_args + [
          f"--{name}={value!r}" for name, value in settings.items()]
      args += [f"--seed={seed}"] if seed is not None else []
      args += [f"--workdir={workdir}", f"--teacher_cache={self.request.teacher_cache}"]
      code = runner.run_logged(args, workdir / "log.txt", self.env)
    results = runner.load_results(workdir) if code == 0 else None
    return code, results, time.time() - start

  def run_trial(self, number, params, lock):
    """Runs one trial and tells the study its validation metric (or that it failed)."""
    workdir = self.trial_dir(number)
    shown = " ".join(f"{name}={value:g}" for name, value in params.items())
    self.log(f"[trial {number}] {shown}: running (log: {workdir / 'log.txt'})")
    try:
      code, results, seconds = self.run_main(workdir, params)
      if code in STOPPED_CODES:
        raise Stopped()
      value = tune_records.objective_value(results) if results else math.nan
      tune_records.add_seconds(workdir, seconds)
      if math.isfinite(value):
        self.study.tell(number, value)
        self.log(f"[trial {number}] validation {self.request.config.trainer.monitor} "
                 f"{value:.4f} ({seconds:.0f}s)")
      else:
        self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        self.log(f"[trial {number}] failed (exit {code}); log: {workdir / 'log.txt'}:\n"
                 f"{runner.log_tail(workdir / 'log.txt', 5) if code else ''}")
    finally:
      lock.release()

  def work(self):
    """Takes and runs trials until the study has them all."""
    while (taken := self.next_trial()) is not None:
      self.run_trial(*taken)
      self._stop_if_trials_keep_failing(taken[0])

  def _stop_if_trials_keep_failing(self, number):
    """Stops the study when its first trials all failed (most likely not the settings but the
    data or the flags: every trial would fail the same way) or failures reach the budget."""
    states = [t.state for t in self.study.get_trials(deepcopy=False)]
    failed = states.count(optuna.trial.TrialState.FAIL)
    if (COMPLETE not in states and failed >= FAILURES_BEFORE_STOP) or \
        failed >= max(FAILURES_BEFORE_STOP, self.request.trials):
      raise TuneError(f"{failed} trials failed and {states.count(COMPLETE)} succeeded (e.g. "
                      f"{self.trial_dir(number) / 'log.txt'}); fix the cause and rerun the "
                      "same command (failed trials are kept, the study goes on)")

  def run(self):
    """Runs this process's share of the study, then the best settings' seeds and the records."""
    try:
      if self.request.jobs > 1 and not self.study.get_trials(states=(COMPLETE,)):
        # The first trial goes alone: it prepares the data, which processes must not all do.
        if (taken := self.next_trial()) is not None:
          self.run_trial(*taken)
          self._stop_if_trials_keep_failing(taken[0])
      with concurrent.futures.ThreadPoolExecutor(self.request.jobs) as pool:
        for future in [pool.submit(self.work) for _ in range(self.request.jobs)]:
          future.result()
      tune_records.rerun_best(self)
    finally:
      record = tune_records.write(self)
    best = record["best"]
    self.log(f"records: {self.request.study_dir / 'study.md'}" + (
        f"; best trial {best['number']}, validation {best['validation']:.4f}" if best else ""))
    return record


def run(argv, command=runner.MAIN_COMMAND, log=print):
  """Runs the command line `argv`; returns the exit code (one line on stderr for an error)."""
  if {"--help", "-h", "--helpfull"} & set(argv[1:]):
    print(__doc__ + "\n" + _flag_values().get_help())
    return 0
  try:
    request = Request(argv)
  except (flags.Error, search_space.SearchSpaceError, TuneError) as error:
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USAGE
  try:
    Tuner(request, load_study(request), command, log).run()
  except (TuneError, records.RecordError) as error:
    print(f"error: {error}", file=sys.stderr)
    return EXIT_ERROR
  except (Stopped, KeyboardInterrupt):
    print("stopped; finished trials are kept, stopped ones resume from their checkpoints: rerun "
          "the same command", file=sys.stderr)
    return EXIT_INTERRUPTED
  except OSError as error:
    print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
    return EXIT_ERROR
  return 0


if __name__ == "__main__":
  sys.exit(run(sys.argv))
