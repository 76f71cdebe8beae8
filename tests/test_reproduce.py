"""stew_tf.reproduce: the table function, the runner (with a fake stew_tf.main), the flagfiles."""

import csv
import io
import json
import math
import pathlib
import sys

import pytest

from stew_tf import reproduce
from tests.helpers import run_main

FLAGFILES = sorted(reproduce.FLAGFILE_DIR.glob("*.cfg"))

# Stands in for `python -m stew_tf.main`: logs its arguments and writes a results.json whose
# validation accuracy peaks at dropout 0.5 and whose test accuracy peaks at dropout 0.2.
FAKE_MAIN = r'''
import json, os, pathlib, sys
args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
values = {}
for line in pathlib.Path(args["flagfile"]).read_text().splitlines():
  if line.startswith("--"):
    name, value = line[2:].split("=", 1)
    values[name] = value
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
    "method": values["method"], "seed": seed, "flags": {"dropout": dropout},
    "strong_model": None,
    "weak_model": {"val": metrics(0.7 - (dropout - 0.5) ** 2),
                   "test": metrics(0.6 - dropout / 10 + seed / 100)},
    "epochs": {"stage1": 3 if transfer else 0, "stage2": 5},
    "wall_seconds": 1.0, "export_dir": "",
}
workdir = pathlib.Path(values["workdir"])
workdir.mkdir(parents=True, exist_ok=True)
(workdir / "results.json").write_text(json.dumps(results))
'''


def _results(method, strong, weak, seed, test, val, epochs, dataset="mosi", label="sentiment",
             dropout=0.3):
  """A results.json dict; `test` and `val` map metric names to fractions."""
  return {"dataset": dataset, "label": label, "strong": strong, "weak": weak, "method": method,
          "seed": seed, "flags": {"dropout": dropout}, "strong_model": None,
          "weak_model": {"val": val, "test": test},
          "epochs": {"stage1": epochs[0], "stage2": epochs[1]}, "wall_seconds": 10.0,
          "export_dir": ""}


def _mosi_results():
  transfer = [
      _results("cm_stew", "text", "audio", seed, {"accuracy": acc, "f1_weighted": f1},
               {"accuracy": val, "f1_weighted": val}, epochs)
      for seed, acc, f1, val, epochs in [(0, 0.60, 0.58, 0.70, (10, 20)),
                                         (1, 0.62, 0.60, 0.71, (12, 22)),
                                         (2, 0.67, 0.62, 0.72, (14, 30))]]
  baseline = _results("enc_cls", None, "audio", 0, {"accuracy": 0.61, "f1_weighted": 0.6},
                      {"accuracy": 0.5, "f1_weighted": 0.5}, (0, 7), dropout=0.5)
  return transfer + [baseline]


def test_summarize_gives_mean_and_sample_std_next_to_the_paper():
  baseline, transfer = reproduce.summarize(_mosi_results())  # baselines come first
  assert (transfer["method"], transfer["strong"], transfer["weak"], transfer["seeds"]) == (
      "cm_stew", "text", "audio", 3)
  accuracy = transfer["metrics"]["accuracy"]
  # Test accuracy 60, 62, 67 %: mean 63, deviations -3, -1, 4, sample variance 26 / 2 = 13.
  assert accuracy["test"] == pytest.approx((63.0, math.sqrt(13)))
  assert accuracy["val"] == pytest.approx((71.0, 1.0))
  assert accuracy["paper"] == 64.8
  f1 = transfer["metrics"]["f1_weighted"]
  assert f1["test"] == pytest.approx((60.0, 2.0))  # 58, 60, 62
  assert f1["paper"] == 64.3
  assert transfer["epochs"] == pytest.approx({"stage1": 12.0, "stage2": 24.0})
  assert transfer["paper_table"] == "IV" and transfer["dropout"] == [0.3]
  assert (baseline["method"], baseline["strong"], baseline["seeds"]) == ("enc_cls", None, 1)
  assert baseline["metrics"]["accuracy"]["test"] == pytest.approx((61.0, None))
  assert baseline["metrics"]["accuracy"]["paper"] == 61.0
  assert baseline["paper_table"] == "II" and baseline["dropout"] == [0.5]


def test_summarize_keeps_ccc_as_a_fraction():
  results = [_results("cm_stew", "audio", "video_appearance", seed, {"ccc": ccc}, {"ccc": 0.4},
                      (5, 6), dataset="recola", label="arousal")
             for seed, ccc in [(0, 0.50), (1, 0.54)]]
  (row,) = reproduce.summarize(results)
  # Mean 0.52; deviations +-0.02: sample variance 2 * 0.0004 / 1.
  assert row["metrics"]["ccc"]["test"] == pytest.approx((0.52, math.sqrt(0.0008)))
  assert row["metrics"]["ccc"]["paper"] == 0.574 and row["paper_table"] == "V"


def test_a_cell_missing_from_the_paper_is_a_dash():
  result = _results("enc_cls", None, "audio", 0, {"accuracy": 0.5, "f1_weighted": 0.5},
                    {"accuracy": 0.5, "f1_weighted": 0.5}, (0, 1), dataset="stew_synthetic")
  rows = reproduce.summarize([result])
  assert rows[0]["metrics"]["accuracy"]["paper"] is None
  table_line = reproduce.results_markdown("mosi", rows).splitlines()[-1]
  assert "| 50.0 | - | 50.0 | - |" in table_line


def test_markdown_states_cells_paper_conventions_and_trivial_baseline():
  text = reproduce.results_markdown("mosi", reproduce.summarize(_mosi_results()))
  assert "| CM-StEW | text → audio | 3 | 63.0 ± 3.6 | 64.8 | 60.0 ± 2.0 | 64.3 |" in text
  assert "| Encoder + Classifier | audio | 1 | 61.0 | 61.0 | 60.0 | 60.0 |" in text
  assert "| 12.0 / 24.0 | 0.3 |" in text
  assert "ddof = 1" in text
  assert "62.1 % accuracy and 47.6 % weighted F1" in text


def test_all_positive_baseline_on_the_mosi_test_split():
  accuracy, f1 = reproduce.all_positive_baseline(285, 467)
  assert accuracy == pytest.approx(467 / 752)  # 62.1 %
  # F1 of the positive class 2 * 467 / (2 * 467 + 285), weighted by 467 / 752; negative F1 is 0.
  assert f1 == pytest.approx(934 / 1219 * 467 / 752)
  assert round(100 * f1, 1) == 47.6


def test_csv_has_test_val_and_paper_columns():
  rows = list(csv.DictReader(io.StringIO(reproduce.results_csv(
      reproduce.summarize(_mosi_results())))))
  baseline, transfer = rows
  assert transfer["method"] == "cm_stew" and transfer["seeds"] == "3"
  assert float(transfer["test_accuracy_pct_mean"]) == pytest.approx(63.0)
  assert float(transfer["test_accuracy_pct_std"]) == pytest.approx(math.sqrt(13), abs=1e-3)
  assert float(transfer["paper_test_accuracy_pct"]) == 64.8
  assert float(transfer["val_f1_weighted_pct_mean"]) == pytest.approx(71.0)
  assert float(transfer["epochs_stage2_mean"]) == 24.0
  assert baseline["strong"] == "" and baseline["test_accuracy_pct_std"] == ""


def test_choose_dropout_uses_validation_and_prefers_the_smaller_on_ties():
  def result(val, test):
    return _results("enc_cls", None, "audio", 0, {"accuracy": test, "f1_weighted": test},
                    {"accuracy": val, "f1_weighted": val}, (0, 1))
  choices = {0.2: result(0.60, 0.90), 0.4: result(0.70, 0.50), 0.6: result(0.70, 0.60)}
  assert reproduce.choose_dropout(choices) == ("accuracy", 0.4)


# ---------------------------------------------------------------------------------------------
# The runner, with FAKE_MAIN in place of stew_tf.main.


@pytest.fixture
def fake_main(tmp_path, monkeypatch):
  """(command, calls): the fake command, and a function returning the argv of each call so far."""
  script = tmp_path / "fake_main.py"
  script.write_text(FAKE_MAIN)
  calls = tmp_path / "calls.jsonl"
  monkeypatch.setenv("FAKE_CALLS", str(calls))

  def read_calls():
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
  return (sys.executable, str(script)), read_calls


def _reproduce(out, command, **kwargs):
  lines = []
  failures = reproduce.reproduce(kwargs.pop("table", "mosi"), kwargs.pop("seeds", 2), out,
                                 command=command, log=lines.append, **kwargs)
  return failures, "\n".join(lines)


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
      [f"--flagfile={reproduce.FLAGFILE_DIR / f'{experiment}.cfg'}", f"--seed={seed}",
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
  (done / "results.json").write_text(json.dumps(_results(
      "no_lfa", "text", "video", 0, {"accuracy": 0.57, "f1_weighted": 0.56},
      {"accuracy": 0.61, "f1_weighted": 0.6}, (3, 5))))
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
  assert "other settings (extra differ" in reason and "another --out" in reason


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
  names = [e.name for e in reproduce.find_experiments("mosi", "text_to_audio")]
  assert names == ["mosi_text_to_audio_cm_stew", "mosi_text_to_audio_no_decoder",
                   "mosi_text_to_audio_no_lfa"]
  assert len(reproduce.find_experiments("recola", "valence_video_geometric_to")) == 3
  assert len(reproduce.find_experiments("recola")) == 24
  with pytest.raises(reproduce.ReproduceError, match="matches no experiment"):
    reproduce.find_experiments("mosi", "arousal")


def test_tune_dropout_picks_the_best_validation_value(tmp_path, fake_main):
  command, calls = fake_main
  out = tmp_path / "out"
  failures, _ = _reproduce(out, command, only="mosi_audio_", seeds=2, tune_dropout=True)
  assert failures == []
  # enc_cls runs the grid on seed 0; cls_only has no encoder, so nothing to tune.
  tuning = [call for call in calls() if "/tune_dropout/" in _flag(call, "workdir")]
  assert [(_flag(c, "seed"), _flag(c, "dropout")) for c in tuning] == [
      ("0", f"{d:g}") for d in reproduce.DROPOUT_GRID]
  assert all("mosi_audio_enc_cls" in _flag(c, "flagfile") for c in tuning)
  final = {(pathlib.Path(_flag(c, "flagfile")).stem, _flag(c, "seed")): _flag(c, "dropout")
           for c in calls() if c not in tuning}
  # The fake's validation peaks at 0.5 (its test accuracy would pick 0.2).
  assert final == {("mosi_audio_enc_cls", "0"): "0.5", ("mosi_audio_enc_cls", "1"): "0.5",
                   ("mosi_audio_cls_only", "0"): None, ("mosi_audio_cls_only", "1"): None}
  choices = json.loads((out / reproduce.CHOICES_FILE).read_text())
  assert choices["mosi_audio_enc_cls"]["dropout"] == 0.5
  text = (out / "results.md").read_text()
  assert "## Dropout chosen on validation" in text
  assert ("| mosi_audio_enc_cls | val acc. % | 61.0 | 66.0 | 69.0 | 70.0 | 69.0 | 66.0 | 0.5 |"
          in text)
  # A restart reruns nothing and chooses the same.
  assert _reproduce(out, command, only="mosi_audio_", seeds=2, tune_dropout=True)[0] == []
  assert len(calls()) == 10


def test_cli_rejects_an_unknown_experiment():
  result = run_main("--table=mosi", "--only=no_such_experiment", module="stew_tf.reproduce",
                    timeout=60)
  assert result.returncode == 2
  assert "error: --only=no_such_experiment matches no experiment of --table=mosi" in result.stderr


# ---------------------------------------------------------------------------------------------
# The flagfiles.

_TRANSFERS = {("mosi", "sentiment"): [("text", "audio"), ("text", "video")],
              ("recola", "arousal"): [("audio", "video_appearance"), ("audio", "video_geometric")],
              ("recola", "valence"): [("video_appearance", "audio"), ("video_geometric", "audio")]}
_MODALITIES = {"mosi": ("text", "audio", "video"),
               "recola": ("audio", "video_appearance", "video_geometric")}


def _paper_experiments():
  """(dataset, label, method, strong, weak) of every experiment in Tables II-V."""
  experiments = set()
  for (dataset, label), transfers in _TRANSFERS.items():
    for weak in _MODALITIES[dataset]:
      experiments |= {(dataset, label, method, None, weak) for method in ("cls_only", "enc_cls")}
    for strong, weak in transfers:
      experiments |= {(dataset, label, method, strong, weak)
                      for method in ("cm_stew", "no_lfa", "no_decoder")}
  return experiments


def _config_of(flagfile):
  from absl import flags
  from stew_tf import config as config_lib
  flags.FLAGS(["prog", f"--flagfile={flagfile}"])
  try:
    return config_lib.from_flags()
  finally:
    flags.FLAGS.unparse_flags()


def _name(dataset, label, method, strong, weak):
  modalities = f"{strong}_to_{weak}" if strong else weak
  return "_".join([dataset] + ([label] if dataset == "recola" else []) + [modalities, method])


def test_the_flagfiles_are_the_papers_experiments():
  experiments = _paper_experiments()
  assert len(experiments) == 36
  assert {path.stem for path in FLAGFILES} == {_name(*e) for e in experiments}
  assert set(reproduce.PAPER) == experiments


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=lambda path: path.stem)
def test_flagfile_parses_with_the_papers_settings(flagfile):
  config = _config_of(flagfile)
  explicit = dict(reproduce.read_flagfile(flagfile))
  # The paper's settings are written out, not left to defaults that may change.
  paper_flags = {"dataset", "label", "weak", "method", "learning_rate", "batch_size",
                 "epochs", "patience"}
  if config.method != "cls_only":
    paper_flags |= {"weak_gru_layers", "dropout"}
  if config.strong:
    paper_flags |= {"strong", "strong_gru_layers", "strong_dropout"}
  if config.uses_decoder:
    paper_flags |= {"decoder_units", "decoder_layers", "beta"}
  if config.uses_alignment:
    paper_flags |= {"alpha", "dcca_r1", "dcca_r2"}
  assert paper_flags <= set(explicit)
  key = (config.dataset, config.label, config.method, config.strong, config.weak)
  assert flagfile.stem == _name(*key)
  assert config.learning_rate == {"mosi": 1e-4, "recola": 1e-5}[config.dataset]
  assert config.batch_size == 32 and config.seed == 0 and config.manual_dir is None
  assert config.workdir.startswith("runs/")  # the default: the runner passes --workdir
  single = {("mosi", "text"), ("recola", "audio")}  # paper, Sec. IV-B: 1 Bi-GRU layer
  if config.method != "cls_only":
    assert config.weak_gru_layers == (1 if (config.dataset, config.weak) in single else 2)
  if config.strong:
    assert config.strong_gru_layers == (1 if (config.dataset, config.strong) in single else 2)
  if config.uses_decoder:
    valence_audio = config.dataset == "recola" and config.label == "valence"
    assert (config.decoder_units, config.decoder_layers) == ((500, 1) if valence_audio
                                                             else (250, 2))
  assert (config.alpha > 0) == config.uses_alignment and (config.beta > 0) == config.uses_decoder


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=lambda path: path.stem)
def test_flagfile_explains_every_value(flagfile):
  lines = flagfile.read_text().splitlines()
  flag_lines = [i for i, line in enumerate(lines) if line.startswith("--")]
  names = [lines[i][2:].split("=", 1)[0] for i in flag_lines]
  assert not {"manual_dir", "seed", "workdir", "data_dir", "download"} & set(names)
  assert len(names) == len(set(names))
  for i in flag_lines:
    comment = _comment_above(lines, i)
    assert comment, f"no comment above {lines[i]}"
    if lines[i].startswith(("--alpha=", "--beta=")):
      assert "chosen on validation, see README" in comment


def _comment_above(lines, index):
  """The text of the `#` lines right above lines[index], joined by spaces."""
  start = index
  while start > 0 and lines[start - 1].startswith("#"):
    start -= 1
  return " ".join(line.lstrip("# ") for line in lines[start:index])
