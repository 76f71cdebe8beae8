r"""Reruns one of the paper's tables over several seeds and tabulates it against the paper and
against computed baselines, with intervals and paired differences.

  python -m stew_tf.reproduce --table=mosi --manual_dir=../shared/data/mosi [--seeds=5]
      [--tune=30] [--jobs=2] [--only=text_to,audio_enc] [--extra=--epochs=3]
      [--select_on=test] [--validation=none]

Each flagfile `flags/<table>_*.cfg` is one experiment; each (experiment, seed) trains in its own
`python -m stew_tf.main` process in `<out>/<experiment>/seed<s>/` (stew_tf.runner), with
`--select_on`, `--validation` and `--teacher_cache=<out>/teachers` (runs of a table share their
stage-1 teachers). An interrupted reproduction resumes when the same command is run again.
`<out>/results.md`, `<out>/results.csv` and `<out>/baselines.csv` are rebuilt at the end from
every `<out>/*/seed*/results.json` (and predictions.npz), plus the trivial baseline and the
linear probe of each weak modality, computed from the dataset (stew_tf.baselines).

With --tune=N, every row first gets a stew_tf.tune study of N trials in
`<out>/<experiment>/study/` (stew_tf.table_tuning: the same budget and sampler seed for all, on
the validation split, with trial seeds that no table seed reaches; the strong modality's enc_cls
row first, whose choice then trains every transfer row's teacher), and its seeds train the
chosen settings. results.md then lists each row's choice and budget; tuned_settings.json holds
them.
"""

import datetime
import importlib.metadata
import os
import pathlib
import platform
import shlex
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from stew_tf import figures
from stew_tf import flagfiles
from stew_tf import paper
from stew_tf import records
from stew_tf import report
from stew_tf import runner as runner_lib
from stew_tf import splits
from stew_tf import table_rows
from stew_tf import table_tuning

PACKAGES = ("tensorflow", "keras", "tensorflow-datasets", "numpy")


def compute_baselines(experiments, manual_dir=None, data_dir=None, download=False):
  """({(dataset, label, weak): [trivial, linear probe]}, notes) for the experiments' weak
  modalities; a dataset that cannot be read gives a note instead of baselines."""
  from stew_tf import baselines  # pylint: disable=g-import-not-at-top  # loads TensorFlow
  from stew_tf import data  # pylint: disable=g-import-not-at-top
  wanted = {}
  for experiment in experiments:
    key = experiment.flag("dataset"), experiment.flag("label")
    wanted.setdefault(key, set()).add(experiment.flag("weak"))
  computed, notes = {}, []
  for (dataset, label), weak in sorted(wanted.items()):
    try:
      found = baselines.dataset_baselines(dataset, label, sorted(weak), data_dir, manual_dir,
                                          download)
    except (data.DataError, ValueError) as error:
      notes.append(f"- Baselines of {dataset} ({label}) not computed: {error}")
      continue
    computed.update({(dataset, label, modality): rows for modality, rows in found.items()})
  return computed, notes


def environment_lines(invocation=None):
  """Markdown lines: the command, the date, the machine and the package versions."""
  cpu = platform.processor() or platform.machine()
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = models[0] if models else cpu
  versions = []
  for package in PACKAGES:
    try:
      versions.append(f"{package} {importlib.metadata.version(package)}")
    except importlib.metadata.PackageNotFoundError:
      versions.append(f"{package} not installed")
  now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  lines = [f"- **Command**: `{invocation}`"] if invocation else []
  return lines + [f"- **Report written**: {now}",
                  f"- **Machine**: {cpu}, {os.cpu_count()} logical CPUs, {platform.system()}",
                  f"- **Packages**: Python {platform.python_version()}, {', '.join(versions)}"]


RESULTS_KEYS = ("dataset", "label", "method", "strong", "weak", "seed", "config", "weak_model",
                "epochs")
PREDICTIONS_KEYS = ("test_clip", "test_label", "test_score")


def _load_results(path):
  """A run's results.json; ReproduceError naming the file if it is not one stew_tf.main wrote."""
  try:
    results = records.read_json(path, "rerun its experiment (delete its folder first)")
  except records.RecordError as error:
    raise runner_lib.ReproduceError(str(error)) from None
  missing = [key for key in RESULTS_KEYS if key not in results]
  if missing:
    raise runner_lib.ReproduceError(f"{path}: lacks {', '.join(missing)}; expected the "
                                    f"results.json of a stew_tf.main run")
  return results


def _load_predictions(workdir):
  """The run's predictions.npz as a dict of arrays, or None if it has none."""
  path = workdir / table_rows.PREDICTIONS_FILE
  if not path.exists():
    return None
  with np.load(path) as arrays:
    missing = [key for key in PREDICTIONS_KEYS if key not in arrays.files]
    if missing:
      raise runner_lib.ReproduceError(f"{path}: lacks the arrays {', '.join(missing)}")
    return {name: arrays[name] for name in arrays.files}


def write_report(table, out, tuned_choices=None, computed_baselines=None, header_lines=(),
                 notes=()):
  """Writes <out>/results.md, results.csv, baselines.csv and, when a transfer row has a paired
  difference, verdict.png; returns the rows of results.md."""
  out = pathlib.Path(out)
  paths = sorted(out.glob("*/seed*/results.json"))
  results = [_load_results(path) for path in paths]
  predictions = [_load_predictions(path.parent) for path in paths]
  baseline_rows = table_rows.baseline_rows(computed_baselines or {})
  rows = baseline_rows + table_rows.summarize(results, predictions)
  source = f"Built from {len(paths)} results.json files under {out}."
  out.mkdir(parents=True, exist_ok=True)
  figure = figures.write_verdict(rows, out / figures.FILE)
  (out / "results.md").write_text(report.results_markdown(
      table, rows, tuned_choices, source, header_lines, notes, figure and figure.name))
  (out / "results.csv").write_text(report.results_csv([r for r in rows if r["kind"] == "model"]))
  (out / "baselines.csv").write_text(report.results_csv(baseline_rows))
  return rows


def default_out(table, select_on=splits.VALIDATION,
                validation=splits.VALIDATION_PROTOCOLS[0], tune=0):
  """runs/reproduce/<table>, with a suffix per non-default protocol, so that they never mix."""
  name = table
  name += f"-tune{tune}" if tune else ""
  name += "-select_on_test" if select_on == "test" else ""
  name += "-validation_none" if validation == "none" else ""
  return os.path.join("runs", "reproduce", name)


def _tune_rows(experiments, table, tune, out, jobs, main_args, command, log):
  """Tunes the rows (and their teachers) with `tune` trials each; returns (the experiments to
  train on the table's seeds, {name: choice})."""
  experiments = table_tuning.with_teachers(experiments, table)
  tuner = table_tuning.TableTuner(tune, out, jobs, main_args, command, log)
  choices = tuner.tune(experiments)
  records.write_json(out / table_tuning.CHOICES_FILE, choices, sort_keys=True)
  return experiments, choices


def reproduce(table, seeds, out, manual_dir=None, data_dir=None, tune=0, only=None, jobs=1,
              extra=(), command=runner_lib.MAIN_COMMAND, log=print, select_on=splits.VALIDATION,
              validation=splits.VALIDATION_PROTOCOLS[0], baselines_fn=compute_baselines,
              invocation=None):
  """Runs a table's experiments for seeds 0..seeds-1 and writes the report; returns failures.

  Args:
    table: a key of paper.TABLES: runs flags/<table>_*.cfg.
    seeds: number of seeds per experiment.
    out: output folder (one subfolder per experiment; stage-1 teachers in <out>/teachers).
    manual_dir, data_dir: passed to stew_tf.main (and used for the baselines).
    tune: trials of each row's study (stew_tf.table_tuning) before its seeds; 0: no tuning.
    only: run only the experiments whose name contains one of these (comma-separated).
    jobs: processes (or trials) at once.
    extra: flags appended to each stew_tf.main command.
    command: the command that trains one run (tests replace stew_tf.main).
    log: prints one progress line.
    select_on, validation: the protocol, passed to every run as --select_on, --validation.
    baselines_fn: f(experiments, manual_dir, data_dir, download) -> (baselines, notes), or None
      to leave the baselines out.
    invocation: the command line, stated in results.md.

  Returns:
    (run title, reason) of each run that did not finish.
  """
  if tune and (select_on, validation) != (splits.VALIDATION, splits.VALIDATION_PROTOCOLS[0]):
    raise runner_lib.ReproduceError(
        "--tune chooses on the validation split: leave --select_on and --validation at their "
        "defaults (validation, split)")
  experiments = flagfiles.find_experiments(table, only)
  out = pathlib.Path(out).absolute()
  manual_dir = os.path.abspath(manual_dir) if manual_dir else None
  data_dir = os.path.abspath(data_dir) if data_dir else None
  choices = {}
  if tune:
    main_args = [f"--{name}={value}" for name, value in (("manual_dir", manual_dir),
                                                          ("data_dir", data_dir)) if value]
    experiments, choices = _tune_rows(experiments, table, tune, out, jobs,
                                      main_args + list(extra), command, log)
  log(f"{table}: {len(experiments)} experiments x {seeds} seeds; {jobs} at a time; "
      f"--select_on={select_on} --validation={validation}; results in {out}")
  runner = runner_lib.Runner(len(experiments) * seeds, jobs, command, manual_dir, data_dir, log,
                             out / "teachers")
  runner.run([runner_lib.Run(e, seed, out / e.name / f"seed{seed}",
                             table_tuning.seed_settings(choices[e.name]) if tune else (),
                             tuple(extra), select_on=select_on, validation=validation)
              for e in experiments for seed in range(seeds)])
  computed, notes = baselines_fn(experiments, manual_dir, data_dir,
                                 "--download" in extra) if baselines_fn else ({}, [])
  write_report(table, out, choices, computed, environment_lines(invocation), notes)
  if runner.failures:
    log(f"{len(runner.failures)} runs did not finish: "
        f"{', '.join(title for title, _ in runner.failures)}")
  return runner.failures


def define_flags(flag_values=flags.FLAGS):
  """The CLI's flags; not defined on import, so that this module and stew_tf.config can share a
  process (both have --manual_dir and --data_dir)."""
  flags.DEFINE_enum("table", None, sorted(paper.TABLES), "Which tables to rerun: mosi (paper "
                    "II, IV), recola (III, V) or mosi_score (ours: MOSI's continuous score).",
                    flag_values=flag_values)
  flags.DEFINE_integer("seeds", 5, "Seeds 0..N-1 per experiment.", lower_bound=1,
                       flag_values=flag_values)
  flags.DEFINE_string("manual_dir", None, "Passed to stew_tf.main: the dataset's files (mosi: "
                      "e.g. ../shared/data/mosi; recola: the folder holding the AVEC 2016 "
                      "folders).", flag_values=flag_values)
  flags.DEFINE_string("data_dir", None, "Passed to stew_tf.main: the TFDS data dir.",
                      flag_values=flag_values)
  flags.DEFINE_string("out", None, "Output folder. Default: runs/reproduce/<table>, with "
                      "-select_on_test / -validation_none for those protocols.",
                      flag_values=flag_values)
  flags.DEFINE_integer("tune", 0, "First tune every row with this many stew_tf.tune trials "
                       "(each strong modality's enc_cls first: it is a teacher), the same "
                       "sampler seed for all, on the validation split; its seeds then train the "
                       "chosen settings. 0: no tuning.", lower_bound=0, flag_values=flag_values)
  flags.DEFINE_string("only", None, "Run only the experiments whose (flagfile) name contains one of these comma-separated strings.",
                      flag_values=flag_values)
  flags.DEFINE_integer("jobs", 1, "Training processes at once.", lower_bound=1,
                       flag_values=flag_values)
  flags.DEFINE_multi_string("extra", [], "Flags for every stew_tf.main command, after the "
                            "flagfile so they override it, e.g. --extra=--epochs=3; repeat it or "
                            "separate several by spaces.", flag_values=flag_values)
  flags.DEFINE_enum("select_on", splits.VALIDATION, list(splits.SELECT_ON), "Passed to every "
                    "run: the split that picks the epoch (and the dropout). test is a labelled "
                    "diagnostic: optimistic, not a result.", flag_values=flag_values)
  flags.DEFINE_enum("validation", splits.VALIDATION_PROTOCOLS[0],
                    list(splits.VALIDATION_PROTOCOLS), "Passed to "
                    "every run: none trains on every training clip for a fixed --epochs and "
                    "reports the last epoch.", flag_values=flag_values)
  flags.mark_flag_as_required("table", flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS
  # The baselines read the dataset in this process: keep TFDS's INFO lines out of the progress
  # lines (--verbosity=0 brings them back).
  if not values["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  extra = tuple(arg for value in values.extra for arg in shlex.split(value))
  out = values.out or default_out(values.table, values.select_on, values.validation, values.tune)
  try:
    failures = reproduce(values.table, values.seeds, out, values.manual_dir, values.data_dir,
                         values.tune, values.only, values.jobs, extra,
                         select_on=values.select_on, validation=values.validation,
                         invocation=shlex.join(["python", "-m", "stew_tf.reproduce",
                                                *sys.argv[1:]]))
  except (runner_lib.ReproduceError, flagfiles.FlagfileError) as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
  sys.exit(1 if failures else 0)


if __name__ == "__main__":
  define_flags()
  app.run(main)
