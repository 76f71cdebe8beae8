r"""Ranks a dataset's modalities by their uni-modal baseline (paper Sec. III-A, eq. 1).

  python -m stew_tf.rank --dataset=NAME [--label=L] [--seeds=3] [--workdir=DIR]
      [--epochs=N --batch_size=N --learning_rate=X --patience=N --dropout=X]
      [--data_dir=DIR --manual_dir=DIR --download]

For every modality m and seed s, `python -m stew_tf.main --method=enc_cls --weak=m --seed=s` trains
the encoder + classifier baseline in its own process and workdir (`<workdir>/<m>/seed<s>/`, with
its output in `log.txt`); the training flags above are passed on. The modalities are ranked by the
mean over seeds of the validation metric e_m (accuracy for classification, CCC for regression);
test metrics are shown for information only. `<workdir>/ranking.json` and `ranking.md` hold the
result and the strong -> weak pairs to try: the best modality teaching each of the others. A run
whose results.json exists (made with the same settings) is not trained again.
"""

import os
import pathlib
import shlex
import statistics
import sys

from absl import app
from absl import flags

import stew_tf
from stew_tf import cli_flags
from stew_tf import data
from stew_tf import records
from stew_tf import runner
from stew_tf import splits
from stew_tf import tasks
from stew_tf import tfds_builders

MAIN_COMMAND = (sys.executable, "-m", "stew_tf.main")
RANKING_FILE = "ranking.json"
TABLE_FILE = "ranking.md"
RECORD_FILE = "rank_args.json"
# Flags the ranking sets itself (or that would leak the test split into the ranking).
_RESERVED_FLAGS = ("dataset", "label", "method", "weak", "strong", "seed", "workdir", "select_on",
                   "validation", "flagfile")
# Where the data is: passed on so that the runs find it (they change no number).
_DATA_PLACE_FLAGS = ("data_dir", "manual_dir", "download")


class RankError(Exception):
  """The ranking cannot be made as asked; the message says why."""


def _flag_arg(name, value):
  return f"--{name}" if value is True else f"--no{name}" if value is False else f"--{name}={value}"


def training_args(flag_values):
  """`--name=value` of each stew_tf.main flag given in `flag_values` (stew_tf.main's or this
  CLI's) that changes the baselines the ranking trains (the encoder + classifier of the weak
  modality: decided by resolving that config with and without it), and of the data's place."""
  defaults = cli_flags.default_values()
  given = {name: flag_values[name].value for name in defaults
           if name in flag_values and flag_values[name].present and name not in _RESERVED_FLAGS}
  base = {**defaults, "method": "enc_cls", "workdir": "-",
          **{name: flag_values[name].value for name in ("dataset", "label", "weak", "manual_dir")
             if name in flag_values}}
  baseline = cli_flags.resolve(base).identity({})
  return [_flag_arg(name, value) for name, value in given.items()
          if name in _DATA_PLACE_FLAGS
          or cli_flags.resolve({**base, name: value}).identity({}) != baseline]


def default_workdir(dataset, label, manual_dir=None):
  """runs/rank/<dataset>[-<label>]; for clips, the folder's content hash instead of the label."""
  spec = data.get_spec(dataset, manual_dir)
  name = dataset.replace("/", "_")
  if spec.builder == "clips":
    try:
      name += "-" + tfds_builders.builder_module("clips").config_from_dir(manual_dir).name
    except (FileNotFoundError, ValueError) as error:
      raise data.DataError(f"--dataset=clips: {error}") from error
  elif len(spec.labels) > 1:
    name += f"-{label}"
  return os.path.join("runs", "rank", name)


def _manual_dir(main_args):
  return next((a.split("=", 1)[1] for a in main_args if a.startswith("--manual_dir=")), None)


def _dataset(dataset, label, main_args):
  """(manual dir, DatasetSpec, label: the given one or the dataset's first)."""
  manual_dir = _manual_dir(main_args)
  spec = data.get_spec(dataset, manual_dir)
  return manual_dir, spec, label or spec.labels[0]


def _check_main_args(main_args):
  for arg in main_args:
    name = arg.lstrip("-").split("=", 1)[0]
    if not arg.startswith("--") or name in _RESERVED_FLAGS:
      raise RankError(f"{arg}: the ranking sets --{', --'.join(_RESERVED_FLAGS)} itself; pass "
                      "only other stew_tf.main flags, as --name=value")


def _run(command, args, workdir, record, log):
  """Runs one stew_tf.main process in `workdir` (unless done); returns its results dict."""
  results_path, record_path = workdir / "results.json", workdir / RECORD_FILE
  remedy = "delete that folder, or pass another --workdir"
  try:
    same = records.check_same(record_path, record, remedy)
  except records.RecordError as error:
    raise RankError(str(error)) from None
  if same and results_path.exists():
    log(f"{workdir}: done before, reusing its results.json")
    return records.read_json(results_path, remedy)
  workdir.mkdir(parents=True, exist_ok=True)
  records.write_json(record_path, record)
  argv = [*command, *args]
  log_path = workdir / "log.txt"
  log(f"{workdir}: running (output in {log_path})")
  returncode = runner.run_logged(argv, log_path, runner.main_env())
  if returncode != 0 or not results_path.exists():
    raise RankError(f"{shlex.join(argv)} failed (exit {returncode}); last lines of "
                    f"{log_path}:\n{runner.log_tail(log_path, 10)}")
  return records.read_json(results_path, remedy)


def _metric_of(results, split, metric, workdir):
  values = results["weak_model"].get(split)
  if not values or metric not in values:
    raise RankError(f"{workdir / 'results.json'}: expected weak_model.{split}.{metric}, got "
                    f"{sorted(values or {})}; the ranking needs a validation split")
  return values[metric]


def _summary(values):
  return {"mean": statistics.fmean(values),
          "std": statistics.stdev(values) if len(values) > 1 else None, "per_seed": values}


def rank(dataset, label=None, *, seeds=3, workdir=None, main_args=(), command=None, log=print):
  """Trains the baselines (or reuses them), writes ranking.json and ranking.md; returns the dict.

  Args:
    dataset, label: as stew_tf.main's --dataset and --label (default: the dataset's first label).
    seeds: seeds 0..seeds-1 of every modality.
    workdir: output folder; default `default_workdir(...)`.
    main_args: other stew_tf.main flags ("--epochs=3", "--manual_dir=DIR", ...), passed on.
    command: the stew_tf.main command; default MAIN_COMMAND (tests pass a fake).
    log: progress lines.
  """
  main_args = list(main_args)
  _check_main_args(main_args)
  manual_dir, spec, label = _dataset(dataset, label, main_args)
  if label not in spec.labels:
    raise RankError(f"--label={label} is not a target of --dataset={dataset}; choose one of: "
                    f"{', '.join(spec.labels)}")
  if seeds < 1:
    raise RankError(f"--seeds={seeds}: expected at least 1")
  task = spec.task_of(label)
  metric = tasks.get(task).monitor
  root = pathlib.Path(workdir or default_workdir(dataset, label, manual_dir)).absolute()
  record = {"dataset": dataset, "label": label, "main_args": main_args,
            "stew_tf_version": stew_tf.__version__}
  per_modality = {}
  for modality in spec.modalities:
    val, test = [], []
    for seed in range(seeds):
      run_dir = root / modality / f"seed{seed}"
      args = [f"--dataset={dataset}", f"--label={label}", "--method=enc_cls", f"--weak={modality}",
              f"--seed={seed}", f"--workdir={run_dir}", *main_args]
      results = _run(command or MAIN_COMMAND, args, run_dir,
                     {**record, "weak": modality, "seed": seed}, log)
      val.append(_metric_of(results, splits.VALIDATION, metric, run_dir))
      test.append(_metric_of(results, splits.TEST, metric, run_dir))
    per_modality[modality] = {splits.VALIDATION: _summary(val), splits.TEST: _summary(test)}
  order = sorted(per_modality, key=lambda m: (-per_modality[m]["validation"]["mean"], m))
  ranking = {
      **record, "task": task, "metric": metric, "seeds": seeds,
      "ranking": order,
      "modalities": [{"modality": m, "rank": i + 1, **per_modality[m]}
                     for i, m in enumerate(order)],
      # Paper Sec. III-A: the stronger modality enhances the weaker ones.
      "pairs": [{"strong": order[0], "weak": m,
                 "validation_margin": (per_modality[order[0]]["validation"]["mean"]
                                       - per_modality[m]["validation"]["mean"])}
                for m in order[1:]],
  }
  root.mkdir(parents=True, exist_ok=True)
  records.write_json(root / RANKING_FILE, ranking)
  (root / TABLE_FILE).write_text(markdown(ranking))
  log(f"Wrote {root / RANKING_FILE} and {root / TABLE_FILE}")
  return ranking


def _mean_std(summary, digits=3):
  std = "" if summary["std"] is None else f" ± {summary['std']:.{digits}f}"
  return f"{summary['mean']:.{digits}f}{std}"


def markdown(ranking):
  """ranking.md: the table of modalities and the pairs to try."""
  metric, seeds = ranking["metric"], ranking["seeds"]
  main_args = shlex.join(ranking["main_args"])
  lines = [
      f"# Modality ranking: {ranking['dataset']} ({ranking['label']})", "",
      f"Encoder + classifier baseline (`--method=enc_cls`) of each modality, "
      f"{'seed 0' if seeds == 1 else f'seeds 0-{seeds - 1}'}, ranked by the mean validation "
      f"{metric} (paper Sec. III-A, eq. 1). Test {metric} is shown for information only; the "
      f"ranking never looks at it. stew_tf.main flags: `{main_args or 'none (its defaults)'}`.",
      "",
      f"| rank | modality | validation {metric} (mean ± std) | per seed | test {metric} |",
      "|---|---|---|---|---|"]
  for row in ranking["modalities"]:
    per_seed = ", ".join(f"{v:.3f}" for v in row["validation"]["per_seed"])
    lines.append(f"| {row['rank']} | {row['modality']} | {_mean_std(row['validation'])} | "
                 f"{per_seed} | {_mean_std(row['test'])} |")
  lines += ["", "Strong → weak pairs to try (the best modality teaching each other one):", ""]
  best_std = ranking["modalities"][0]["validation"]["std"]
  for pair in ranking["pairs"]:
    weak_std = next(r["validation"]["std"] for r in ranking["modalities"]
                    if r["modality"] == pair["weak"])
    spread = max(s for s in (best_std, weak_std, 0.0) if s is not None)
    close = pair["validation_margin"] <= spread
    note = " (margin within the spread between seeds)" if close else ""
    lines.append(f"- {pair['strong']} → {pair['weak']}: validation margin "
                 f"{pair['validation_margin']:+.3f}{note}; `python -m stew_tf.main "
                 f"--dataset={ranking['dataset']} --label={ranking['label']} "
                 f"--strong={pair['strong']} --weak={pair['weak']}{' ' * bool(main_args)}"
                 f"{main_args}`")
  return "\n".join(lines) + "\n"


def best_strong(dataset, label, weak, *, rank_workdir=None, main_args=(), seeds=3, log=print):
  """(strong_modality, ranking_json_path): the best-ranked modality other than `weak`.

  Reuses `rank_workdir`/ranking.json when it was made for this dataset and label with the same
  `main_args` (whatever its number of seeds); otherwise ranks first with `seeds` seeds (see
  `rank`). Raises RankError if the folder holds a ranking made with other settings.
  """
  main_args = list(main_args)
  manual_dir, spec, label = _dataset(dataset, label, main_args)
  if weak not in spec.modalities:
    raise RankError(f"--weak={weak} is not a modality of --dataset={dataset}; choose one of: "
                    f"{', '.join(spec.modalities)}")
  if len(spec.modalities) < 2:
    raise RankError(f"--dataset={dataset} has one modality ({weak}): nothing can teach it")
  root = pathlib.Path(rank_workdir or default_workdir(dataset, label, manual_dir))
  path = root / RANKING_FILE
  wanted = {"dataset": dataset, "label": label, "main_args": main_args,
            "stew_tf_version": stew_tf.__version__}
  if path.exists():
    remedy = f"delete {root} to rank again with these settings"
    ranking = records.read_json(path, remedy)
    changed = records.differences({key: ranking.get(key) for key in wanted}, wanted)
    if changed:
      raise RankError(f"{path} was made with other settings ({'; '.join(changed)}); {remedy}")
    seeds_used = ranking["seeds"]
    log(f"Modality ranking: reusing {path} ({seeds_used} seed{'s' * (seeds_used != 1)})")
  else:
    ranking = rank(dataset, label, seeds=seeds, workdir=root, main_args=main_args, log=log)
  strong = next(m for m in ranking["ranking"] if m != weak)
  return strong, str(path.absolute())


def define_flags(flag_values=flags.FLAGS):
  """The CLI's flags (called from __main__ only, so importing this module defines none)."""
  fv = flag_values
  flags.DEFINE_string("dataset", None, "Dataset whose modalities are ranked (as stew_tf.main's "
                      "--dataset).", flag_values=fv, required=True)
  flags.DEFINE_string("label", None, "Target (default: the dataset's first).", flag_values=fv)
  flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per modality.", lower_bound=1, flag_values=fv)
  flags.DEFINE_string("workdir", None, "Output folder. Default: runs/rank/<dataset>[-<label>] "
                      "(clips: runs/rank/clips-<hash of the folder's files>).", flag_values=fv)
  flags.DEFINE_integer("epochs", None, "Passed to stew_tf.main.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("batch_size", None, "Passed to stew_tf.main.", lower_bound=2,
                       flag_values=fv)
  flags.DEFINE_float("learning_rate", None, "Passed to stew_tf.main.", flag_values=fv)
  flags.DEFINE_integer("patience", None, "Passed to stew_tf.main.", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("dropout", None, "Passed to stew_tf.main.", flag_values=fv)
  flags.DEFINE_string("data_dir", None, "Passed to stew_tf.main.", flag_values=fv)
  flags.DEFINE_string("manual_dir", None, "Passed to stew_tf.main.", flag_values=fv)
  flags.DEFINE_bool("download", False, "Passed to stew_tf.main.", flag_values=fv)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS
  try:
    ranking = rank(values.dataset, values.label, seeds=values.seeds, workdir=values.workdir,
                   main_args=training_args(values))
  except (RankError, data.DataError) as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  print(markdown(ranking))


if __name__ == "__main__":
  define_flags()
  app.run(main)
