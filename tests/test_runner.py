"""stew_tf.runner and the stew_tf.reproduce CLI, with a fake stew_tf.main (fast)."""

import csv
import json
import pathlib

import numpy as np
import pytest

from stew_tf import flagfiles
from stew_tf import reproduce
from stew_tf import runner
from stew_tf import table_tuning
from tests.helpers import install_fake_main
from tests.helpers import run_main

# Stands in for `python -m stew_tf.main`: logs its arguments and writes a results.json whose
# validation accuracy peaks at dropout 0.5 (and, for the video model, at the lowest learning
# rate; a transfer row's grows with beta) and whose test accuracy peaks at dropout 0.2, and a
# predictions.npz (2 test clips of 2 segments) when FAKE_PREDICTIONS is set.
FAKE_MAIN = r'''
import json, os, pathlib, sys
import numpy as np
from stew_tf import flagfiles
args = dict((arg[2:].split("=", 1) + ["true"])[:2] for arg in sys.argv[1:])  # --x: true
# Its includes followed; stew_tf.tune's trials get the flagfile's flags expanded instead.
values = dict(flagfiles.read_flagfile(args["flagfile"])) if "flagfile" in args else {}
values.update(select_on="validation", validation="split")
values.update(args)  # the command line overrides the flagfile
with open(os.environ["FAKE_CALLS"], "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\n")
seed, dropout = int(values["seed"]), float(values.get("dropout", 0.3))
if os.environ.get("FAKE_FAIL_SEED") == str(seed):
  sys.exit(1)
transfer = values["method"] in ("cm_stew", "no_lfa", "no_decoder")
metrics = lambda acc: {"accuracy": acc, "f1_weighted": acc - 0.01}
results = {
    "dataset": values["dataset"], "label": values["label"],
    "strong": values["strong"] if transfer else None, "weak": values["weak"],
    "method": values["method"], "seed": seed,
    "config": {"data": {"task": "classification"},
               "student": {"encoder": {"gru_layers": 2, "dropout": dropout}},
               "trainer": {"monitor": "accuracy", "select_on": values["select_on"],
                           "validation": values["validation"]}},
    "strong_model": None,
    "weak_model": {"validation": metrics(0.7 - (dropout - 0.5) ** 2 - (
        float(values.get("learning_rate", 1e-4)) if values["weak"] == "video" else 0) + (
        float(values.get("beta", 1)) / 100 if transfer else 0)),
                   "test": metrics(0.6 - dropout / 10 + seed / 100)},
    "epochs": {"stage1": 3 if transfer else 0, "stage2": 5},
    "wall_seconds": 1.0, "export_dir": "",
}
workdir = pathlib.Path(values["workdir"])
workdir.mkdir(parents=True, exist_ok=True)
(workdir / "results.json").write_text(json.dumps(results))
if os.environ.get("FAKE_PREDICTIONS"):
  np.savez(workdir / "predictions.npz", test_clip=np.array([0, 0, 1, 1], np.int32),
           test_label=np.array([1, 0, 1, 0], np.float32),
           test_score=np.array([0.9, 0.8, 0.2, 0.1], np.float32))
'''



# ---------------------------------------------------------------------------------------------
# The runner, with FAKE_MAIN in place of stew_tf.main.


@pytest.fixture
def fake_main(tmp_path, monkeypatch):
  """(command, calls): the fake command, and a function returning the argv of each call so far."""
  return install_fake_main(FAKE_MAIN, tmp_path, monkeypatch)


def _reproduce(out, command, **kwargs):
  lines = []
  failures = reproduce.reproduce(kwargs.pop("table", "mosi"), kwargs.pop("seeds", 2), out,
                                 command=command, log=lines.append,
                                 baselines_fn=kwargs.pop("baselines_fn", None), **kwargs)
  return failures, "\n".join(lines)


def _experiment(call):
  """The experiment of a call, from its workdir: <out>/<experiment>/{seed<s>,study/trials/<n>}."""
  parts = pathlib.Path(_flag(call, "workdir")).parts
  return parts[-4] if "trials" in parts else parts[-2]


def _flag(call, name):
  values = [arg.split("=", 1)[1] for arg in call if arg.startswith(f"--{name}=")]
  return values[-1] if values else None


def test_runs_each_seed_with_the_documented_command(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  failures, log = _reproduce(out, command, only="mosi_text_to_audio_cm_stew", seeds=2,
                             manual_dir="mosi_files", extra=("--epochs=3",))
  assert failures == []
  experiment = "mosi_text_to_audio_cm_stew"
  assert [call[:4] for call in calls()] == [
      [f"--flagfile={flagfiles.FLAGFILE_DIR / f'{experiment}.cfg'}", f"--seed={seed}",
       f"--workdir={out / experiment / f'seed{seed}'}",
       f"--manual_dir={pathlib.Path('mosi_files').absolute()}"] for seed in (0, 1)]
  assert all(call[-1] == "--epochs=3" for call in calls())  # extras last: they override
  assert "[2/2] mosi_text_to_audio_cm_stew seed 1: done in" in log
  assert "weak test accuracy 0.580" in log and "ETA" in log
  rows = list(csv.DictReader(open(out / "results.csv")))
  assert len(rows) == 1 and rows[0]["seeds"] == "2"
  assert "CM-StEW | text → audio | 2 |" in (out / "results.md").read_text()


def test_finished_runs_are_not_rerun(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  only = "mosi_text_to_video_no_lfa"
  done = out / only / "seed0"
  done.mkdir(parents=True)
  (done / "results.json").write_text(json.dumps({
      "dataset": "mosi", "label": "sentiment", "strong": "text", "weak": "video",
      "method": "no_lfa", "seed": 0, "strong_model": None,
      "config": {"data": {"task": "classification"},
                 "student": {"encoder": {"gru_layers": 2, "dropout": 0.3}},
                 "trainer": {"monitor": "accuracy", "select_on": "validation",
                             "validation": "split"}},
      "weak_model": {"validation": {"accuracy": 0.61, "f1_weighted": 0.6},
                     "test": {"accuracy": 0.57, "f1_weighted": 0.56}},
      "epochs": {"stage1": 3, "stage2": 5}, "wall_seconds": 10.0, "export_dir": ""}))
  assert _reproduce(out, command, only=only, seeds=2)[0] == []
  assert [_flag(call, "seed") for call in calls()] == ["1"]
  # Restarting with more seeds runs only the new one; then nothing is left to run.
  failures, log = _reproduce(out, command, only=only, seeds=3)
  assert failures == [] and "2 of 3 runs already have results.json: skipped." in log
  assert [_flag(call, "seed") for call in calls()] == ["1", "2"]
  assert _reproduce(out, command, only=only, seeds=3)[0] == []
  assert len(calls()) == 2
  assert "| 3 | 58.0 ± 1.0 |" in (out / "results.md").read_text()  # 57, 58, 59 %


def test_a_workdir_from_other_settings_is_refused(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  assert _reproduce(out, command, only="mosi_video_enc_cls", seeds=1,
                    extra=("--epochs=3",))[0] == []
  failures, _ = _reproduce(out, command, only="mosi_video_enc_cls", seeds=1)
  assert len(calls()) == 1
  ((title, reason),) = failures
  assert title == "mosi_video_enc_cls seed 0"
  assert "other settings (extra: was" in reason and "another --out" in reason


def test_a_failed_run_is_reported_and_the_others_go_on(tmp_path, fake_main, monkeypatch):
  command, calls = fake_main
  monkeypatch.setenv("FAKE_FAIL_SEED", "1")
  out = tmp_path / "out"
  failures, _ = _reproduce(out, command, only="mosi_text_cls_only", seeds=3, jobs=2)
  assert [title for title, _ in failures] == ["mosi_text_cls_only seed 1"]
  assert "failed (exit 1)" in failures[0][1]
  assert sorted(_flag(call, "seed") for call in calls()) == ["0", "1", "2"]
  assert "| sentiment | Classifier | text | 2 |" in (out / "results.md").read_text()
  # The failed run left nothing to reuse, so it may be retried with other settings; the
  # finished ones may not.
  monkeypatch.delenv("FAKE_FAIL_SEED")
  failures, _ = _reproduce(out, command, only="mosi_text_cls_only", seeds=3, extra=("--epochs=2",))
  assert [title for title, _ in failures] == ["mosi_text_cls_only seed 0",
                                              "mosi_text_cls_only seed 2"]
  assert (_flag(calls()[-1], "seed"), calls()[-1][-1]) == ("1", "--epochs=2")
  assert len(calls()) == 4


def test_when_the_data_preparing_run_fails_its_dataset_stops(tmp_path, fake_main, monkeypatch):
  command, calls = fake_main
  monkeypatch.setenv("FAKE_FAIL_SEED", "0")
  failures, _ = _reproduce(tmp_path / "out", command, only="mosi_text_cls_only", seeds=3, jobs=2)
  assert len(calls()) == 1 and len(failures) == 3
  assert "which prepares its data, failed" in failures[1][1]


def test_jobs_run_in_parallel(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  failures, log = _reproduce(out, command, only="mosi_text_to_audio", seeds=2, jobs=3)
  assert failures == [] and len(calls()) == 6
  assert "[6/6]" in log
  assert len(list(out.glob("*/seed*/results.json"))) == 6


def test_only_selects_experiments_by_substring():
  names = [e.name for e in flagfiles.find_experiments("mosi", "text_to_audio")]
  assert names == ["mosi_text_to_audio_cm_stew", "mosi_text_to_audio_no_decoder",
                   "mosi_text_to_audio_no_lfa"]
  assert len(flagfiles.find_experiments("recola", "valence_video_geometric_to")) == 3
  assert len(flagfiles.find_experiments("recola")) == 24
  with pytest.raises(flagfiles.FlagfileError, match="matches no experiment"):
    flagfiles.find_experiments("mosi", "arousal")


def test_tune_gives_every_row_one_budget_and_the_teacher_its_rows_choice(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  only = "mosi_text_to_audio_cm_stew,mosi_audio_enc_cls"
  assert _reproduce(out, command, only=only, seeds=2, tune=3)[0] == []
  choices = json.loads((out / table_tuning.CHOICES_FILE).read_text())
  # The teacher's row (text enc_cls) is tuned and trained too, though --only leaves it out.
  assert sorted(choices) == ["mosi_audio_enc_cls", "mosi_text_enc_cls",
                             "mosi_text_to_audio_cm_stew"]
  trials = [c for c in calls() if "/study/trials/" in _flag(c, "workdir")]
  names = [_experiment(c) for c in trials]
  assert sorted(names) == sorted(3 * list(choices))
  assert names.index("mosi_text_to_audio_cm_stew") > max(
      i for i, name in enumerate(names) if name != "mosi_text_to_audio_cm_stew")
  assert {_flag(c, "seed") for c in trials} == {str(table_tuning.TUNING_SEED)}
  assert {_flag(c, "teacher_cache") for c in calls()} == {str(out / "teachers")}
  teacher = choices["mosi_text_enc_cls"]["settings"]
  for call in calls():
    if "cm_stew" in _experiment(call):
      assert float(_flag(call, "strong_dropout")) == teacher["dropout"]
      assert float(_flag(call, "strong_learning_rate")) == teacher["learning_rate"]
  # Each row's seeds (0 and 1, never the trials' seed) train its best trial's settings.
  finals = [c for c in calls() if c not in trials]
  assert len(finals) == 6 and {_flag(c, "seed") for c in finals} == {"0", "1"}
  for call in finals:
    chosen = choices[_experiment(call)]
    study = json.loads((pathlib.Path(chosen["study"]) / "study.json").read_text())
    assert chosen["settings"] == study["best"]["settings"]
    assert {name: float(_flag(call, name)) for name in chosen["settings"]} == chosen["settings"]
  text = (out / "results.md").read_text()
  assert "## Settings chosen on validation (equal budget: 3 trials per row)" in text
  assert "TPE sampler seed 1000" in text and "9 trials in all" in text
  # A restart trains nothing again.
  assert _reproduce(out, command, only=only, seeds=2, tune=3)[0] == []
  assert len(calls()) == 15


def test_cli_rejects_an_unknown_experiment():
  result = run_main("--table=mosi", "--only=no_such_experiment", module="stew_tf.reproduce",
                    timeout=60)
  assert result.returncode == 2
  assert "error: --only=no_such_experiment matches no experiment of --table=mosi" in result.stderr


def test_every_run_gets_the_protocol_and_the_shared_teacher_cache(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  failures, log = _reproduce(out, command, only="mosi_text_to_audio_cm_stew", seeds=2,
                             select_on="test")
  assert failures == [] and "--select_on=test --validation=split" in log
  for call in calls():
    assert (_flag(call, "select_on"), _flag(call, "validation")) == ("test", "split")
    assert _flag(call, "teacher_cache") == str(out / "teachers")
  label = "selected on test: optimistic, not a result"
  text = (out / "results.md").read_text()
  assert text.splitlines()[0].endswith(f"({label})")
  assert f"| {label} |" in text
  (line,) = csv.DictReader(open(out / "results.csv"))
  assert line["protocol"] == label


def test_default_out_folder_per_protocol():
  assert reproduce.default_out("mosi") == "runs/reproduce/mosi"
  assert reproduce.default_out("mosi", "test") == "runs/reproduce/mosi-select_on_test"
  assert reproduce.default_out("mosi", validation="none") == "runs/reproduce/mosi-validation_none"
  assert reproduce.default_out("mosi", tune=30) == "runs/reproduce/mosi-tune30"


def test_a_run_of_another_version_or_protocol_is_refused(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  assert _reproduce(out, command, only="mosi_video_enc_cls", seeds=1)[0] == []
  failures, _ = _reproduce(out, command, only="mosi_video_enc_cls", seeds=1, validation="none")
  assert "validation: was 'split', now 'none'" in failures[0][1]
  record_path = out / "mosi_video_enc_cls" / "seed0" / runner.RECORD_FILE
  record = json.loads(record_path.read_text())
  record_path.write_text(json.dumps({**record, "stew_tf_version": "0.5.0"}))
  failures, _ = _reproduce(out, command, only="mosi_video_enc_cls", seeds=1)
  assert "made by stew_tf 0.5.0" in failures[0][1] and "\n" not in failures[0][1]
  assert len(calls()) == 1


def test_the_mosi_table_leaves_out_mosi_score_flagfiles(tmp_path):
  for name in ("mosi_audio_enc_cls", "mosi_score_audio_enc_cls"):
    (tmp_path / f"{name}.cfg").write_text("--dataset=mosi\n")
  assert [e.name for e in flagfiles.find_experiments("mosi", flagfile_dir=tmp_path)] == [
      "mosi_audio_enc_cls"]
  assert [e.name for e in flagfiles.find_experiments("mosi_score", flagfile_dir=tmp_path)] == [
      "mosi_score_audio_enc_cls"]


def test_report_has_computed_baselines_intervals_and_the_environment(tmp_path, fake_main,
                                                                     monkeypatch):
  from stew_tf import baselines  # pylint: disable=g-import-not-at-top
  command, _ = fake_main
  monkeypatch.setenv("FAKE_PREDICTIONS", "1")
  seen = []

  def fake_baselines(experiments, manual_dir, data_dir, download):
    seen.append(([e.name for e in experiments], manual_dir, data_dir, download))
    segments = baselines.Segments(np.array([[0.0], [1.0], [2.0], [3.0]]),
                                  np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 1]))
    computed = baselines.compute("classification", segments, segments, segments)
    return {("mosi", "sentiment", "audio"): computed}, ["- a note from the baselines"]
  out = tmp_path / "out"
  failures, _ = _reproduce(out, command, only="mosi_audio_enc_cls", seeds=2,
                           extra=("--download",), baselines_fn=fake_baselines,
                           invocation="python -m stew_tf.reproduce --table=mosi")
  assert failures == []
  assert seen == [(["mosi_audio_enc_cls"], None, None, True)]
  text = (out / "results.md").read_text()
  assert "| sentiment | Trivial baseline | audio | - | 50.0 |" in text
  assert "| sentiment | Linear probe | audio | - | 100.0 |" in text
  assert "- a note from the baselines" in text
  # Each seed is right on one of the two segments of each clip: every resample scores 50 %.
  assert "| Encoder + Classifier | audio | 2 |" in text and "| [50.0, 50.0] |" in text
  assert "- **Command**: `python -m stew_tf.reproduce --table=mosi`" in text
  assert "logical CPUs" in text and "tensorflow " in text and "Report written" in text
  assert [line["method"] for line in csv.DictReader(open(out / "results.csv"))] == ["enc_cls"]
  assert [line["method"] for line in csv.DictReader(open(out / "baselines.csv"))] == [
      "trivial", "linear_probe"]


def test_tune_gives_each_of_several_teachers_its_own_rows_choice(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  row = "mosi_text_video_to_audio_cm_stew"
  # text -> video and video cls_only are tuned before the row and are video rows too: the
  # teacher must still get the video enc_cls row's choice.
  only = f"mosi_text_to_video_cm_stew,mosi_video_cls_only,{row}"
  assert _reproduce(out, command, seeds=2, tune=4, only=only)[0] == []
  choices = json.loads((out / table_tuning.CHOICES_FILE).read_text())
  assert sorted(choices) == ["mosi_text_enc_cls", "mosi_text_to_video_cm_stew", row,
                             "mosi_video_cls_only", "mosi_video_enc_cls"]
  assert choices["mosi_text_to_video_cm_stew"]["settings"]["learning_rate"] != choices[
      "mosi_video_enc_cls"]["settings"]["learning_rate"]
  teachers = [choices[f"mosi_{modality}_enc_cls"]["settings"] for modality in ("text", "video")]
  # The fake's video model prefers another learning rate, not another dropout.
  assert teachers[0]["learning_rate"] != teachers[1]["learning_rate"]
  assert teachers[0]["dropout"] == teachers[1]["dropout"]
  calls_of_row = [c for c in calls() if _experiment(c) == row]
  assert len(calls_of_row) == 4 + 2  # the study's trials, then seeds 0 and 1
  for call in calls_of_row:
    for name, flag in table_tuning.TEACHER_FLAGS.items():
      values = [float(v) for v in _flag(call, flag).split(",")]
      # One value per teacher, or one for both when they chose the same.
      assert values == ([t[name] for t in teachers] if name == "learning_rate"
                        else [teachers[0][name]])
  assert choices[row]["teacher"]["strong_learning_rate"] == ",".join(
      repr(t["learning_rate"]) for t in teachers)
  rates = "/".join(f"{t['learning_rate']:.3g}" for t in teachers)
  assert f"strong_learning_rate {rates} |" in (out / "results.md").read_text()


def test_tune_refuses_all_as_the_strong_modalities(tmp_path, fake_main):
  command, _ = fake_main
  flagfile = tmp_path / "flags" / "mosi_all_to_audio_cm_stew.cfg"
  flagfile.parent.mkdir()
  flagfile.write_text("--dataset=mosi\n--strong=all\n--weak=audio\n--method=cm_stew\n")
  experiment = flagfiles.find_experiments("mosi", flagfile_dir=flagfile.parent)[0]
  with pytest.raises(runner.ReproduceError, match="--strong=all; --tune needs the strong "
                     "modalities named"):
    table_tuning.with_teachers([experiment], "mosi")


@pytest.mark.parametrize("protocol", [{"validation": "none"}, {"select_on": "test"}])
def test_tune_without_validation_selection_is_refused(protocol, tmp_path, fake_main):
  command, calls = fake_main
  with pytest.raises(runner.ReproduceError, match="--tune chooses on the validation split"):
    _reproduce(tmp_path / "out", command, only="mosi_audio_enc_cls", tune=2, **protocol)
  assert calls() == []


def test_report_names_a_bad_results_or_predictions_file(tmp_path):
  run = tmp_path / "mosi_audio_enc_cls" / "seed0"
  run.mkdir(parents=True)
  (run / "results.json").write_text('{"dataset": "mosi"}')
  with pytest.raises(runner.ReproduceError, match=r"seed0/results.json: lacks label, method"):
    reproduce.write_report("mosi", tmp_path)
  (run / "results.json").write_text("{")
  with pytest.raises(runner.ReproduceError, match=r"seed0/results.json is damaged \(not valid JSON"):
    reproduce.write_report("mosi", tmp_path)
  (run / "results.json").write_text(json.dumps({
      "dataset": "mosi", "label": "sentiment", "strong": None, "weak": "audio",
      "method": "enc_cls", "seed": 0, "strong_model": None,
      "config": {"data": {"task": "classification"},
                 "student": {"encoder": {"gru_layers": 2, "dropout": 0.3}},
                 "trainer": {"monitor": "accuracy", "select_on": "validation",
                             "validation": "split"}},
      "weak_model": {"validation": {"accuracy": 0.5}, "test": {"accuracy": 0.5}},
      "epochs": {"stage1": 0, "stage2": 1}}))
  np.savez(run / "predictions.npz", test_clip=np.zeros(2, np.int32))
  with pytest.raises(runner.ReproduceError, match=r"predictions.npz: lacks the arrays "
                                                  r"test_label, test_score"):
    reproduce.write_report("mosi", tmp_path)
