"""The task table: each row's loss, activation, label range, metrics, monitor, degeneracy check
and baselines, against NumPy references of what the code switched on the task name did; and no
module but the table compares a task name with a string literal."""

import re

import keras
import numpy as np
import pytest

from stew_tf import baselines
from stew_tf import evaluation
from stew_tf import models
from stew_tf import table_rows
from stew_tf import tasks
from stew_tf import train_step
from tests.helpers import REPO_ROOT

# What the code before the table chose for each task name.
OLD_MONITOR = {"classification": "accuracy", "regression": "ccc"}
OLD_ACTIVATION = {"classification": "sigmoid", "regression": "tanh"}
CLASSIFICATION_KEYS = ["accuracy", "f1_weighted", "balanced_accuracy", "precision_negative",
                       "precision_positive", "recall_negative", "recall_positive",
                       "positive_rate", "confusion"]
REGRESSION_KEYS = ["ccc", "pearson_r", "mae", "rmse"]
SENTIMENT_KEYS = ["acc7", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"]
DIM = 3


def _numpy_ccc(labels, predictions):
  labels, predictions = np.float64(labels), np.float64(predictions)
  covariance = np.mean((labels - labels.mean()) * (predictions - predictions.mean()))
  return 2 * covariance / (labels.var() + predictions.var()
                           + (labels.mean() - predictions.mean()) ** 2)


def _batch(task, rng):
  mask = np.arange(5)[None, :] < np.array([[5], [2]])
  labels = (rng.integers(0, 2, mask.shape) if task == "classification"
            else rng.uniform(-1, 1, mask.shape))
  return {"features": {"audio": rng.normal(size=(2, 5, DIM)).astype(np.float32)},
          "mask": mask, "labels": (labels * mask).astype(np.float32)}


def _numpy_scores(classifier, latents, task, scale_offset=None):
  """The classifier Dense(relu) → Dense(1, activation) [→ scale, offset], in NumPy."""
  hidden_kernel, hidden_bias, score_kernel, score_bias = [w.numpy() for w in classifier.weights]
  hidden = np.maximum(np.float64(latents) @ hidden_kernel + hidden_bias, 0.0)
  logits = (hidden @ score_kernel + score_bias)[..., 0]
  scores = 1 / (1 + np.exp(-logits)) if OLD_ACTIVATION[task] == "sigmoid" else np.tanh(logits)
  if scale_offset:
    scores = scores * scale_offset[0] + scale_offset[1]
  return scores


@pytest.mark.parametrize("task", sorted(tasks.TASKS))
def test_the_train_step_uses_the_rows_prediction_loss(task):
  keras.utils.set_random_seed(0)
  encoder = models.build_identity_encoder(DIM, np.zeros(DIM), np.ones(DIM), "weak")
  classifier = models.build_classifier(DIM, task, "weak", 0.0)
  stage = train_step.Stage("stage1", "audio", encoder, classifier, task)
  steps = train_step.StepFunctions(stage, {"audio": DIM}, train_step.make_optimizer(1e-3))
  batch = _batch(task, np.random.default_rng(1))
  terms, _ = steps.loss_terms(batch, training=False)
  mask, labels = batch["mask"], np.float64(batch["labels"])
  scores = _numpy_scores(classifier, batch["features"]["audio"], task)[mask]
  if task == "classification":  # eq. 3, probabilities clipped to [1e-7, 1 - 1e-7]
    p = np.clip(scores, 1e-7, 1 - 1e-7)
    expected = np.mean(-(labels[mask] * np.log(p) + (1 - labels[mask]) * np.log(1 - p)))
  else:  # eq. 2
    expected = np.mean((labels[mask] - scores) ** 2)
  assert float(terms["prediction"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("task, label_range, scale_offset", [
    ("classification", None, None),
    ("classification", (0.0, 5.0), None),  # classes: a range does not apply
    ("regression", None, None),
    ("regression", (-1.0, 1.0), None),  # tanh's own range: nothing to map
    ("regression", (0.0, 5.0), (2.5, 2.5)),
    ("regression", (-3.0, 3.0), (3.0, 0.0)),
])
def test_the_classifier_head_has_the_rows_activation_and_label_range(task, label_range,
                                                                     scale_offset):
  keras.utils.set_random_seed(0)
  classifier = models.build_classifier(DIM, task, "weak", 0.0, label_range)
  names = [layer.name for layer in classifier.layers]
  assert ("weak_label_range" in names) == (scale_offset is not None)
  latents = np.random.default_rng(2).normal(size=(2, 4, DIM)).astype(np.float32)
  scores = classifier(latents).numpy()
  np.testing.assert_allclose(scores, _numpy_scores(classifier, latents, task, scale_offset),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("label_range", [(-3.0, 3.0), (0.0, 5.0), (0, 5), (0.1, 0.7),
                                         (-2.5, 1e-3), (1.0, 2.0), (-0.3, 0.9)])
def test_the_label_scaling_is_bit_identical_to_the_old_formula(label_range):
  low, high = label_range
  assert tasks.get("regression").label_scaling(label_range) == ((high - low) / 2.0,
                                                                (high + low) / 2.0)
  assert tasks.get("classification").label_scaling(label_range) is None


def test_default_label_ranges():
  assert tasks.get("classification").default_label_range is None
  assert tasks.get("classification").binary
  assert tasks.get("regression").default_label_range == (-1.0, 1.0)
  assert not tasks.get("regression").binary


def _predictions(labels, scores):
  return evaluation.Predictions(np.zeros(len(labels), np.int32), np.float32(labels),
                                np.float32(scores))


def test_split_metrics_of_classification():
  labels, scores = [1, 0, 1, 1, 0], [0.9, 0.5, 0.2, 0.7, 0.1]
  found = evaluation.split_metrics("classification", _predictions(labels, scores))
  assert list(found) == CLASSIFICATION_KEYS
  assert found["accuracy"] == np.mean((np.array(scores) >= 0.5) == np.array(labels))  # 3 / 5
  assert found["confusion"] == [[1, 1], [1, 2]]


@pytest.mark.parametrize("sentiment, keys", [(False, REGRESSION_KEYS),
                                             (True, REGRESSION_KEYS + SENTIMENT_KEYS)])
def test_split_metrics_of_regression(sentiment, keys):
  labels, scores = [-2.0, 0.5, 1.0, 3.0], [-1.5, 0.0, 1.5, 2.0]
  found = evaluation.split_metrics("regression", _predictions(labels, scores), sentiment)
  assert list(found) == keys
  assert found["ccc"] == pytest.approx(_numpy_ccc(labels, scores))
  assert found["mae"] == pytest.approx(np.mean(np.abs(np.subtract(scores, labels))))


@pytest.mark.parametrize("task", sorted(tasks.TASKS))
def test_the_monitor_picks_the_old_metric_and_is_maximised(task):
  row = tasks.get(task)
  stage = train_step.Stage("stage1", "audio", None, None, task)
  assert stage.monitor == row.monitor == OLD_MONITOR[task]
  assert row.maximise and table_rows.METRICS[row.monitor].higher_is_better
  assert row.better(0.6, 0.5) and not row.better(0.5, 0.5) and not row.better(0.4, 0.5)


def test_the_monitor_is_a_metric_of_the_split():
  binary = _predictions([0, 1, 1], [0.2, 0.8, 0.4])
  assert "accuracy" in evaluation.split_metrics("classification", binary)
  assert "ccc" in evaluation.split_metrics("regression", binary)
  for row in tasks.TASKS.values():
    assert row.monitor in evaluation.split_metrics(row.name, binary)


@pytest.mark.parametrize("task, constant, kind", [("classification", 0.7, "one_class"),
                                                  ("regression", 0.3, "constant")])
def test_degeneracy_of_each_row(task, constant, kind):
  labels = np.tile([0.0, 1.0], 100)
  flat = evaluation.degeneracy(task, _predictions(labels, np.full(200, constant)))
  assert flat["kind"] == kind
  varied = np.linspace(0.0, 1.0, 200)  # half the answers each side of 0.5, std 0.29
  assert evaluation.degeneracy(task, _predictions(labels, varied)) is None
  if task == "classification":
    assert (flat["answer"], flat["share"]) == ("positive", 1.0)
  else:
    assert flat["std"] == pytest.approx(0.0, abs=1e-7) and flat["label_std"] == 0.5


def test_random_labels_are_the_old_benchmarks():
  shape = (4, 6)
  np.testing.assert_array_equal(
      tasks.get("classification").random_labels(np.random.default_rng(5), shape),
      np.random.default_rng(5).integers(0, 2, size=shape))
  np.testing.assert_array_equal(
      tasks.get("regression").random_labels(np.random.default_rng(5), shape),
      np.random.default_rng(5).uniform(-1.0, 1.0, size=shape))


@pytest.mark.parametrize("task", sorted(tasks.TASKS))
def test_every_name_in_a_row_is_implemented_where_it_is_looked_up(task):
  row = tasks.get(task)
  assert keras.activations.get(row.activation) is not None
  assert row.trivial_baseline in baselines.TRIVIAL and row.probe in baselines.PROBES


def test_baselines_follow_the_row():
  segments = baselines.Segments(np.arange(8.0)[:, None], np.array([0, 0, 0, 1] * 2, float),
                                np.arange(8))
  trivial, probe = baselines.compute("classification", segments, segments, segments)
  assert trivial.task == "classification" and "always \"negative\"" in trivial.description
  assert "logistic regression" in probe.description and "validation accuracy" in probe.description
  trivial, probe = baselines.compute("regression", segments, segments, segments)
  assert "lowest validation MAE" in trivial.description
  assert "ridge regression" in probe.description and "validation ccc" in probe.description


# data.py names the task of each dataset's labels (its specs), as a row name.
DATASET_SPECS = ("stew_tf/data.py",)
TASK_LITERAL = re.compile("|".join(f"[\"']{re.escape(name)}[\"']" for name in tasks.TASKS))


def _task_literals(path, root=REPO_ROOT):
  return [f"{path.relative_to(root)}:{number}"
          for number, line in enumerate(path.read_text().splitlines(), 1)
          if TASK_LITERAL.search(line)]


def test_no_module_but_the_table_names_a_task():
  allowed = {"stew_tf/tasks.py", *DATASET_SPECS}
  found = [hit for path in sorted((REPO_ROOT / "stew_tf").rglob("*.py"))
           if str(path.relative_to(REPO_ROOT)) not in allowed for hit in _task_literals(path)]
  assert found == []


def test_the_check_finds_a_task_literal(tmp_path):
  source = tmp_path / "module.py"
  source.write_text("x = 1\nif task == 'regression':\n  pass\n")
  assert _task_literals(source, tmp_path) == ["module.py:2"]
