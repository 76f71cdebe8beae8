r"""Reruns one of the paper's tables over several seeds and tabulates mean ± std next to the paper.

  python -m stew_tf.reproduce --table=mosi --manual_dir=../shared/data/mosi [--seeds=5]
      [--tune_dropout] [--jobs=2] [--only=text_to] [--extra=--epochs=3]

Each flagfile `flags/<table>_*.cfg` is one experiment; each (experiment, seed) trains in its own
`python -m stew_tf.main` process (fresh TensorFlow state) in `<out>/<experiment>/seed<s>/`, which
also gets the process's output (`log.txt`) and the settings it ran with (`reproduce_args.json`).
A run whose results.json exists is skipped, so an interrupted reproduction resumes when the same
command is run again. `<out>/results.md` and `<out>/results.csv` are rebuilt from every
`<out>/*/seed*/results.json` at the end.

With --tune_dropout, each experiment first runs the paper's dropout grid on seed 0 (in
`<out>/<experiment>/tune_dropout/dropout<d>/`) and its seeds then use the value with the best
validation metric (the test split is never looked at).
"""

import concurrent.futures
import csv
import dataclasses
import io
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
FLAGFILE_DIR = REPO_ROOT / "flags"
MAIN_COMMAND = (sys.executable, "-m", "stew_tf.main")
TABLES = {"mosi": "CMU-MOSI, paper Tables II and IV",
          "recola": "RECOLA (AVEC 2016), paper Tables III and V"}
DROPOUT_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # paper, Sec. IV-B
RECORD_FILE = "reproduce_args.json"
CHOICES_FILE = "dropout_choices.json"

# Row order and names of the paper's tables.
METHOD_NAMES = {"cls_only": "Classifier", "enc_cls": "Encoder + Classifier",
                "cm_stew": "CM-StEW", "no_lfa": "CM-StEW - LFA", "no_decoder": "CM-StEW - Decoder"}
METRIC_NAMES = {"accuracy": "acc. %", "f1_weighted": "F1w %", "ccc": "CCC"}
PERCENT_METRICS = ("accuracy", "f1_weighted")  # shown in %; CCC as a fraction


def _mosi(method, strong, weak, accuracy, f1_weighted):
  return (("mosi", "sentiment", method, strong, weak),
          {"table": "IV" if strong else "II", "accuracy": accuracy, "f1_weighted": f1_weighted})


def _recola(label, method, strong, weak, ccc):
  return (("recola", label, method, strong, weak), {"table": "V" if strong else "III", "ccc": ccc})


# The paper's single value for each cell, keyed (dataset, label, method, strong, weak); strong is
# None for the uni-modal baselines. Accuracy and weighted F1 in %.
PAPER = dict([
    # Table II: CMU-MOSI uni-modal baselines.
    _mosi("cls_only", None, "text", 74.9, 75.2),
    _mosi("enc_cls", None, "text", 80.3, 80.1),
    _mosi("cls_only", None, "audio", 54.7, 55.2),
    _mosi("enc_cls", None, "audio", 61.0, 60.0),
    _mosi("cls_only", None, "video", 51.5, 52.2),
    _mosi("enc_cls", None, "video", 60.8, 59.7),
    # Table IV: CM-StEW(+Textual) and its ablations.
    _mosi("cm_stew", "text", "video", 63.4, 63.9),
    _mosi("no_lfa", "text", "video", 62.8, 63.3),
    _mosi("no_decoder", "text", "video", 63.0, 63.4),
    _mosi("cm_stew", "text", "audio", 64.8, 64.3),
    _mosi("no_lfa", "text", "audio", 63.6, 63.2),
    _mosi("no_decoder", "text", "audio", 64.1, 63.5),
    # Table III: RECOLA uni-modal baselines.
    _recola("arousal", "cls_only", None, "audio", 0.769),
    _recola("arousal", "cls_only", None, "video_appearance", 0.517),
    _recola("arousal", "cls_only", None, "video_geometric", 0.470),
    _recola("arousal", "enc_cls", None, "audio", 0.786),
    _recola("arousal", "enc_cls", None, "video_appearance", 0.541),
    _recola("arousal", "enc_cls", None, "video_geometric", 0.536),
    _recola("valence", "cls_only", None, "audio", 0.490),
    _recola("valence", "cls_only", None, "video_appearance", 0.496),
    _recola("valence", "cls_only", None, "video_geometric", 0.560),
    _recola("valence", "enc_cls", None, "audio", 0.525),
    _recola("valence", "enc_cls", None, "video_appearance", 0.570),
    _recola("valence", "enc_cls", None, "video_geometric", 0.601),
    # Table V: CM-StEW(+Acoustic) for arousal, (+Visual-app.) and (+Visual-geo.) for valence.
    _recola("arousal", "cm_stew", "audio", "video_appearance", 0.574),
    _recola("arousal", "no_lfa", "audio", "video_appearance", 0.571),
    _recola("arousal", "no_decoder", "audio", "video_appearance", 0.561),
    _recola("arousal", "cm_stew", "audio", "video_geometric", 0.586),
    _recola("arousal", "no_lfa", "audio", "video_geometric", 0.580),
    _recola("arousal", "no_decoder", "audio", "video_geometric", 0.564),
    _recola("valence", "cm_stew", "video_appearance", "audio", 0.560),
    _recola("valence", "no_lfa", "video_appearance", "audio", 0.538),
    _recola("valence", "no_decoder", "video_appearance", "audio", 0.563),
    _recola("valence", "cm_stew", "video_geometric", "audio", 0.555),
    _recola("valence", "no_lfa", "video_geometric", "audio", 0.531),
    _recola("valence", "no_decoder", "video_geometric", "audio", 0.556),
])

# Labels of the public CMU-MOSI test split (752 utterances; datasets/mosi/README.md).
MOSI_TEST_NEGATIVE, MOSI_TEST_POSITIVE = 285, 467


class ReproduceError(Exception):
  """The request cannot be run as given; the message says why."""


def all_positive_baseline(negative, positive):
  """Accuracy and weighted F1 (eq. 11) of answering "positive" for every utterance."""
  total = negative + positive
  # Positive class: TP = positive, FP = negative, FN = 0. The negative class has F1 = 0.
  f1_positive = 2 * positive / (2 * positive + negative)
  return positive / total, f1_positive * positive / total


def trivial_baseline(dataset):
  """A line stating what a model that learnt nothing scores on `dataset`'s test split."""
  if dataset == "mosi":
    accuracy, f1 = all_positive_baseline(MOSI_TEST_NEGATIVE, MOSI_TEST_POSITIVE)
    return (f"Trivial baseline: always answering \"positive\" on the test split "
            f"({MOSI_TEST_NEGATIVE} negative / {MOSI_TEST_POSITIVE} positive utterances) scores "
            f"{100 * accuracy:.1f} % accuracy and {100 * f1:.1f} % weighted F1.")
  if dataset == "recola":
    return "Trivial baseline: any constant prediction has CCC 0.000."
  return None


# ---------------------------------------------------------------------------------------------
# Tables: pure functions of results.json dicts.


def _mean_std(values):
  """Mean and sample standard deviation (ddof=1); std is None for a single value."""
  return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _display(metric, value):
  return 100 * value if metric in PERCENT_METRICS else value


def _row_order(key):
  dataset, label, method, strong, weak = key
  return (dataset, label, strong is not None, strong or "", weak, list(METHOD_NAMES).index(method))


def summarize(results):
  """One row per (dataset, label, method, strong, weak) of a list of results.json dicts.

  Each row holds the number of seeds, the mean and std (ddof=1) over seeds of each weak-model
  metric on test and validation (accuracy and F1 in %, CCC as is), the mean epochs per stage,
  the dropouts used and the paper's value of the same cell. Rows follow the paper's tables.
  """
  groups = {}
  for result in results:
    key = tuple(result[k] for k in ("dataset", "label", "method", "strong", "weak"))
    groups.setdefault(key, []).append(result)
  rows = []
  for key in sorted(groups, key=_row_order):
    runs = groups[key]
    paper = PAPER.get(key, {})
    metrics = {}
    for metric in runs[0]["weak_model"]["test"]:
      metrics[metric] = {
          split: _mean_std([_display(metric, r["weak_model"][split][metric]) for r in runs])
          for split in ("test", "val")}
      metrics[metric]["paper"] = paper.get(metric)
    rows.append({
        **dict(zip(("dataset", "label", "method", "strong", "weak"), key)),
        "seeds": len(runs),
        "metrics": metrics,
        "epochs": {stage: statistics.fmean(r["epochs"][stage] for r in runs)
                   for stage in ("stage1", "stage2")},
        "dropout": sorted({r["flags"]["dropout"] for r in runs}),
        "paper_table": paper.get("table"),
    })
  return rows


def _digits(metric):
  return 1 if metric in PERCENT_METRICS else 3


def _format_mean_std(metric, mean_std):
  mean, std = mean_std
  digits = _digits(metric)
  return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _metric_names(rows):
  found = {metric for row in rows for metric in row["metrics"]}
  return [metric for metric in METRIC_NAMES if metric in found]


def _modalities(row):
  return f"{row['strong']} → {row['weak']}" if row["strong"] else row["weak"]


def _markdown_table(header, body):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(cells) + " |" for cells in body]
  return "\n".join(lines)


def results_markdown(table, rows, dropout_choices=None, source=None):
  """results.md: the rows next to the paper, the conventions, the trivial baseline, tuning."""
  metrics = _metric_names(rows)
  header = ["Target", "Method", "Modalities", "Seeds"]
  for metric in metrics:
    header += [f"Test {METRIC_NAMES[metric]}", "Paper"]
  header += [f"Val {METRIC_NAMES[metric]}" for metric in metrics]
  header += ["Paper table", "Epochs (strong / weak)", "Dropout"]
  body = []
  for row in rows:
    cells = [row["label"], METHOD_NAMES[row["method"]], _modalities(row), str(row["seeds"])]
    for metric in metrics:
      values = row["metrics"].get(metric)
      paper = values and values["paper"]
      cells += [_format_mean_std(metric, values["test"]) if values else "-",
                "-" if paper is None else f"{paper:.{_digits(metric)}f}"]
    for metric in metrics:
      values = row["metrics"].get(metric)
      cells.append(_format_mean_std(metric, values["val"]) if values else "-")
    strong_epochs = f"{row['epochs']['stage1']:.1f}" if row["strong"] else "-"
    cells += [row["paper_table"] or "-", f"{strong_epochs} / {row['epochs']['stage2']:.1f}",
              ", ".join(f"{d:g}" for d in row["dropout"])]
    body.append(cells)
  parts = [
      f"# CM-StEW reproduction: {TABLES.get(table, table)}",
      "Metrics of the weak model (the one deployed), on the test split (CMU-MOSI: the 31 public "
      "test videos; RECOLA: the AVEC 2016 dev partition, as in the paper) and on our validation "
      "split. Each cell is the mean ± the sample standard deviation (ddof = 1) over seeds; a "
      "cell from a single seed has no ±. Accuracy and weighted F1 (eq. 11) are in %, CCC "
      "(eq. 12) is a fraction in [-1, 1]. \"Paper\" is the paper's single value for the same "
      "cell (it reports no spread); \"-\" marks a cell the paper does not have. Epochs are the "
      "mean numbers of epochs each stage trained (early stopping included).",
  ]
  baselines = filter(None, map(trivial_baseline, sorted({row["dataset"] for row in rows})))
  parts += list(baselines)
  parts.append(_markdown_table(header, body) if rows else "No finished run yet.")
  if dropout_choices:
    parts.append(dropout_markdown(dropout_choices))
  if source:
    parts.append(source)
  return "\n\n".join(parts) + "\n"


def dropout_markdown(choices):
  """The --tune_dropout section: each experiment's validation metric per dropout, and the pick."""
  header = ["Experiment", "Metric", *(f"{d:g}" for d in DROPOUT_GRID), "Chosen"]
  body = []
  for name in sorted(choices):
    choice = choices[name]
    metric = choice["metric"]
    cells = [name, f"val {METRIC_NAMES[metric]}"]
    for dropout in DROPOUT_GRID:
      value = choice["validation"].get(f"{dropout:g}")
      cells.append("-" if value is None else f"{_display(metric, value):.{_digits(metric)}f}")
    body.append(cells + [f"{choice['dropout']:g}"])
  return ("## Dropout chosen on validation\n\nEach experiment ran the paper's grid on seed 0; its "
          "seeds use the dropout with the best validation metric (ties: the smaller dropout). "
          "The test split played no part.\n\n" + _markdown_table(header, body))


def results_csv(rows):
  """results.csv: one line per row; % for accuracy and F1 (columns named *_pct), CCC as is."""
  metrics = _metric_names(rows)
  fields = ["dataset", "label", "method", "strong", "weak", "seeds"]
  for metric in metrics:
    unit = f"{metric}_pct" if metric in PERCENT_METRICS else metric
    fields += [f"test_{unit}_mean", f"test_{unit}_std", f"paper_test_{unit}",
               f"val_{unit}_mean", f"val_{unit}_std"]
  fields += ["paper_table", "epochs_stage1_mean", "epochs_stage2_mean", "dropout"]
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(fields)
  for row in rows:
    line = [row["dataset"], row["label"], row["method"], row["strong"] or "", row["weak"],
            row["seeds"]]
    for metric in metrics:
      values = row["metrics"].get(metric)
      if values is None:
        line += [""] * 5
        continue
      numbers = [*values["test"], values["paper"], *values["val"]]
      # Two more digits than results.md, so that the CSV loses nothing a reader would use.
      line += ["" if x is None else f"{x:.{_digits(metric) + 2}f}" for x in numbers]
    line += [row["paper_table"] or "", f"{row['epochs']['stage1']:.2f}",
             f"{row['epochs']['stage2']:.2f}", " ".join(f"{d:g}" for d in row["dropout"])]
    writer.writerow(line)
  return buffer.getvalue()


def choose_dropout(results_by_dropout):
  """(metric, dropout) with the best weak-model validation metric; ties go to the smaller dropout.

  The metric is the one early stopping maximises: accuracy for classification, else CCC.
  """
  first = next(iter(results_by_dropout.values()))
  metric = "accuracy" if "accuracy" in first["weak_model"]["val"] else "ccc"
  best = max(sorted(results_by_dropout),
             key=lambda d: results_by_dropout[d]["weak_model"]["val"][metric])
  return metric, best


# ---------------------------------------------------------------------------------------------
# Experiments and runs.


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


def find_experiments(table, only=None, flagfile_dir=FLAGFILE_DIR):
  """The experiments of a table (`<table>_*.cfg`), those whose name contains `only` if given."""
  paths = sorted(pathlib.Path(flagfile_dir).glob(f"{table}_*.cfg"))
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
            "seed": self.seed, "dropout": self.dropout, "extra": list(self.extra)}

  def args(self, manual_dir=None, data_dir=None):
    args = [f"--flagfile={self.experiment.flagfile}", f"--seed={self.seed}",
            f"--workdir={self.workdir}"]
    args += [f"--manual_dir={manual_dir}"] if manual_dir else []
    args += [f"--data_dir={data_dir}"] if data_dir else []
    args += [f"--dropout={self.dropout:g}"] if self.dropout is not None else []
    return args + list(self.extra)


def _load_results(workdir):
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


class Runner:
  """Runs `stew_tf.main` processes, `jobs` at a time, skipping finished runs, with progress."""

  def __init__(self, total, jobs=1, command=MAIN_COMMAND, manual_dir=None, data_dir=None,
               log=print):
    self.total = total  # runs of the whole reproduction, for the [n/total] counter
    self.jobs = jobs
    self.command = list(command)
    self.manual_dir = manual_dir
    self.data_dir = data_dir
    self.log = log
    self.failures = []  # (run title, reason)
    self._counted = 0
    self._durations = []
    self._prepared = set()  # data keys of runs that finished: their data is there
    self._lock = threading.Lock()
    self._env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                             os.environ.get("PYTHONPATH")]))}
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
      elif (finished := _load_results(run.workdir)) is not None:
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
    if before == run.record():
      return None
    changed = [key for key in run.record() if before.get(key) != run.record()[key]]
    return (f"{run.workdir} holds a run made with other settings ({', '.join(changed)} differ: "
            f"was {[before.get(k) for k in changed]}, now {[run.record()[k] for k in changed]}); "
            f"delete that folder or pass another --out")

  def _execute(self, run):
    """Runs one process; returns its results dict, or None if it failed."""
    number = self._count(1)
    log_path = run.workdir / "log.txt"
    self.log(f"[{number}/{self.total}] {run.title}: running (output in {log_path})")
    run.workdir.mkdir(parents=True, exist_ok=True)
    with open(run.workdir / RECORD_FILE, "w") as f:
      json.dump(run.record(), f, indent=2)
    args = self.command + run.args(self.manual_dir, self.data_dir)
    start = time.time()
    with open(log_path, "a") as log:
      log.write(f"$ {shlex.join(args)}\n")
      log.flush()
      returncode = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT,
                                  env=self._env).returncode
    seconds = time.time() - start
    results = _load_results(run.workdir) if returncode == 0 else None
    with self._lock:
      self._durations.append(seconds)
      if results is not None:
        self._prepared.add(run.data_key)
      left = self.total - self._counted
      eta = statistics.fmean(self._durations) * left / self.jobs
    if results is None:
      tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
      self._fail(run, f"failed (exit {returncode}) after {_duration(seconds)}; last lines of "
                      f"{log_path}:\n{tail}")
      return None
    self.log(f"[{number}/{self.total}] {run.title}: done in {_duration(seconds)}, "
             f"{_headline(results)}; ETA {_duration(eta)}")
    return results


# ---------------------------------------------------------------------------------------------
# The whole reproduction.


def _tune_dropout(runner, experiments, out, extra):
  """Runs each experiment's dropout grid on seed 0; returns {name: choice} (dropout_markdown)."""
  runs = [Run(e, 0, out / e.name / "tune_dropout" / f"dropout{d:g}", d, extra, tuning=True)
          for e in experiments for d in DROPOUT_GRID]
  results = runner.run(runs)
  choices = {}
  for experiment in experiments:
    by_dropout = {run.dropout: results[run.workdir] for run in runs
                  if run.experiment == experiment and run.workdir in results}
    if not by_dropout:
      continue
    metric, best = choose_dropout(by_dropout)
    choices[experiment.name] = {
        "metric": metric, "dropout": best,
        "validation": {f"{d:g}": r["weak_model"]["val"][metric] for d, r in by_dropout.items()}}
  return choices


def reproduce(table, seeds, out, manual_dir=None, data_dir=None, tune_dropout=False, only=None,
              jobs=1, extra=(), command=MAIN_COMMAND, log=print):
  """Runs a table's experiments for seeds 0..seeds-1, writes results.md/.csv; returns failures.

  Args:
    table: "mosi" or "recola": runs flags/<table>_*.cfg.
    seeds: number of seeds per experiment.
    out: output folder (one subfolder per experiment).
    manual_dir: passed to stew_tf.main as --manual_dir.
    data_dir: passed to stew_tf.main as --data_dir.
    tune_dropout: pick each experiment's --dropout on validation first (seed 0, paper's grid).
    only: run only the experiments whose name contains this.
    jobs: processes at once.
    extra: flags appended to each stew_tf.main command.
    command: the command that trains one run (tests replace stew_tf.main).
    log: prints one progress line.

  Returns:
    (run title, reason) of each run that did not finish.
  """
  experiments = find_experiments(table, only)
  out = pathlib.Path(out).absolute()
  manual_dir = os.path.abspath(manual_dir) if manual_dir else None
  data_dir = os.path.abspath(data_dir) if data_dir else None
  # The classifier-only model has no encoder, so --dropout does not change it.
  tuned = [e for e in experiments if tune_dropout and e.flag("method") != "cls_only"]
  total = len(tuned) * len(DROPOUT_GRID) + len(experiments) * seeds
  log(f"{table}: {len(experiments)} experiments x {seeds} seeds"
      f"{f' after {len(tuned) * len(DROPOUT_GRID)} dropout-tuning runs' if tuned else ''}; "
      f"{jobs} at a time; results in {out}")
  runner = Runner(total, jobs, command, manual_dir, data_dir, log)
  choices_path = out / CHOICES_FILE
  choices = {}
  if choices_path.exists():
    with open(choices_path) as f:
      choices = json.load(f)
  tuned_now = _tune_dropout(runner, tuned, out, tuple(extra)) if tuned else {}
  if tuned_now:
    choices.update(tuned_now)
    with open(choices_path, "w") as f:
      json.dump(choices, f, indent=2, sort_keys=True)
  runs, untuned = [], []
  for experiment in experiments:
    dropout = tuned_now.get(experiment.name, {}).get("dropout")
    group = [Run(experiment, seed, out / experiment.name / f"seed{seed}", dropout, tuple(extra))
             for seed in range(seeds)]
    if experiment in tuned and dropout is None:
      untuned.extend(group)
    else:
      runs.extend(group)
  runner.skip(untuned, "not run: no dropout-tuning run finished")
  runner.run(runs)
  write_report(table, out, choices)
  if runner.failures:
    log(f"{len(runner.failures)} runs did not finish: "
        f"{', '.join(title for title, _ in runner.failures)}")
  return runner.failures


def write_report(table, out, dropout_choices=None):
  """Writes <out>/results.md and <out>/results.csv from every <out>/*/seed*/results.json."""
  paths = sorted(pathlib.Path(out).glob("*/seed*/results.json"))
  results = []
  for path in paths:
    with open(path) as f:
      results.append(json.load(f))
  rows = summarize(results)
  source = f"Built from {len(paths)} results.json files under {out}."
  pathlib.Path(out).mkdir(parents=True, exist_ok=True)
  (pathlib.Path(out) / "results.md").write_text(
      results_markdown(table, rows, dropout_choices, source))
  (pathlib.Path(out) / "results.csv").write_text(results_csv(rows))
  return rows


def define_flags():
  """The CLI's flags; not defined on import, so that this module and stew_tf.config can share a
  process (both have --manual_dir and --data_dir)."""
  flags.DEFINE_enum("table", None, sorted(TABLES), "Which paper tables to rerun: mosi (II, IV) "
                    "or recola (III, V).")
  flags.DEFINE_integer("seeds", 5, "Seeds 0..N-1 per experiment.", lower_bound=1)
  flags.DEFINE_string("manual_dir", None, "Passed to stew_tf.main: the dataset's files (mosi: "
                      "e.g. ../shared/data/mosi; recola: the folder holding the AVEC 2016 "
                      "folders).")
  flags.DEFINE_string("data_dir", None, "Passed to stew_tf.main: the TFDS data dir.")
  flags.DEFINE_string("out", None, "Output folder. Default: runs/reproduce/<table>.")
  flags.DEFINE_bool("tune_dropout", False, "First pick each experiment's --dropout among "
                    f"{', '.join(map(str, DROPOUT_GRID))} on the validation metric of seed 0.")
  flags.DEFINE_string("only", None, "Run only the experiments (flagfile names) containing this.")
  flags.DEFINE_integer("jobs", 1, "Training processes at once.", lower_bound=1)
  flags.DEFINE_multi_string("extra", [], "Flags for every stew_tf.main command, after the "
                            "flagfile so they override it, e.g. --extra=--epochs=3; repeat it or "
                            "separate several by spaces.")
  flags.mark_flag_as_required("table")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS
  extra = tuple(arg for value in values.extra for arg in shlex.split(value))
  try:
    failures = reproduce(values.table, values.seeds,
                         values.out or os.path.join("runs", "reproduce", values.table),
                         values.manual_dir, values.data_dir, values.tune_dropout, values.only,
                         values.jobs, extra)
  except ReproduceError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
  sys.exit(1 if failures else 0)


if __name__ == "__main__":
  define_flags()
  app.run(main)
