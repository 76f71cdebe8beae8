"""stew_tf.tune: the search-space table, the study's records, resume and several workers (a fake
stew_tf.main for most tests; the real one for a killed study and the shared teacher)."""

import json
import math
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time

import pytest

from stew_tf import cli_flags
from stew_tf import data
from stew_tf import paper
from stew_tf import search_space
from stew_tf import strong_flags
from stew_tf import tune
from tests.helpers import REPO_ROOT
from tests.helpers import install_fake_main

# Stands in for `python -m stew_tf.main`: logs its argv; its validation accuracy peaks at
# dropout 0.5 and learning rate 1e-3 and grows with the seed by 0.001 per seed; its test
# accuracy is something else. FAKE_SLEEP seconds of "training"; trial FAKE_FAIL_TRIAL (or "all")
# fails with exit code FAKE_FAIL_CODE (default 1).
FAKE_MAIN = r'''
import json, math, os, pathlib, sys, time
args = dict((arg[2:].split("=", 1) + ["true"])[:2] for arg in sys.argv[1:])  # the last wins
with open(os.environ["FAKE_CALLS"], "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\n")
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
workdir = pathlib.Path(args["workdir"])
failing = os.environ.get("FAKE_FAIL_TRIAL")
if workdir.parent.name == "trials" and failing in (workdir.name, "all"):
  print("loss is NaN")
  sys.exit(int(os.environ.get("FAKE_FAIL_CODE", "1")))
dropout, lr = float(args.get("dropout", 0.3)), float(args.get("learning_rate", 1e-3))
value = 0.7 - (dropout - 0.5) ** 2 - 0.01 * (math.log10(lr) + 3) ** 2
value += int(args.get("seed", 0)) / 1000
results = {"config": {"trainer": {"monitor": "accuracy"}},
           "weak_model": {"validation": {"accuracy": value}, "test": {"accuracy": 0.123}}}
workdir.mkdir(parents=True, exist_ok=True)
(workdir / "results.json").write_text(json.dumps(results))
'''


@pytest.fixture
def fake_main(tmp_path, monkeypatch):
  """(command, calls): the fake command, and a function returning the argv of each call so far."""
  return install_fake_main(FAKE_MAIN, tmp_path, monkeypatch)


def _tune(command, *args):
  lines = []
  code = tune.run(["stew_tf.tune", *args], command=command, log=lines.append)
  return code, "\n".join(lines)


def _flag(call, name):
  values = [arg.split("=", 1)[1] for arg in call if arg.startswith(f"--{name}=")]
  return values[-1] if values else None


def _trial_calls(calls):
  return [c for c in calls if "/trials/" in _flag(c, "workdir")]


def _records(study):
  return json.loads((study / "study.json").read_text()), (study / "study.md").read_text()


def test_a_tiny_study_finds_its_best_trial_and_writes_its_records(fake_main, tmp_path):
  command, calls = fake_main
  study = tmp_path / "study"
  code, log = _tune(command, "--method=enc_cls", "--trials=4", f"--study={study}", "--jobs=2")
  assert code == 0, log
  record, markdown = _records(study)
  found = {}  # independent of the tuner: each trial's own results.json
  for number in range(4):
    results = json.loads((study / "trials" / str(number) / "results.json").read_text())
    found[number] = results["weak_model"]["validation"]["accuracy"]
  best_number = max(found, key=found.get)
  assert [row["number"] for row in record["trials"]] == [0, 1, 2, 3]
  assert all(row["state"] == "COMPLETE" for row in record["trials"])
  assert {row["number"]: row["validation"] for row in record["trials"]} == found
  assert record["best"]["number"] == best_number
  assert record["best"]["validation"] == found[best_number] != 0.123
  # Trials train on the base seed, the best settings' re-runs on seeds 1, 2, 3.
  trial_calls = _trial_calls(calls())
  assert len(trial_calls) == 4 and {_flag(c, "seed") for c in trial_calls} == {None}
  rerun_seeds = sorted(int(_flag(c, "seed")) for c in calls() if c not in trial_calls)
  assert rerun_seeds == [1, 2, 3]
  reruns = [json.loads((study / "best" / f"trial{best_number}" / f"seed{s}" /
                        "results.json").read_text())["weak_model"]["validation"]["accuracy"]
            for s in (1, 2, 3)]
  assert record["best"]["further_mean"] == pytest.approx(statistics.fmean(reruns))
  assert (f"{statistics.fmean(reruns):.4f} ± {statistics.stdev(reruns):.4f}" in markdown)
  assert f"| {found[best_number]:.4f} |" in markdown


@pytest.mark.parametrize("method, dimensions", [
    ("cm_stew", ["dropout", "learning_rate", "alpha", "beta"]),
    ("no_lfa", ["dropout", "learning_rate", "beta"]),
    ("no_decoder", ["dropout", "learning_rate", "alpha"]),
    ("enc_cls", ["dropout", "learning_rate"]),
    ("cls_only", ["learning_rate"]),
])
def test_the_search_space_of_each_method(method, dimensions):
  config = cli_flags.parse(["stew_tf.main", f"--method={method}", "--weak=audio"])
  assert search_space.applicable(config) == dimensions


def test_the_table_holds_the_paper_grid_and_valid_ranges():
  table = search_space.DIMENSIONS
  assert table["dropout"].choices == paper.DROPOUT_GRID
  assert (table["learning_rate"].low, table["learning_rate"].high) == (1e-5, 1e-2)
  assert (table["alpha"].low, table["alpha"].high) == (1e-3, 1.0)
  assert (table["beta"].low, table["beta"].high) == (1e-2, 10.0)
  for dimension in table.values():
    for value in dimension.choices or (dimension.low, dimension.high):
      assert search_space.is_valid_value(dimension.name, value), (dimension.name, value)
  assert not search_space.is_valid_value("dropout", 0.95)  # the check can fail


def test_search_narrows_and_given_flags_stay_fixed(fake_main, tmp_path):
  command, calls = fake_main
  code, log = _tune(command, "--search=alpha:0.01:0.1", "--dropout=0.4", "--trials=3",
                    "--best_seeds=0", f"--study={tmp_path / 'narrow'}")
  assert code == 0, log
  for call in _trial_calls(calls()):
    assert 0.01 <= float(_flag(call, "alpha")) <= 0.1
    assert [a for a in call if a.startswith("--dropout=")] == ["--dropout=0.4"]
    assert _flag(call, "learning_rate") is None and _flag(call, "beta") is None
    # The teacher keeps the base config's settings (the synthetic data's lr; dropout 0.4).
    assert float(_flag(call, "strong_learning_rate")) == data.DATASETS[
        "stew_synthetic"].learning_rate
    assert float(_flag(call, "strong_dropout")) == 0.4
  before = len(calls())
  code, log = _tune(command, "--learning_rate=0.002", "--trials=2", "--best_seeds=0",
                    f"--study={tmp_path / 'default'}")
  assert code == 0, log
  searched = {a.split("=")[0] for c in calls()[before:] for a in c} - {"--learning_rate"}
  assert {"--dropout", "--alpha", "--beta"} <= searched
  assert all(_flag(c, "learning_rate") == "0.002" for c in calls()[before:])


def test_a_failed_trial_is_recorded_and_the_study_goes_on(fake_main, tmp_path, monkeypatch):
  monkeypatch.setenv("FAKE_FAIL_TRIAL", "1")
  study = tmp_path / "study"
  code, log = _tune(fake_main[0], "--method=enc_cls", "--trials=3", "--best_seeds=0",
                    f"--study={study}")
  assert code == 0, log
  record, markdown = _records(study)
  # The failure does not use the budget: three trials still give a validation value.
  assert [row["state"] for row in record["trials"]] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
  failed = record["trials"][1]
  assert failed["validation"] is None and "loss is NaN" in pathlib.Path(failed["log"]).read_text()
  assert failed["log"] in markdown and record["best"]["number"] in (0, 2, 3)


@pytest.mark.parametrize("args, expected, code", [
    (["--trials=0"], "--trials=0", 2),
    (["--search=gamma"], "--search=gamma: unknown dimension 'gamma'", 2),
    (["--method=enc_cls", "--search=alpha"], "--method=enc_cls has no alpha", 2),
    (["--method=cls_only", "--search=dropout"], "--method=cls_only has no dropout", 2),
    (["--search=learning_rate:1e-5:2"], "valid --learning_rate values (2 is not one", 2),
    (["--search=dropout:0.8:0.9"], "a range holding one of 0.2", 2),
    (["--search=dropout", "--dropout=0.4"], "--dropout is given (fixed)", 2),
    (["--select_on=test"], "never the test split", 2),
    (["--workdir=somewhere"], "--workdir: not a flag of stew_tf.tune", 2),
    (["--storage=postgresql://user@localhost:1/db"], "--storage=postgresql://", 1),
    (["--storage={tmp}/no/folder/journal.log"], "cannot be opened", 1),
])
def test_bad_input_is_one_line(args, expected, code, fake_main, tmp_path, capsys):
  args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
  assert _tune(fake_main[0], f"--study={tmp_path / 'study'}", *args)[0] == code
  error = capsys.readouterr().err
  assert error.startswith("error: ") and expected in error and error.count("\n") == 1, error
  assert fake_main[1]() == []


def test_a_study_refuses_other_settings_and_loses_nothing(fake_main, tmp_path, capsys):
  study = tmp_path / "study"
  assert _tune(fake_main[0], "--search=dropout", "--trials=1", f"--study={study}")[0] == 0
  kept = (study / "study.json").read_text(), (study / "journal.log").read_bytes()
  code, _ = _tune(fake_main[0], "--search=learning_rate", "--trials=1", f"--study={study}")
  error = capsys.readouterr().err
  assert code == 1 and error.count("\n") == 1
  assert f"{study} holds a study made with other settings" in error
  assert "search_space.learning_rate" in error
  assert ((study / "study.json").read_text(), (study / "journal.log").read_bytes()) == kept


# Runs stew_tf.tune with the command given as the first argument in place of stew_tf.main.
TUNE_WITH_COMMAND = """import sys
from stew_tf import tune
command = (sys.executable, sys.argv.pop(1))
sys.exit(tune.run(sys.argv, command=command))
"""


def _env():
  return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("storage", [None, "sqlite"])
def test_two_workers_share_one_study_and_run_no_trial_twice(storage, fake_main, tmp_path,
                                                            monkeypatch):
  monkeypatch.setenv("FAKE_SLEEP", "1")
  command, calls = fake_main
  script = tmp_path / "tune_with_command.py"
  script.write_text(TUNE_WITH_COMMAND)
  study = tmp_path / "study"
  args = [sys.executable, str(script), command[1], "--method=enc_cls", "--trials=6",
          "--best_seeds=2", f"--study={study}"]
  args += [f"--storage=sqlite:///{tmp_path / 'study.db'}"] if storage else []
  workers = [subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
  outputs = [worker.communicate(timeout=120)[0] for worker in workers]
  assert [worker.returncode for worker in workers] == [0, 0], outputs
  assert all("running" in output for output in outputs), outputs  # both took trials
  trial_dirs = sorted(_flag(c, "workdir") for c in _trial_calls(calls()))
  assert trial_dirs == sorted(str(study / "trials" / str(n)) for n in range(6))
  reruns = sorted(int(_flag(c, "seed")) for c in calls() if "/trials/" not in _flag(c, "workdir"))
  assert reruns == [1, 2]
  record, _ = _records(study)
  assert [row["state"] for row in record["trials"]] == ["COMPLETE"] * 6
  settings = {tuple(sorted(row["settings"].items())) for row in record["trials"]}
  assert len(settings) == 6  # the workers' samplers do not draw the same settings


def _wait_for(path, text, process, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    if path.exists() and text in path.read_text():
      return
    time.sleep(0.5)
  raise AssertionError(f"no {text!r} in {path} (exit {process.poll()})")


def test_a_killed_study_resumes_and_its_trials_share_one_teacher(tfds_dir, tmp_path):
  """The real stew_tf.main: no_decoder trains a teacher; the trials search the student's
  learning rate, which the teacher's defaults to."""
  study = tmp_path / "study"
  args = [sys.executable, "-m", "stew_tf.tune", "--method=no_decoder", "--epochs=2",
          "--trials=2", "--search=learning_rate", "--best_seeds=0", f"--data_dir={tfds_dir}",
          f"--study={study}"]
  with open(tmp_path / "first.txt", "w") as output:
    first = subprocess.Popen(args, env=_env(), stdout=output, stderr=subprocess.STDOUT,
                             cwd=tmp_path, start_new_session=True)
    try:
      _wait_for(study / "trials" / "1" / "log.txt", "[stage2", first)
    finally:
      os.killpg(first.pid, signal.SIGKILL)
      first.wait()
  assert not (study / "trials" / "1" / "results.json").exists()  # killed mid-trial
  second = subprocess.run(args, env=_env(), capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
  assert second.returncode == 0, second.stdout + second.stderr
  logs = [(study / "trials" / str(n) / "log.txt").read_text() for n in range(2)]
  commands = [[line for line in log.splitlines() if line.startswith("$ ")] for log in logs]
  assert [len(lines) for lines in commands] == [1, 2]  # trial 0 once; trial 1 resumed ...
  assert "[stage2] resuming after epoch 1" in logs[1].split("\n$ ")[-1]  # ... in its workdir
  record, _ = _records(study)
  assert [row["state"] for row in record["trials"]] == ["COMPLETE", "COMPLETE"]
  assert all(math.isfinite(row["validation"]) for row in record["trials"])
  rates = {row["settings"]["learning_rate"] for row in record["trials"]}
  assert len(rates) == 2  # different students ...
  teachers = [p for p in (study / "teachers").iterdir() if p.is_dir()]
  assert len(teachers) == 1, teachers  # ... one teacher, trained in one trial only
  assert sum(log.count("[stage1 text] epoch   1/2") for log in logs) == 1


def test_the_seed_makes_the_study_repeatable(fake_main, tmp_path):
  def settings(name, *args):
    assert _tune(fake_main[0], "--method=enc_cls", "--trials=3", "--best_seeds=0",
                 f"--study={tmp_path / name}", *args)[0] == 0
    return [row["settings"] for row in _records(tmp_path / name)[0]["trials"]]
  assert settings("a") == settings("b") != settings("c", "--seed=1")


def test_a_study_whose_first_trials_all_fail_stops(fake_main, tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("FAKE_FAIL_TRIAL", "all")  # as with missing data: every trial fails
  study = tmp_path / "study"
  code, _ = _tune(fake_main[0], "--method=enc_cls", "--trials=10", f"--study={study}")
  error = capsys.readouterr().err
  assert code == 1 and error.count("\n") == 1
  assert "3 trials failed and 0 succeeded" in error, error
  assert [row["state"] for row in _records(study)[0]["trials"]] == ["FAIL"] * 3


def test_a_stopped_trial_is_not_failed_and_resumes_in_its_workdir(fake_main, tmp_path,
                                                                   monkeypatch, capsys):
  command, calls = fake_main
  study = tmp_path / "study"
  args = ["--method=enc_cls", "--trials=3", "--best_seeds=0", f"--study={study}"]
  monkeypatch.setenv("FAKE_FAIL_TRIAL", "1")
  monkeypatch.setenv("FAKE_FAIL_CODE", "130")  # stew_tf.main's exit on Ctrl-C
  assert _tune(command, *args)[0] == 130
  assert "rerun the same command" in capsys.readouterr().err
  assert [row["state"] for row in _records(study)[0]["trials"]] == ["COMPLETE", "RUNNING"]
  monkeypatch.delenv("FAKE_FAIL_TRIAL")
  assert _tune(command, *args)[0] == 0
  assert [row["state"] for row in _records(study)[0]["trials"]] == ["COMPLETE"] * 3
  workdirs = [_flag(c, "workdir") for c in calls()]
  assert workdirs == [str(study / "trials" / n) for n in ("0", "1", "1", "2")]


def test_every_teacher_of_a_study_is_pinned_to_the_base_settings(tmp_path):
  request = tune.Request(["stew_tf.tune", "--strong=text,video", "--weak=audio",
                          "--strong_dropout=0.5", f"--study={tmp_path / 'study'}"])
  assert "--strong_dropout=0.5" in request.main_args
  assert [d.name for d in request.dimensions] == ["dropout", "learning_rate", "alpha", "beta"]


def test_a_study_keeps_each_teachers_own_settings(tmp_path):
  request = tune.Request(["stew_tf.tune", "--strong=text,video", "--weak=audio",
                          "--strong_dropout=0.2,0.5", f"--study={tmp_path / 'study'}"])
  assert [t.encoder.dropout for t in request.config.teachers] == [0.2, 0.5]
  assert "--strong_dropout=0.2,0.5" in request.main_args
  # The unset learning rate is the same for both teachers: pinned as one value.
  rate = data.DATASETS["stew_synthetic"].learning_rate
  assert f"--strong_learning_rate={rate!r}" in request.main_args
  assert strong_flags.flag_value([0.1, 0.1]) == "0.1"
  assert strong_flags.flag_value([0.1, 0.01]) == "0.1,0.01"
