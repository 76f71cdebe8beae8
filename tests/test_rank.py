"""stew_tf.rank: modality ranking (paper Sec. III-A) with a fake stew_tf.main, and one real run."""

import importlib
import json

from absl import flags
import numpy as np
import pytest

from stew_tf import rank
from stew_tf import tfds_builders
from tests.helpers import install_fake_main
from tests.helpers import run_main

tfds_builders.builder_module("clips")
make_dummy_data = importlib.import_module("stew_datasets.clips.make_dummy_data")

# The three modalities of the fake; the default synthetic config adds a fourth, label_echo.
SYNTHETIC = "stew_synthetic/mosi_like"
# The fake's validation metrics rank text > video > audio (accuracy) and audio > video > text (ccc);
# its test metrics are ordered the other way, so a ranking that looked at test would differ.
FAKE_MAIN = r'''
import json, os, pathlib, sys
args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if "=" in arg)
with open(os.environ["FAKE_CALLS"], "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\n")
weak, seed = args["weak"], int(args["seed"])
if os.environ.get("FAKE_FAIL") == weak:
  print("boom: no data for", weak)
  sys.exit(1)
accuracy = {"text": 0.80, "video": 0.60, "audio": 0.55}[weak] + 0.02 * seed
ccc = {"text": 0.10, "video": 0.30, "audio": 0.50}[weak] - 0.01 * seed
metrics = lambda a, c: {"accuracy": a, "f1_weighted": a, "ccc": c}
results = {"weak_model": {"validation": metrics(accuracy, ccc),
                           "test": metrics(1 - accuracy, 1 - ccc)}}
workdir = pathlib.Path(args["workdir"])
workdir.mkdir(parents=True, exist_ok=True)
(workdir / "results.json").write_text(json.dumps(results))
'''


@pytest.fixture
def fake_main(tmp_path, monkeypatch):
  """A function returning the argv of each fake stew_tf.main call so far."""
  command, read_calls = install_fake_main(FAKE_MAIN, tmp_path, monkeypatch)
  monkeypatch.setattr(rank, "MAIN_COMMAND", command)
  return read_calls


def test_ranks_by_mean_validation_accuracy(tmp_path, fake_main):
  out = tmp_path / "rank"
  ranking = rank.rank(SYNTHETIC, seeds=2, workdir=out,
                      main_args=["--epochs=2", "--batch_size=8"], log=lambda _: None)
  expected_calls = [[f"--dataset={SYNTHETIC}", "--label=sentiment", "--method=enc_cls",
                     f"--weak={m}", f"--seed={s}", f"--workdir={out.absolute() / m / f'seed{s}'}",
                     "--epochs=2", "--batch_size=8"]
                    for m in ("text", "audio", "video") for s in (0, 1)]
  assert fake_main() == expected_calls
  assert ranking["metric"] == "accuracy" and ranking["ranking"] == ["text", "video", "audio"]
  text = ranking["modalities"][0]
  assert text["modality"] == "text" and text["rank"] == 1
  np.testing.assert_allclose(text["validation"]["per_seed"], [0.80, 0.82])
  np.testing.assert_allclose(text["validation"]["mean"], 0.81)
  np.testing.assert_allclose(text["validation"]["std"], np.std([0.80, 0.82], ddof=1))
  np.testing.assert_allclose(text["test"]["mean"], np.mean([0.20, 0.18]))
  assert [(p["strong"], p["weak"]) for p in ranking["pairs"]] == [("text", "video"),
                                                                  ("text", "audio")]
  np.testing.assert_allclose(ranking["pairs"][0]["validation_margin"], 0.81 - 0.61)
  assert json.loads((out / "ranking.json").read_text()) == ranking
  table = (out / "ranking.md").read_text()
  assert "| 1 | text | 0.810 ± 0.014 | 0.800, 0.820 | 0.190 ± 0.014 |" in table
  assert "- text → audio: validation margin +0.250; `python -m stew_tf.main" in table


def test_regression_ranks_by_ccc(tmp_path, fake_main):
  ranking = rank.rank("mosi", "sentiment_score", seeds=1, workdir=tmp_path / "r",
                      log=lambda _: None)
  assert all("--label=sentiment_score" in call for call in fake_main())
  assert ranking["task"] == "regression" and ranking["metric"] == "ccc"
  assert ranking["ranking"] == ["audio", "video", "text"]


def test_finished_runs_and_rankings_are_reused(tmp_path, fake_main):
  out = tmp_path / "rank"
  rank.rank(SYNTHETIC, seeds=2, workdir=out, main_args=["--epochs=2"], log=lambda _: None)
  calls = len(fake_main())
  rank.rank(SYNTHETIC, seeds=2, workdir=out, main_args=["--epochs=2"], log=lambda _: None)
  assert len(fake_main()) == calls
  for weak, strong in (("audio", "text"), ("text", "video")):
    # Whatever its seeds, a ranking made with the same training flags is reused.
    chosen, path = rank.best_strong(SYNTHETIC, "sentiment", weak, rank_workdir=out,
                                    main_args=["--epochs=2"], seeds=5, log=lambda _: None)
    assert (chosen, path) == (strong, str(out.absolute() / "ranking.json"))
  assert len(fake_main()) == calls


def test_best_strong_ranks_when_there_is_no_ranking(tmp_path, fake_main):
  strong, path = rank.best_strong(SYNTHETIC, None, "text", rank_workdir=tmp_path / "r",
                                  seeds=1, log=lambda _: None)
  assert strong == "video" and len(fake_main()) == 3
  assert json.loads(open(path).read())["label"] == "sentiment"


def test_a_ranking_made_with_other_settings_is_not_reused(tmp_path, fake_main):
  out = tmp_path / "rank"
  rank.rank(SYNTHETIC, seeds=1, workdir=out, main_args=["--epochs=2"], log=lambda _: None)
  with pytest.raises(rank.RankError, match=r"ranking.json was made with other settings "
                     r"\(main_args: was \['--epochs=2'\], now \['--epochs=3'\]\); delete .* "
                     r"to rank again"):
    rank.best_strong(SYNTHETIC, "sentiment", "audio", rank_workdir=out,
                     main_args=["--epochs=3"], seeds=1)
  (out / "ranking.json").unlink()
  with pytest.raises(rank.RankError, match=r"holds a run made with other settings \(main_args: "
                     r"was \['--epochs=2'\], now \['--epochs=3'\]\); delete that "
                     r"folder"):
    rank.rank(SYNTHETIC, seeds=1, workdir=out, main_args=["--epochs=3"],
              log=lambda _: None)


def test_a_failed_run_stops_with_its_command_and_log(tmp_path, fake_main, monkeypatch):
  monkeypatch.setenv("FAKE_FAIL", "audio")
  with pytest.raises(rank.RankError) as error:
    rank.rank(SYNTHETIC, seeds=1, workdir=tmp_path / "r", log=lambda _: None)
  message = str(error.value)
  assert "--weak=audio" in message and "failed (exit 1)" in message
  assert "boom: no data for audio" in message
  assert not (tmp_path / "r" / "ranking.json").exists()


@pytest.mark.parametrize("arg", ["--weak=text", "--seed=3", "--select_on=test", "epochs=3"])
def test_flags_the_ranking_sets_are_refused(arg, tmp_path):
  with pytest.raises(rank.RankError, match="the ranking sets"):
    rank.rank(SYNTHETIC, workdir=tmp_path, main_args=[arg])


def test_training_args_are_the_flags_given(tmp_path):
  values = flags.FlagValues()
  rank.define_flags(values)
  values(["rank", "--dataset=mosi", "--download", "--epochs=3", "--dropout=0.2",
          f"--manual_dir={tmp_path}"])
  assert rank.training_args(values) == ["--epochs=3", "--dropout=0.2",
                                        f"--manual_dir={tmp_path}", "--download"]


def test_cli_ranks_the_modalities_of_a_clips_folder(tmp_path):
  """Real stew_tf.main runs (2 modalities, 1 seed, 1 epoch, 12 tiny clips): the wiring."""
  folder, out = tmp_path / "own", tmp_path / "rank"
  make_dummy_data.write_folder(folder, {"task": "classification", "modalities": {"a": 3, "b": 2}},
                               clips={"train": 6, "validation": 3, "test": 3})
  result = run_main("--dataset=clips", f"--manual_dir={folder}", "--seeds=1", "--epochs=1",
                    f"--workdir={out}", f"--data_dir={tmp_path / 'tfds'}", module="stew_tf.rank")
  assert result.returncode == 0, result.stderr[-3000:]
  ranking = json.loads((out / "ranking.json").read_text())
  assert sorted(ranking["ranking"]) == ["a", "b"] and ranking["metric"] == "accuracy"
  for row in ranking["modalities"]:
    results = json.loads((out / row["modality"] / "seed0" / "results.json").read_text())
    assert results["method"] == "enc_cls" and results["config"]["trainer"]["epochs"] == 1
    assert row["validation"]["mean"] == results["weak_model"]["validation"]["accuracy"]
  assert "| rank | modality | validation accuracy" in result.stdout
  assert f"--epochs=1 --data_dir={tmp_path / 'tfds'} --manual_dir={folder}`" in result.stdout
