"""verdict.png, the reproduce table's verdict at a glance: for every transfer row, its test metric
minus that of the Encoder + Classifier row of the same weak modality and protocol, paired by seed
(the mean, its 95 % interval and one dot per seed), with the paper's claimed difference marked;
in a panel of its own, each transfer row with a real teacher minus its control row (the same
method taught by the dataset's control modality, stew_tf.table_rows.control_modality).

Drawn with matplotlib's Agg canvas (no display, no pyplot state), from stew_tf.table_rows rows.
"""

import dataclasses

from matplotlib.backends import backend_agg
from matplotlib import figure as figure_lib

from stew_tf import paper
from stew_tf import table_rows

FILE = "verdict.png"
DPI = 100
WIDTH = 9.0  # inches
PANEL_HEIGHT = 1.4  # inches: axis labels and ticks
LEGEND_HEIGHT = 0.8  # inches: the title and the legend
ROW_HEIGHT = 0.75  # inches per transfer row
# Seed dots lie in a band below their row's interval, spread so that equal values stay visible.
DOT_OFFSET = -0.22
DOT_SPREAD = 0.16
# What a panel's differences subtract from the transfer row, in its axis label.
ENC_CLS = "Encoder + Classifier"
CONTROL = "its control (the same method, the control teacher)"


@dataclasses.dataclass(frozen=True)
class Difference:
  """One transfer row's paired difference, in the display units of `metric` (% or fraction)."""
  label: str  # the y tick: method, modalities, target, protocol, verdict
  metric: str
  reference: str  # ENC_CLS or CONTROL: what is subtracted
  per_seed: dict  # {seed: transfer minus the reference}
  mean: float
  low: float | None  # the 95 % t-interval; None with a single seed
  high: float | None
  paper_claim: float | None  # the paper's transfer value minus its enc_cls value


def _label(row, verdict, control=None):
  """Method, modalities and target; the control's modalities, if subtracted; the protocol on a
  line of its own unless the default; the verdict."""
  minus = f"minus {control} → {row['weak']}\n" if control else ""
  protocol = "" if row["protocol"] == table_rows.VALIDATION_LABEL else f"{row['protocol']}\n"
  return (f"{paper.METHOD_NAMES[row['method']]}, {row['strong']} → {row['weak']} "
          f"({row['label']})\n{minus}{protocol}{verdict}")


def differences(rows):
  """A Difference for each transfer row that has a paired difference to Encoder + Classifier,
  then for each that has one to its control, in the rows' order."""
  found = []
  for row in rows:
    paired = row["paired"]
    if row["method"] not in table_rows.TRANSFER_METHODS or not paired or "note" in paired:
      continue
    found.append(Difference(
        _label(row, paired["verdict"]), paired["metric"], ENC_CLS, paired["per_seed"],
        paired["mean"], paired["low"], paired["high"], paired["paper"]))
  for row in rows:
    control = row["paired_control"]
    if not control or "note" in control:
      continue
    # The paper has no control: no claim to mark.
    found.append(Difference(
        _label(row, control["verdict"], control["strong"]), control["metric"], CONTROL,
        control["per_seed"], control["mean"], control["low"], control["high"], None))
  return found


def _axis_label(metric, reference):
  spec = table_rows.METRICS[metric]
  name, unit = ((metric.replace("_", " "), "percentage points") if spec.percent
                else (spec.title, spec.title))
  return f"Test {name}: transfer minus {reference}\npaired by seed ({unit})"


def _draw_panel(axes, found):
  """One metric's rows, top to bottom: interval, mean, seed dots, the paper's claim, zero."""
  ys = [-i for i in range(len(found))]
  with_interval = [(y, d) for y, d in zip(ys, found) if d.low is not None]
  axes.hlines([y for y, _ in with_interval], [d.low for _, d in with_interval],
              [d.high for _, d in with_interval], colors="tab:blue", linewidth=2.5,
              label="95 % interval of the mean", gid="interval")
  axes.plot([d.mean for d in found], ys, "o", color="tab:blue", markersize=8,
            label="mean difference", gid="mean")
  dots = [(value, y + DOT_OFFSET + DOT_SPREAD * (j / max(len(d.per_seed) - 1, 1) - 0.5))
          for y, d in zip(ys, found) for j, value in enumerate(d.per_seed.values())]
  axes.scatter([x for x, _ in dots], [y for _, y in dots], s=18, color="0.35", zorder=3,
               label="one seed", gid="seeds")
  claimed = [(y, d.paper_claim) for y, d in zip(ys, found) if d.paper_claim is not None]
  axes.plot([c for _, c in claimed], [y for y, _ in claimed], "D", color="tab:red",
            markersize=8, fillstyle="none", markeredgewidth=2, label="paper's claim",
            gid="paper_claim")
  axes.axvline(0.0, color="black", linewidth=1, gid="zero")
  axes.set_yticks(ys, [d.label for d in found])
  axes.set_ylim(min(ys) - 0.6, 0.6)
  axes.set_xlabel(_axis_label(found[0].metric, found[0].reference))
  axes.grid(axis="x", color="0.9")


def verdict_figure(rows):
  """The matplotlib Figure (one panel per paired metric and reference), or None without a
  paired difference."""
  found = differences(rows)
  if not found:
    return None
  kinds = list(dict.fromkeys((d.metric, d.reference) for d in found))
  panels = [[d for d in found if (d.metric, d.reference) == kind] for kind in kinds]
  height = LEGEND_HEIGHT + sum(PANEL_HEIGHT + ROW_HEIGHT * len(panel) for panel in panels)
  figure = figure_lib.Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
  backend_agg.FigureCanvasAgg(figure)
  title = "Does the transfer beat the labels-only model of its weak modality?"
  if any(d.reference == CONTROL for d in found):
    title = ("Does the transfer beat the labels-only model of its weak modality, and its "
             "control?")
  figure.suptitle(title)
  grid = figure.add_gridspec(len(panels), 1, height_ratios=[len(p) + 1 for p in panels])
  for position, panel in enumerate(panels):
    _draw_panel(figure.add_subplot(grid[position]), panel)
  # One legend below every panel, where it hides no data.
  figure.legend(*figure.axes[0].get_legend_handles_labels(), loc="outside lower center",
                ncols=4, frameon=False)
  return figure


def write_verdict(rows, path):
  """Writes verdict.png to `path` and returns the path; None (and no file) without a transfer
  row that has a paired difference."""
  figure = verdict_figure(rows)
  if figure is None:
    path.unlink(missing_ok=True)  # a figure of earlier rows would contradict results.md
    return None
  # No timestamp or version in the file: the same rows give the same bytes.
  figure.savefig(path, format="png", metadata={"Software": None})
  return path
