"""Rows of the reproduce tables, as pure functions of results.json dicts (and predictions.npz
contents): one row per (dataset, label, method, strong, weak, protocol) with mean ± std over
seeds, the paper's value, a bootstrap interval over test clips, and the paired difference of
each transfer method to the labels-only `enc_cls` row (and of a row with several teachers to the
best single-teacher row, chosen on validation, and of a row with a real teacher to the row whose
teacher is its dataset's control modality); plus rows of computed baselines.
stew_tf.report renders them.
"""

import dataclasses
import statistics

import numpy as np

from stew_tf import data
from stew_tf import metrics
from stew_tf import paper
from stew_tf import splits
from stew_tf import stats
from stew_tf import tasks
from stew_tf import tfds_builders

TEST_SELECTION_LABEL = "selected on test: optimistic, not a result"
NO_VALIDATION_LABEL = "no validation split: fixed epochs, last epoch"
VALIDATION_LABEL = "selected on validation"
BASELINE_PROTOCOL = "fit on train, chosen on validation"
BASELINE_NAMES = {"trivial": "Trivial baseline", "linear_probe": "Linear probe"}
TRANSFER_METHODS = ("cm_stew", "no_lfa", "no_decoder")
KEY_FIELDS = ("dataset", "label", "method", "strong", "weak")
PREDICTIONS_FILE = "predictions.npz"
RESAMPLES = 1000


@dataclasses.dataclass(frozen=True)
class Metric:
  title: str
  percent: bool  # shown in % (fractions in results.json)
  paper: bool = False  # the paper reports it: Test, Paper and Val columns in results.md
  shown: bool = False  # a Test column in results.md (every metric is in results.csv)
  higher_is_better: bool = True


# Column order of the tables.
METRICS = {
    "accuracy": Metric("acc. %", True, paper=True),
    "f1_weighted": Metric("F1w %", True, paper=True),
    "ccc": Metric("CCC", False, paper=True),
    "balanced_accuracy": Metric("bal. acc. %", True, shown=True),
    "positive_rate": Metric("answered positive %", True, shown=True),
    "precision_negative": Metric("precision neg. %", True),
    "precision_positive": Metric("precision pos. %", True),
    "recall_negative": Metric("recall neg. %", True),
    "recall_positive": Metric("recall pos. %", True),
    "pearson_r": Metric("Pearson r", False, shown=True),
    "mae": Metric("MAE", False, shown=True, higher_is_better=False),
    "rmse": Metric("RMSE", False, higher_is_better=False),
    "acc7": Metric("Acc-7 %", True, shown=True),
    "acc2_has0": Metric("Acc-2 has-0 %", True),
    "f1_has0": Metric("F1 has-0 %", True),
    "acc2_non0": Metric("Acc-2 non-0 %", True, shown=True),
    "f1_non0": Metric("F1 non-0 %", True, shown=True),
}


def display(metric, value):
  return 100 * value if METRICS[metric].percent else value


def digits(metric):
  return 1 if METRICS[metric].percent else 3


def monitor(row):
  """The metric that picks the epoch of a row's task: its primary metric (intervals, paired
  differences)."""
  return tasks.get(row["task"]).monitor


def protocol_label(trainer):
  """How a run chose its epoch, from results["config"]["trainer"]; test selection is labelled."""
  labels = []
  if trainer["select_on"] == splits.TEST:
    labels.append(TEST_SELECTION_LABEL)
  if trainer["validation"] == splits.VALIDATION_PROTOCOLS[1]:  # none: no split to select on
    labels.append(NO_VALIDATION_LABEL)
  return "; ".join(labels) or VALIDATION_LABEL


def _everywhere(point_metric):
  return lambda labels, scores: point_metric(labels, scores, np.ones(labels.shape, bool))


# f(labels, scores) of flat arrays, for the bootstrap of each task's monitored metric.
_POINT_METRICS = {"accuracy": _everywhere(metrics.binary_accuracy),
                  "ccc": _everywhere(metrics.ccc)}


def bootstrap(metric, test_runs, resamples=RESAMPLES):
  """{"low", "high"} (display units) of the clip bootstrap, or {"note": why there is none}.

  Args:
    metric: a task's monitor ("accuracy" or "ccc").
    test_runs: per seed, predictions.npz contents (test_clip, test_label, test_score) or None.
    resamples: bootstrap resamples.
  """
  missing = sum(run is None for run in test_runs)
  if missing:
    return {"note": f"no {PREDICTIONS_FILE} in {missing} of {len(test_runs)} runs"}
  triples = [(run["test_clip"], run["test_label"], run["test_score"]) for run in test_runs]
  try:
    result = stats.bootstrap_interval(_POINT_METRICS[metric], triples, resamples)
  except ValueError as error:
    return {"note": str(error)}
  return {"low": display(metric, result["low"]), "high": display(metric, result["high"])}


def _split_values(results, split, metric):
  """Display values of a weak-model metric over runs; None if a run lacks it (no split)."""
  values = [(r["weak_model"].get(split) or {}).get(metric) for r in results]
  return None if None in values else [display(metric, v) for v in values]


def _row_metrics(results, paper_cell):
  # Metrics every run has (results.json from older versions have fewer).
  names = [m for m in METRICS if all(m in r["weak_model"][splits.TEST] for r in results)]
  row_metrics = {}
  for metric in names:
    validation = _split_values(results, splits.VALIDATION, metric)
    row_metrics[metric] = {
        splits.TEST: stats.mean_std(_split_values(results, splits.TEST, metric)),
        splits.VALIDATION: validation and stats.mean_std(validation),
        "paper": paper_cell.get(metric),
        "per_seed": {r["seed"]: display(metric, r["weak_model"][splits.TEST][metric])
                     for r in results}}
  return row_metrics


def _dropouts(results):
  """The weak encoders' dropouts of a row's runs (none for a classifier on raw features)."""
  encoders = [r["config"]["student"]["encoder"] for r in results]
  return sorted({encoder["dropout"] for encoder in encoders if encoder})


def _row_order(key):
  dataset, label, method, strong, weak, protocol = key
  return (dataset, label, strong is not None, strong or "", weak,
          list(paper.METHOD_NAMES).index(method), protocol != VALIDATION_LABEL, protocol)


def summarize(results, predictions=None, resamples=RESAMPLES):
  """One row per (dataset, label, method, strong, weak, protocol) of results.json dicts.

  Each row holds its task, the number of seeds, per weak-model metric the mean and std
  (ddof = 1) over seeds on test and validation (in display units: % or fraction), the per-seed
  test values and the paper's value; the mean epochs per stage, the weak encoders' dropouts, the
  paper's table, the bootstrap interval of the task's monitored metric (`interval`) and, for
  transfer rows, the paired difference to the enc_cls row of the same weak modality and protocol
  (`paired`), for rows with several teachers also to the best single-teacher row
  (`paired_single`), for rows with a real teacher also to the control row of the same method
  (`paired_control`, see control_modality). Rows follow the paper.

  Args:
    results: results.json dicts (their settings under "config").
    predictions: per result, its predictions.npz contents or None (no interval then).
    resamples: bootstrap resamples.
  """
  predictions = predictions or [None] * len(results)
  groups = {}
  for result, prediction in zip(results, predictions):
    key = (tuple(result[k] for k in KEY_FIELDS)
           + (protocol_label(result["config"]["trainer"]),))
    groups.setdefault(key, []).append((result, prediction))
  rows = []
  for key in sorted(groups, key=_row_order):
    runs = [result for result, _ in groups[key]]
    paper_cell = paper.PAPER.get(key[:5], {})
    task = runs[0]["config"]["data"]["task"]  # the label's: one per row
    rows.append({
        **dict(zip(KEY_FIELDS, key)), "protocol": key[5], "kind": "model", "task": task,
        "seeds": len(runs), "metrics": _row_metrics(runs, paper_cell),
        "epochs": {stage: statistics.fmean(r["epochs"][stage] for r in runs)
                   for stage in ("stage1", "stage2")},
        "dropout": _dropouts(runs),
        "paper_table": paper_cell.get("table"),
        "interval": bootstrap(tasks.get(task).monitor, [p for _, p in groups[key]], resamples),
        "paired": None, "paired_single": None, "paired_control": None})
  _add_paired_differences(rows)
  _add_best_single_teacher_differences(rows)
  _add_control_differences(rows)
  return rows


def _paired(row, reference, metric):
  """`row`'s `metric` minus `reference`'s, paired by seed, with its verdict (or a note)."""
  try:
    difference = stats.paired_difference(row["metrics"][metric]["per_seed"],
                                         reference["metrics"][metric]["per_seed"])
  except ValueError as error:
    return {"note": str(error)}
  interval = None if difference["low"] is None else (difference["low"], difference["high"])
  return {**difference, "metric": metric,
          "verdict": stats.verdict(interval, METRICS[metric].higher_is_better)}


def _add_paired_differences(rows):
  """Sets each transfer row's `paired`: its monitored metric minus enc_cls's, paired by seed."""
  references = {(r["dataset"], r["label"], r["weak"], r["protocol"]): r
                for r in rows if r["method"] == "enc_cls"}
  for row in rows:
    if row["method"] not in TRANSFER_METHODS:
      continue
    reference = references.get((row["dataset"], row["label"], row["weak"], row["protocol"]))
    metric = monitor(row)
    if reference is None or metric not in reference["metrics"]:
      row["paired"] = {"note": "no Encoder + Classifier row with the same protocol to pair with"}
      continue
    row["paired"] = _paired(row, reference, metric)
    if "note" not in row["paired"]:
      claims = (row["metrics"][metric]["paper"], reference["metrics"][metric]["paper"])
      # The paper's own difference between the two rows, where it has both.
      row["paired"]["paper"] = None if None in claims else claims[0] - claims[1]


def several_teachers(row):
  """Whether a row's weak model was taught by several strong modalities ("text+video")."""
  return "+" in (row["strong"] or "")


def _add_best_single_teacher_differences(rows):
  """Sets each several-teacher row's `paired_single`: its monitored metric minus that of the
  single-teacher transfer row of the same weak modality and protocol whose mean on validation
  (never test) is best, paired by seed."""
  for row in filter(several_teachers, rows):
    metric = monitor(row)
    singles = [r for r in rows if r["method"] in TRANSFER_METHODS and r["strong"]
               and not several_teachers(r) and metric in r["metrics"]
               and r["metrics"][metric][splits.VALIDATION]
               and all(r[k] == row[k] for k in ("dataset", "label", "weak", "protocol"))]
    if not singles:
      row["paired_single"] = {"note": "no single-teacher row with the same protocol to pair with"}
      continue
    sign = 1 if METRICS[metric].higher_is_better else -1
    best = max(singles, key=lambda r: sign * r["metrics"][metric][splits.VALIDATION][0])
    row["paired_single"] = {**_paired(row, best, metric), "method": best["method"],
                            "strong": best["strong"],
                            "validation": best["metrics"][metric][splits.VALIDATION][0]}


def control_modality(dataset):
  """The modality of `dataset` whose teacher is a control, one that knows the training labels
  and nothing else (its builder's CONTROL_MODALITY), or None: a builder without such a view
  declares none."""
  module = tfds_builders.builder_module(data.DATASETS[dataset].builder)
  return getattr(module, "CONTROL_MODALITY", None)


def is_control(row):
  """Whether a row is a transfer whose teacher is its dataset's control modality."""
  return (row["method"] in TRANSFER_METHODS
          and row["strong"] == control_modality(row["dataset"]))


def _add_control_differences(rows):
  """Sets `paired_control` of each transfer row with a real teacher that has a control row (the
  same dataset, label, weak modality, method and protocol): its monitored metric minus the
  control's, paired by seed. Both get the method's training signal; only the real teacher knows
  more than the labels, so this is what its knowledge adds."""
  fields = ("dataset", "label", "weak", "method", "protocol")
  controls = {tuple(r[k] for k in fields): r for r in rows if is_control(r)}
  for row in rows:
    control = controls.get(tuple(row[k] for k in fields))
    if control is None or control is row:
      continue
    # The same dataset and label: the same task, so the control has the monitored metric.
    row["paired_control"] = {**_paired(row, control, monitor(row)), "strong": control["strong"]}


def baseline_rows(computed, resamples=RESAMPLES):
  """Rows of computed baselines: {(dataset, label, weak): [baselines.Baseline, ...]}."""
  rows = []
  for (dataset, label, weak), found in sorted(computed.items()):
    for baseline in found:
      names = [m for m in METRICS if m in baseline.test]
      row_metrics = {m: {splits.TEST: (display(m, baseline.test[m]), None),
                         splits.VALIDATION: (display(m, baseline.validation[m]), None),
                         "paper": None}
                     for m in names}
      clips, labels, scores = baseline.test_run
      run = {"test_clip": clips, "test_label": labels, "test_score": scores}
      rows.append({
          "dataset": dataset, "label": label, "method": baseline.kind, "strong": None,
          "weak": weak, "protocol": BASELINE_PROTOCOL, "kind": "baseline",
          "task": baseline.task, "seeds": None, "metrics": row_metrics, "epochs": None,
          "dropout": [], "paper_table": None,
          "interval": bootstrap(tasks.get(baseline.task).monitor, [run], resamples),
          "paired": None, "paired_single": None, "paired_control": None,
          "description": baseline.description, "test_labels": labels})
  return rows
