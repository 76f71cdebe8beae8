"""The reproduce tables as markdown (results.md) and CSV (results.csv), from stew_tf.table_rows rows:
paper columns, secondary metrics, bootstrap intervals, paired differences with verdicts,
baselines, and the protocol label of every row ("selected on test: optimistic, not a result").
"""

import csv
import io

import numpy as np

from stew_tf import paper
from stew_tf import splits
from stew_tf import table_rows
from stew_tf import tasks


def all_positive_baseline(negative, positive):
  """Accuracy and weighted F1 (eq. 11) of answering "positive" for every segment."""
  total = negative + positive
  # Positive class: TP = positive, FP = negative, FN = 0. The negative class has F1 = 0.
  f1_positive = 2 * positive / (2 * positive + negative)
  return positive / total, f1_positive * positive / total



def _mean_std_cell(metric, mean_std):
  if mean_std is None:
    return "-"
  mean, std = mean_std
  places = table_rows.digits(metric)
  return f"{mean:.{places}f}" if std is None else f"{mean:.{places}f} ± {std:.{places}f}"


def _interval_cell(row):
  interval, metric = row["interval"], table_rows.monitor(row)
  if "note" in interval:
    return "-"
  places = table_rows.digits(metric)
  return f"[{interval['low']:.{places}f}, {interval['high']:.{places}f}]"


def _paired_cells(row, key="paired"):
  """(difference, verdict) cells of a transfer row's `key` ("paired": to Encoder + Classifier,
  "paired_single": to the best single teacher, "paired_control": to the control); ("", "") for
  other rows."""
  paired = row[key]
  if not paired:
    return "", ""
  if "note" in paired:
    return "-", "-"
  places = table_rows.digits(paired["metric"])
  interval = ("" if paired["low"] is None
              else f" [{paired['low']:+.{places}f}, {paired['high']:+.{places}f}]")
  return (f"{paired['mean']:+.{places}f}{interval}, > 0 on {paired['positive']} of "
          f"{paired['n']} seeds", paired["verdict"])


def _columns(rows):
  found = {metric for row in rows for metric in row["metrics"]}
  return ([m for m in table_rows.METRICS if m in found and table_rows.METRICS[m].paper],
          [m for m in table_rows.METRICS if m in found and table_rows.METRICS[m].shown])


def _method_name(row):
  return table_rows.BASELINE_NAMES.get(row["method"]) or paper.METHOD_NAMES[row["method"]]


def _modalities(row):
  return f"{row['strong']} → {row['weak']}" if row["strong"] else row["weak"]


def _markdown_row(row, paper_metrics, shown_metrics):
  cells = [row["label"], _method_name(row), _modalities(row),
           "-" if row["seeds"] is None else str(row["seeds"])]
  for metric in paper_metrics:
    values = row["metrics"].get(metric)
    paper_value = values and values["paper"]
    cells += [_mean_std_cell(metric, values and values[splits.TEST]),
              "-" if paper_value is None else f"{paper_value:.{table_rows.digits(metric)}f}"]
  cells += [_mean_std_cell(m, row["metrics"].get(m, {}).get(splits.VALIDATION))
            for m in paper_metrics]
  cells += [_mean_std_cell(m, row["metrics"].get(m, {}).get(splits.TEST))
            for m in shown_metrics]
  cells += [_interval_cell(row), *_paired_cells(row), row["protocol"], row["paper_table"] or "-"]
  if row["epochs"] is None:
    return cells + ["-", "-"]
  strong_epochs = f"{row['epochs']['stage1']:.1f}" if row["strong"] else "-"
  return cells + [f"{strong_epochs} / {row['epochs']['stage2']:.1f}",
                  ", ".join(f"{d:g}" for d in row["dropout"])]


def markdown_table(header, body):
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def _table_markdown(rows):
  paper_metrics, shown_metrics = _columns(rows)
  primary = {table_rows.monitor(row) for row in rows}
  primary_title = " / ".join(table_rows.METRICS[m].title for m in table_rows.METRICS if m in primary)
  header = ["Target", "Method", "Modalities", "Seeds"]
  for metric in paper_metrics:
    header += [f"Test {table_rows.METRICS[metric].title}", "Paper"]
  header += [f"Val {table_rows.METRICS[m].title}" for m in paper_metrics]
  header += [f"Test {table_rows.METRICS[m].title}" for m in shown_metrics]
  header += [f"Test {primary_title}: 95 % CI over clips", f"Δ {primary_title} vs Encoder + "
             "Classifier (paired by seed, 95 % CI)", "Verdict", "Protocol", "Paper table",
             "Epochs (strong / weak)", "Dropout"]
  return markdown_table(header, [_markdown_row(r, paper_metrics, shown_metrics) for r in rows])


_CONVENTIONS = (
    "Metrics of the weak model (the one deployed), on the test split (CMU-MOSI: the 31 public "
    "test videos; RECOLA: the AVEC 2016 dev partition, as in the paper) and on our validation "
    "split. Each cell is the mean ± the sample standard deviation (ddof = 1) over seeds; a cell "
    "from a single seed has no ±. Accuracy and weighted F1 (eq. 11) are in %, CCC (eq. 12) is "
    "a fraction in [-1, 1]. \"Paper\" is the paper's single value for the same cell (it reports "
    "no spread); \"-\" marks a cell the paper does not have. Epochs are the mean numbers of "
    "epochs each stage trained (early stopping included). The CI column is a 95 % percentile "
    f"bootstrap over test clips ({table_rows.RESAMPLES} resamples; each resample draws the clips "
    "once and applies them to every seed, then averages over seeds). The Δ column is each "
    "transfer row's difference to the Encoder + Classifier row of the same weak modality and "
    "protocol, paired by seed (mean, 95 % t-interval, seeds where it is positive); the verdict is "
    "\"helps\" or \"hurts\" when that interval excludes 0, else \"no detectable difference\". "
    "Protocol: how the reported epoch was chosen.")


def _best_single_teacher_markdown(rows):
  """The rows with several teachers against the best single-teacher row (chosen on
  validation), or None without such rows."""
  several = [r for r in rows if r.get("paired_single")]
  if not several:
    return None
  body = []
  for row in several:
    best = row["paired_single"]
    reference = ("-" if "note" in best else
                 f"{paper.METHOD_NAMES[best['method']]} {best['strong']} → {row['weak']} "
                 f"(val {best['validation']:.{table_rows.digits(best['metric'])}f})")
    body.append([row["label"], _method_name(row), _modalities(row), reference,
                 *_paired_cells(row, "paired_single"), row["protocol"]])
  header = ["Target", "Method", "Modalities", "Best single teacher (mean on validation)",
            "Δ vs it (paired by seed, 95 % CI)", "Verdict", "Protocol"]
  return ("Several teachers against the best single-teacher row of the same weak modality and "
          "protocol (best: the highest mean of the monitored metric on validation over seeds, "
          "never test), paired by seed on test:\n\n" + markdown_table(header, body))


def _against_control_markdown(rows):
  """The rows with a real teacher against the control row of the same method, weak modality and
  protocol, or None without such rows."""
  paired = [r for r in rows if r["paired_control"]]
  if not paired:
    return None
  body = [[row["label"], _method_name(row), _modalities(row),
           f"{row['paired_control']['strong']} → {row['weak']}",
           *_paired_cells(row, "paired_control"), row["protocol"]] for row in paired]
  header = ["Target", "Method", "Modalities", "Control", "Δ vs the control (paired by seed, "
            "95 % CI)", "Verdict", "Protocol"]
  return ("Against the control: each transfer row minus the row of the same method, weak "
          "modality and protocol whose teacher is the dataset's control modality, which knows the "
          "training labels and nothing else. Both get the method's training signal, so the "
          "difference, paired by seed on test, is what the real teacher knows beyond the labels:"
          "\n\n" + markdown_table(header, body))


def _baseline_lines(rows):
  lines = []
  for row in rows:
    if row["kind"] == "baseline":
      lines.append(f"- {_method_name(row)}, {row['label']}, {row['weak']}: "
                   f"{row['description']}.")
  first = {}
  for row in rows:
    if row["kind"] == "baseline" and tasks.get(row["task"]).binary:
      first.setdefault((row["dataset"], row["label"]), row["test_labels"])
  for labels in first.values():
    positive = int(np.sum(labels == 1))
    accuracy, f1 = all_positive_baseline(labels.size - positive, positive)
    lines.append(f"- Always answering \"positive\" on the test split ({labels.size - positive} "
                 f"negative / {positive} positive segments) scores {100 * accuracy:.1f} % "
                 f"accuracy and {100 * f1:.1f} % weighted F1.")
  return lines


def results_markdown(table, rows, tuned_choices=None, source=None, header_lines=(),
                     notes=(), figure=None):
  """results.md: title, how it was made, conventions, baselines, the table, a link to `figure`
  (the paired differences' image beside results.md, if one was drawn), then the notes."""
  title = f"# CM-StEW reproduction: {paper.TABLES.get(table, table)}"
  if any(table_rows.TEST_SELECTION_LABEL in row["protocol"] for row in rows):
    title += f" ({table_rows.TEST_SELECTION_LABEL})"
  parts = [title, *filter(None, ["\n".join(header_lines), _CONVENTIONS])]
  if any(row["kind"] == "model" and "ccc" in row["metrics"] for row in rows):
    parts.append("Any constant prediction has CCC 0.000 and Pearson r 0.000.")
  baseline_lines = _baseline_lines(rows)
  if baseline_lines:
    parts.append("Baselines, computed from the dataset (no training of ours):\n"
                 + "\n".join(baseline_lines))
  row_notes = [f"- {_method_name(r)} {_modalities(r)} ({r['protocol']}): {r[k]['note']}"
               for r in rows
               for k in ("interval", "paired", "paired_single", "paired_control")
               if r.get(k) and "note" in r[k]]
  if row_notes or notes:
    parts.append("Notes on the table below:\n" + "\n".join([*row_notes, *notes]))
  parts.append(_table_markdown(rows) if rows else "No finished run yet.")
  several_teachers = _best_single_teacher_markdown(rows)
  if several_teachers:
    parts.append(several_teachers)
  against_control = _against_control_markdown(rows)
  if against_control:
    parts.append(against_control)
  if figure:
    parts.append(f"![Paired differences]({figure})")
  if tuned_choices:
    parts.append(tuned_markdown(tuned_choices))
  if source:
    parts.append(source)
  return "\n\n".join(parts) + "\n"


def _settings_text(settings):
  """"name value, ..."; a setting with one value per teacher ("0.4,0.2") as "0.4/0.2"."""
  def number(value):
    return "/".join(f"{float(part):.3g}" for part in str(value).split(","))
  return ", ".join(f"{name} {number(value)}" for name, value in settings.items()) or "-"


def tuned_markdown(choices):
  """The --tune section: each row's study, its best validation value and the chosen settings,
  and the budget."""
  header = ["Experiment", "Trials (finished)", "Best validation", "Chosen settings",
            "Teacher's settings", "Trials' wall time"]
  body = []
  for name in sorted(choices):
    choice = choices[name]
    body.append([name, f"{choice['trials']} ({choice['completed']})",
                 f"{choice['validation']:.4f}", _settings_text(choice["settings"]),
                 _settings_text(choice["teacher"]), f"{choice['trial_seconds'] / 60:.1f} min"])
  first = next(iter(choices.values()))
  trials = {choice["trials"] for choice in choices.values()}
  total = sum(choice["trial_seconds"] for choice in choices.values()) / 60
  heading = (
      f"## Settings chosen on validation (equal budget: {', '.join(map(str, sorted(trials)))} "
      f"trials per row)\n\nEach row's settings are the best trial of its own stew_tf.tune study "
      f"({first['objective']}, TPE sampler seed {first['sampler_seed']}, every trial on seed "
      f"{first['sampler_seed']}, which no seed of the table uses); each teacher of a transfer "
      "row has the settings chosen for its strong modality's labels-only row (a/b: one per "
      "teacher, in the row's order of strong modalities). The test split played "
      f"no part. {sum(c['trials'] for c in choices.values())} trials in all, {total:.0f} min "
      "of trials' wall time (summed over processes). Studies: `<out>/<experiment>/study/study.md`.")
  return heading + "\n\n" + markdown_table(header, body)


def _csv_number(value, places):
  return "" if value is None else f"{value:.{places}f}"


# The columns of a row's difference to its control, in a table that has one (only then).
_CONTROL_FIELDS = ["control_strong", "control_diff_mean", "control_diff_low", "control_diff_high",
                   "control_positive_seeds", "control_seeds", "control_verdict"]


def results_csv(rows):
  """results.csv: one line per row, every metric (% columns named *_pct), intervals, verdicts."""
  paper_metrics, _ = _columns(rows)
  with_control = any(row["paired_control"] for row in rows)
  names = [m for m in table_rows.METRICS if any(m in row["metrics"] for row in rows)]
  fields = ["dataset", "label", "method", "strong", "weak", "protocol", "seeds"]
  for metric in names:
    unit = f"{metric}_pct" if table_rows.METRICS[metric].percent else metric
    fields += [f"{splits.TEST}_{unit}_mean", f"{splits.TEST}_{unit}_std"]
    fields += [f"paper_{splits.TEST}_{unit}"] if metric in paper_metrics else []
    fields += [f"{splits.VALIDATION}_{unit}_mean", f"{splits.VALIDATION}_{unit}_std"]
  fields += ["ci_metric", "test_ci95_low", "test_ci95_high", "paired_diff_mean", "paired_diff_low",
             "paired_diff_high", "paired_positive_seeds", "paired_seeds", "verdict",
             *(_CONTROL_FIELDS if with_control else []), "paper_table", "epochs_stage1_mean",
             "epochs_stage2_mean", "dropout"]
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(fields)
  for row in rows:
    writer.writerow(_csv_line(row, names, paper_metrics, with_control))
  return buffer.getvalue()


def _paired_csv(paired, places):
  """Mean, low, high, positive seeds, seeds and verdict of a paired difference ("" if none)."""
  paired = paired or {}
  return ([_csv_number(paired.get(k), places) for k in ("mean", "low", "high")]
          + [paired.get("positive", ""), paired.get("n", ""), paired.get("verdict", "")])


def _csv_line(row, names, paper_metrics, with_control):
  line = [row["dataset"], row["label"], row["method"], row["strong"] or "", row["weak"],
          row["protocol"], "" if row["seeds"] is None else row["seeds"]]
  for metric in names:
    # Two more digits than results.md, so that the CSV loses nothing a reader would use.
    places = table_rows.digits(metric) + 2
    values = row["metrics"].get(metric, {})
    numbers = [*(values.get(splits.TEST) or (None, None))]
    numbers += [values.get("paper")] if metric in paper_metrics else []
    numbers += [*(values.get(splits.VALIDATION) or (None, None))]
    line += [_csv_number(x, places) for x in numbers]
  metric = table_rows.monitor(row)
  interval = row["interval"]
  places = table_rows.digits(metric) + 2
  line += [metric] + [_csv_number(interval.get(k), places) for k in ("low", "high")]
  line += _paired_csv(row["paired"], places)
  if with_control:
    control = row["paired_control"] or {}
    line += [control.get("strong", ""), *_paired_csv(control, places)]
  epochs = row["epochs"] or {}
  return line + [row["paper_table"] or "", _csv_number(epochs.get("stage1"), 2),
                 _csv_number(epochs.get("stage2"), 2), " ".join(f"{d:g}" for d in row["dropout"])]
