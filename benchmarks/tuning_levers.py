"""What shorter trials would save in finished studies: smaller patience and median pruning,
replayed on the trials' recorded validation curves (no training).

Each COMPLETE trial's log.txt holds one line per epoch of the weak model's stage with its
validation metric and seconds. A lever is replayed on those curves, trial by trial in number
order, and prints, per study: the trial-seconds (recorded, and the replay's), the best trial's
validation value and whether the same trial still wins. The replay keeps the trials' settings:
a real study with the lever would let TPE see other values and draw other settings, so the
quality columns are indicative; the time columns are what the lever costs on these settings.
A trial's seconds outside its epochs (start-up, the teacher's cache, data, export, test)
stay as recorded.

Levers:
  patience P   stop after P epochs without a new best (the studies ran with their flags' patience)
  median W     Optuna's MedianPruner: from epoch W on, stop a trial whose best value so far is
               below the median of earlier trials' values at that epoch (5 start-up trials)
Usage, from the repository root:
  PYTHONPATH=. .venv/bin/python benchmarks/tuning_levers.py STUDY_DIR... [--patience=5,3]
      [--median=5,10]
"""

import argparse
import json
import pathlib
import re

import numpy as np

LOGGED_PRECISION = 5e-5  # log.txt prints 4 decimals
STARTUP_TRIALS = 5  # Optuna MedianPruner's default n_startup_trials
EPOCH_LINE = re.compile(r"^\[stage\d (?P<modality>\S+)\] epoch +(?P<epoch>\d+)/\d+ .*\| +validation "
                        r"(?P<metrics>.*?) +(\*best\* +)?\((?P<seconds>[\d.]+)s\)$")


class Curve:
  """A trial's weak-stage epochs: validation values and seconds, and its other seconds."""

  def __init__(self, number, values, seconds, wall_seconds, patience):
    self.number, self.values, self.seconds = number, np.array(values), np.array(seconds)
    self.other_seconds = wall_seconds - self.seconds.sum()
    self.patience = patience


def _curve(trial, metric):
  workdir = pathlib.Path(trial["workdir"])
  results = json.loads((workdir / "results.json").read_text())
  weak = results["weak"]
  values, seconds = {}, {}
  for line in (workdir / "log.txt").read_text().splitlines():
    match = EPOCH_LINE.match(line)
    if match and match["modality"] == weak:
      # A resumed trial may run an epoch again: its value is the last run's, its time all runs'.
      epoch, pairs = int(match["epoch"]), match["metrics"].split()
      values[epoch] = float(dict(zip(pairs[::2], pairs[1::2]))[metric])
      seconds[epoch] = seconds.get(epoch, 0.0) + float(match["seconds"])
  epochs = sorted(values)
  curve = Curve(trial["number"], [values[e] for e in epochs], [seconds[e] for e in epochs],
                trial["wall_seconds"], results["config"]["trainer"]["patience"])
  if abs(curve.values.max() - trial["validation"]) > LOGGED_PRECISION:
    raise SystemExit(f"{workdir}/log.txt: its epochs' best {metric} {curve.values.max()} is not "
                     f"the trial's {trial['validation']}; cannot replay it")
  return curve


def stop_epoch(values, patience, prune_at=None):
  """The number of epochs run: early stopping after `patience` epochs without a new best, or
  earlier at the first epoch `prune_at(epoch, best so far)` says to prune."""
  best, since = -np.inf, 0
  for epoch, value in enumerate(values):
    if value > best:
      best, since = value, 0
    else:
      since += 1
    if prune_at is not None and prune_at(epoch, best):
      return epoch + 1, True
    if since >= patience:
      return epoch + 1, False
  return len(values), False


def replay(curves, patience=None, median_warmup=None):
  """(trial-seconds, best value, best trial number, pruned trials) with the lever applied."""
  seconds, finished, pruned = 0.0, [], 0
  for curve in curves:
    earlier = [c for c, _ in finished]

    def prune_at(epoch, best):
      if median_warmup is None or len(earlier) < STARTUP_TRIALS or epoch + 1 < median_warmup:
        return False
      at_epoch = [c.values[min(epoch, len(c.values) - 1)] for c in earlier]
      return best < np.median(at_epoch)

    epochs, was_pruned = stop_epoch(curve.values, patience or curve.patience, prune_at)
    if epochs > len(curve.values):
      raise AssertionError("a replay cannot run longer than the recorded trial")
    seconds += curve.other_seconds + curve.seconds[:epochs].sum()
    pruned += was_pruned
    # A pruned trial reports no value in the study; Optuna compares later trials with its curve.
    finished.append((curve, None if was_pruned else curve.values[:epochs].max()))
  valued = [(value, c.number) for c, value in finished if value is not None]
  best_value, best_number = max(valued, key=lambda pair: (pair[0], -pair[1]))
  return seconds, best_value, best_number, pruned


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("studies", nargs="+", type=pathlib.Path)
  parser.add_argument("--patience", default="5,3")
  parser.add_argument("--median", default="5,10")
  args = parser.parse_args()
  levers = [("as run", {})]
  levers += [(f"patience {p}", {"patience": int(p)}) for p in args.patience.split(",")]
  levers += [(f"median from epoch {w}", {"median_warmup": int(w)})
             for w in args.median.split(",")]
  levers += [(f"patience {p} + median from {w}", {"patience": int(p), "median_warmup": int(w)})
             for p in args.patience.split(",")[:1] for w in args.median.split(",")[:1]]
  totals = {name: 0.0 for name, _ in levers}
  print("| study | lever | trial-min | of as run | pruned | best validation | best trial |")
  print("|---|---|---:|---:|---:|---:|---:|")
  for study in args.studies:
    record = json.loads((study / "study.json").read_text())
    metric = record["objective"].split()[-1]
    curves = [_curve(t, metric) for t in record["trials"] if t["state"] == "COMPLETE"]
    recorded = sum(t["wall_seconds"] or 0.0 for t in record["trials"] if t["state"] == "COMPLETE")
    as_run = replay(curves)
    # Trials whose values tie to 4 decimals may swap places; the best value may not change.
    if not np.isclose(as_run[0], recorded) or \
        abs(as_run[1] - record["best"]["validation"]) > LOGGED_PRECISION:
      raise SystemExit(f"{study}: the replay without a lever does not give the study as run")
    other = np.array([c.other_seconds for c in curves])
    print(f"| {study.parent.name} | outside the epochs: median {np.median(other):.0f} s a trial, "
          f"{other.sum() / as_run[0]:.0%} of the study | | | | | |")
    for name, lever in levers:
      seconds, best, number, pruned = replay(curves, **lever)
      totals[name] += seconds
      print(f"| {study.parent.name} ({len(curves)} trials) | {name} | {seconds / 60:.1f} | "
            f"{seconds / as_run[0]:.2f} | {pruned} | {best:.4f} | {number} |")
  for name, _ in levers:
    print(f"| all | {name} | {totals[name] / 60:.1f} | {totals[name] / totals['as run']:.2f} "
          "| | | |")


if __name__ == "__main__":
  main()
