"""The records of a stew_tf.tune study: every trial and the best settings, re-run on further seeds
(`study.json`, `study.md`).

The best trial's metric is the maximum of many noisy runs, so it overestimates what its
settings give (the winner's curse): its settings are re-run on seeds no trial used, and their
mean ± sd stands beside the single best value.
"""

import concurrent.futures
import os
import statistics

import optuna

from stew_tf import records
from stew_tf import runner
from stew_tf import splits
from stew_tf import workdir as workdir_lib

TRIAL_RECORD = "trial.json"


def objective_value(results):
  """The validation metric the run selected its epoch on (never the test split)."""
  monitor = results["config"]["trainer"]["monitor"]
  return float(results["weak_model"][splits.VALIDATION][monitor])


def add_seconds(workdir, seconds):
  """Adds a run's wall time to the trial's record (a resumed trial sums its attempts)."""
  path = workdir / TRIAL_RECORD
  record = records.read_json(path, "delete it") if path.exists() else {"wall_seconds": 0.0}
  record["wall_seconds"] += seconds
  records.write_json(path, record)


def _seeds_dir(tuner, best):
  return tuner.request.study_dir / "best" / f"trial{best.number}"


def _further_seeds(tuner):
  base = tuner.request.config.trainer.seed  # every trial's seed
  return [base + k for k in range(1, tuner.request.best_seeds + 1)]


def _best(study):
  try:
    return study.best_trial
  except ValueError:  # no trial has finished
    return None


def rerun_best(tuner):
  """Once every trial of the study has finished, runs the best settings on the further seeds
  (those not run yet; the worker that gets there first runs them, the others wait)."""
  trials = tuner.study.get_trials(deepcopy=False)
  unfinished = any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
  best = _best(tuner.study)
  if unfinished or len(trials) < tuner.request.trials or best is None or not _further_seeds(tuner):
    return
  folder = _seeds_dir(tuner, best)
  folder.mkdir(parents=True, exist_ok=True)
  lock = workdir_lib.Lock(folder)
  lock.acquire(wait=True)
  try:
    seeds = _further_seeds(tuner)
    tuner.log(f"best trial {best.number}: re-running its settings on seeds "
              f"{', '.join(map(str, seeds))}")
    with concurrent.futures.ThreadPoolExecutor(tuner.request.jobs) as pool:
      list(pool.map(lambda seed: tuner.run_main(folder / f"seed{seed}", best.params, seed),
                    seeds))
  finally:
    lock.release()


def _seed_values(tuner, best):
  """{seed: validation metric or None} of the best settings' re-runs (done or not)."""
  values = {}
  for seed in _further_seeds(tuner):
    results = runner.load_results(_seeds_dir(tuner, best) / f"seed{seed}")
    values[seed] = objective_value(results) if results else None
  return values


def _trial_row(tuner, trial):
  workdir = tuner.trial_dir(trial.number)
  path = workdir / TRIAL_RECORD
  seconds = records.read_json(path, "delete it")["wall_seconds"] if path.exists() else None
  row = {"number": trial.number, "state": trial.state.name, "settings": trial.params,
         "validation": trial.value, "wall_seconds": seconds, "workdir": os.fspath(workdir)}
  if trial.state == optuna.trial.TrialState.FAIL:
    row["log"] = os.fspath(workdir / "log.txt")
  return row


def summary(tuner):
  """The study.json record: the settings, every trial, the best one and its re-runs."""
  config = tuner.request.config
  record = {"study": os.fspath(tuner.request.study_dir), "storage": tuner.request.storage,
            "objective": f"validation {config.trainer.monitor}",
            "direction": "maximise" if tuner.request.maximise else "minimise",
            "trials_asked": tuner.request.trials,
            "trials": [_trial_row(tuner, t) for t in tuner.study.get_trials(deepcopy=False)],
            "best": None}
  best = _best(tuner.study)
  if best is not None:
    values = _seed_values(tuner, best)
    done = [v for v in values.values() if v is not None]
    record["best"] = {
        "number": best.number, "settings": best.params, "validation": best.value,
        "seed": config.trainer.seed, "further_seeds": values,
        "further_mean": statistics.fmean(done) if done else None,
        "further_sd": statistics.stdev(done) if len(done) > 1 else None}
  return record


def _markdown(record):
  lines = [f"# Study {record['study']}", "",
           f"Objective: {record['objective']} ({record['direction']}d), "
           f"{len(record['trials'])} of {record['trials_asked']} trials.", "",
           "| trial | state | settings | validation | wall time | workdir or log |",
           "|---|---|---|---|---|---|"]
  for row in record["trials"]:
    settings = ", ".join(f"{k}={v:g}" for k, v in row["settings"].items())
    value = "" if row["validation"] is None else f"{row['validation']:.4f}"
    seconds = "" if row["wall_seconds"] is None else f"{row['wall_seconds']:.0f}s"
    lines.append(f"| {row['number']} | {row['state']} | {settings} | {value} | {seconds} | "
                 f"{row.get('log', row['workdir'])} |")
  best = record["best"]
  if best:
    settings = ", ".join(f"--{k}={v:g}" for k, v in best["settings"].items())
    done = {s: v for s, v in best["further_seeds"].items() if v is not None}
    if not best["further_seeds"]:
      further = "not re-run (--best_seeds=0)"
    elif best["further_sd"] is not None:
      further = (f"{best['further_mean']:.4f} ± {best['further_sd']:.4f} (mean ± sd over "
                 f"seeds {', '.join(map(str, done))})")
    else:
      further = (f"{len(done)} of {len(best['further_seeds'])} further seeds done: not yet "
                 "comparable")
    lines += ["", f"## Best: trial {best['number']}: {settings}", "",
              "| | validation |", "|---|---|",
              f"| best trial (seed {best['seed']}, the maximum of the study) | "
              f"{best['validation']:.4f} |",
              f"| its settings on further seeds | {further} |", "",
              "The best trial's value is the maximum over the trials, so it is optimistic; the "
              "further seeds show what these settings give."]
  return "\n".join(lines) + "\n"


def write(tuner):
  """Writes <study>/study.json and study.md; returns the record."""
  record = summary(tuner)
  folder = tuner.request.study_dir
  records.write_json(folder / "study.json", record)
  temporary = folder / "study.md.tmp"
  temporary.write_text(_markdown(record))
  os.replace(temporary, folder / "study.md")
  return record
