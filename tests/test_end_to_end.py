"""The whole command on the synthetic data: results, export, TensorBoard, checkpoints, resume."""

import json

import numpy as np
import pytest
import tensorflow as tf

from stew_tf import data
from tests.helpers import run_main

# The finished run that most tests here read starts in the background as the module starts.
pytestmark = pytest.mark.usefixtures("started_text_audio_run")

CLASSIFICATION_METRICS = ("accuracy", "f1_weighted", "balanced_accuracy", "precision_negative",
                          "precision_positive", "recall_negative", "recall_positive",
                          "positive_rate", "confusion")


# First in the module: it runs while the shared finished run trains (started_text_audio_run).
def test_interrupted_run_resumes_and_completes(tmp_path, tfds_dir):
  data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))  # prepared here, not in a run
  workdir = tmp_path / "work"
  args = ["--strong=text", "--weak=video", f"--workdir={workdir}", f"--data_dir={tfds_dir}",
          "--epochs=2", "--patience=5"]
  # Stage 1 has 5 steps per epoch (160 clips / 32): stop inside stage 2's first epoch.
  stopped = run_main(*args, "--stop_after_steps=13")
  assert stopped.returncode == 3, stopped.stderr[-2000:]
  assert "rerun the same command to resume" in stopped.stderr
  assert not (workdir / "results.json").exists()
  assert (workdir / "checkpoints" / "stage1" / "done.json").exists()
  resumed = run_main(*args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "[stage1] already finished after 2 epochs" in resumed.stdout
  assert "[stage1 text] epoch" not in resumed.stdout
  results = json.loads((workdir / "results.json").read_text())
  assert results["epochs"] == {"stage1": 2, "stage2": 2}
  # A third run trains nothing and reproduces the same results.
  again = run_main(*args)
  assert "[stage2] already finished" in again.stdout
  assert json.loads((workdir / "results.json").read_text())["weak_model"] == results["weak_model"]


@pytest.fixture(scope="module")
def finished_run(text_audio_run):
  """A finished --strong=text --weak=audio run of 3 epochs (TEXT_AUDIO_ARGS): the session's
  text_audio_run (tests/conftest.py), which test_run_integrity resumes against too."""
  root, _, result = text_audio_run
  return root / "work", result


def test_results_json_has_the_documented_shape(finished_run):
  workdir, _ = finished_run
  results = json.loads((workdir / "results.json").read_text())
  assert {k: results[k] for k in ("dataset", "label", "strong", "weak", "method", "seed")} == {
      "dataset": "stew_synthetic", "label": "sentiment", "strong": "text", "weak": "audio",
      "method": "cm_stew", "seed": 0}
  for model in ("strong_model", "weak_model"):
    for split in ("validation", "test"):
      metrics = results[model][split]
      assert list(metrics) == list(CLASSIFICATION_METRICS)
      assert all(0.0 <= metrics[name] <= 1.0 for name in CLASSIFICATION_METRICS[:-1])
      (tn, fp), (fn, tp) = metrics["confusion"]
      assert metrics["accuracy"] == pytest.approx((tn + tp) / (tn + fp + fn + tp))
  assert results["epochs"] == {"stage1": 3, "stage2": 3}
  objective = results["config"]["objective"]
  assert objective["alignment"]["alpha"] > 0 and objective["translation"]["beta"] > 0
  assert results["wall_seconds"] > 0
  assert results["selected_on"] == "validation" and results["degenerate"] is None


def test_predictions_npz_holds_every_real_segment_of_validation_and_test(finished_run):
  workdir, _ = finished_run
  results = json.loads((workdir / "results.json").read_text())
  with np.load(workdir / "predictions.npz") as arrays:
    for split in ("validation", "test"):
      labels, scores = arrays[f"{split}_label"], arrays[f"{split}_score"]
      clips = arrays[f"{split}_clip"]
      assert labels.shape == scores.shape == clips.shape
      assert clips.min() == 0 and np.all(np.diff(clips) >= 0)
      accuracy = np.mean((scores >= 0.5) == (labels == 1))
      assert accuracy == pytest.approx(results["weak_model"][split]["accuracy"])
    assert arrays["test_clip"].max() == 119  # 120 synthetic test clips


def test_progress_shows_stage_epoch_and_each_loss_term(finished_run):
  _, result = finished_run
  lines = result.stdout.splitlines()
  stage2 = [line for line in lines if line.startswith("[stage2 audio] epoch")]
  assert len(stage2) == 3
  for term in ("prediction", "dcca", "mae", "total", "validation accuracy"):
    assert term in stage2[0]
  assert any(line.startswith("[stage1 text] epoch   1/3") for line in lines)
  assert "Results: cm_stew on stew_synthetic" in result.stdout


def test_tensorboard_events_hold_every_term(finished_run):
  workdir, _ = finished_run
  expected = {
      "stage1": {"loss/prediction", "loss/total", "validation/accuracy",
                 "validation/f1_weighted", "learning_rate"},
      "stage2": {"loss/prediction", "loss/dcca", "loss/mae", "loss/total",
                 "validation/accuracy", "validation/f1_weighted", "learning_rate"},
  }
  for stage, tags in expected.items():
    found = {}
    for path in (workdir / "tensorboard" / stage).glob("events.out.tfevents.*"):
      for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
          found.setdefault(value.tag, []).append(event.step)
    assert tags <= set(found), (stage, sorted(found))
    assert sorted(found["loss/total"]) == [1, 2, 3]


def test_hparams_folder_holds_the_settings_and_final_metrics(finished_run):
  from tests.test_hparams import read_session
  workdir, _ = finished_run
  results = json.loads((workdir / "results.json").read_text())
  settings, scalars = read_session(workdir / "tensorboard" / "hparams")
  objective = results["config"]["objective"]
  assert settings["objective.alignment.alpha"] == objective["alignment"]["alpha"]
  assert settings["student.modality"] == "audio" and settings["teacher.modality"] == "text"
  assert not any(name.startswith("runtime") for name in settings)
  for split in ("validation", "test"):
    assert scalars[f"{split}/accuracy"] == np.float32(
        results["weak_model"][split]["accuracy"]).item()
    assert scalars[f"strong/{split}/f1_weighted"] == np.float32(
        results["strong_model"][split]["f1_weighted"]).item()


def test_export_reproduces_the_in_memory_model(finished_run):
  workdir, _ = finished_run
  loaded = tf.saved_model.load(str(workdir / "export" / "1"))
  serve = loaded.signatures["serving_default"]
  rng = np.random.default_rng(0)
  features = rng.normal(size=(3, 17, 73)).astype(np.float32)
  mask = np.arange(17)[None, :] < np.array([[17], [9], [4]])
  scores = serve(features=tf.constant(features), mask=tf.constant(mask))["scores"].numpy()
  assert scores.shape == (3, 17)
  assert np.all((scores >= 0) & (scores <= 1))
  predictor = _restore_weak_predictor(workdir)
  expected = predictor([features, mask], training=False).numpy()
  np.testing.assert_allclose(scores[mask], expected[mask], atol=1e-5)
  # Padded steps never change real ones.
  junk = features.copy()
  junk[~mask] = 1e3
  again = serve(features=tf.constant(junk), mask=tf.constant(mask))["scores"].numpy()
  np.testing.assert_allclose(again[mask], scores[mask], atol=1e-5)


def _restore_weak_predictor(workdir):
  from stew_tf import cli_flags
  from stew_tf import data
  from stew_tf import experiment
  from stew_tf import models
  results = json.loads((workdir / "results.json").read_text())
  config = cli_flags.parse(["prog", "--strong=text", "--weak=audio", f"--workdir={workdir}",
                            f"--data_dir={results['config']['runtime']['data_dir']}"])
  builder = data.make_builder(config.data.dataset, config.data.label, config.runtime.data_dir)
  train = data.load_split(builder, "train", ["text", "audio"], config.data.label, 32)
  weak_stage = experiment.build_stages(config, train)[-1]
  checkpoint = tf.train.Checkpoint(**{m.name: m for m in weak_stage.trained_models})
  best = tf.train.latest_checkpoint(str(workdir / "checkpoints" / "stage2" / "best"))
  checkpoint.restore(best).expect_partial()
  return models.build_predictor(weak_stage.encoder, weak_stage.classifier, "weak")
