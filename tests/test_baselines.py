"""stew_tf.baselines on small arrays with known answers (NumPy only)."""

import numpy as np
import pytest

from stew_tf import baselines
from tests.helpers import SHARED_DATA


def _segments(features, labels, clips=None):
  features = np.asarray(features, np.float64).reshape(len(labels), -1)
  clips = np.arange(len(labels)) if clips is None else np.asarray(clips)
  return baselines.Segments(features, np.asarray(labels, np.float64), clips)


def test_trivial_classification_answers_the_train_majority():
  train = _segments(np.zeros(3), [1, 1, 0])
  validation = _segments(np.zeros(2), [0, 1])
  test = _segments(np.zeros(4), [1, 0, 0, 0], clips=[0, 0, 1, 1])
  baseline = baselines.trivial("classification", train, validation, test)
  assert baseline.kind == "trivial" and "always \"positive\"" in baseline.description
  assert baseline.test["accuracy"] == 0.25 and baseline.test["positive_rate"] == 1.0
  assert baseline.test["balanced_accuracy"] == 0.5 and baseline.validation["accuracy"] == 0.5
  clips, labels, scores = baseline.test_run
  assert clips.tolist() == [0, 0, 1, 1] and labels.tolist() == [1, 0, 0, 0]
  assert scores.tolist() == [1.0] * 4
  tie = baselines.trivial("classification", _segments(np.zeros(2), [0, 1]), validation, test)
  assert "always \"negative\"" in tie.description and tie.test["accuracy"] == 0.75


def test_trivial_regression_picks_the_constant_with_the_lowest_validation_mae():
  train = _segments(np.zeros(4), [0.0, 1.0, 2.0, 10.0])  # mean 3.25, median 1.5
  validation = _segments(np.zeros(2), [1.4, 1.6])  # MAE: mean 1.75, median 0.1, zero 1.5
  test = _segments(np.zeros(3), [0.0, 1.5, 3.0])
  baseline = baselines.trivial("regression", train, validation, test)
  assert "the train median" in baseline.description and "1.5" in baseline.description
  assert baseline.test["mae"] == pytest.approx(1.0) and baseline.test["ccc"] == 0.0
  assert baseline.test["pearson_r"] == 0.0 and baseline.validation["mae"] == pytest.approx(0.1)
  validation_near_zero = _segments(np.zeros(2), [-0.2, 0.2])
  assert "(0;" in baselines.trivial("regression", train, validation_near_zero, test).description


def test_fit_logistic_meets_the_optimality_conditions():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(200, 3))
  labels = (features[:, 0] + rng.normal(size=200) > 0).astype(float)
  l2 = 0.1
  weights, bias = baselines.fit_logistic(features, labels, l2)
  probabilities = 1 / (1 + np.exp(-(features @ weights + bias)))
  # Gradient of mean log-loss + (l2 / 2) |w|^2 is zero; the bias is not penalised.
  assert features.T @ (probabilities - labels) / 200 + l2 * weights == pytest.approx(
      np.zeros(3), abs=1e-9)
  assert np.mean(probabilities - labels) == pytest.approx(0.0, abs=1e-9)
  assert weights[0] > 0.5 and abs(weights[1]) < 0.3


def test_fit_ridge_matches_an_augmented_least_squares_solution():
  rng = np.random.default_rng(1)
  features, labels = rng.normal(size=(50, 4)), rng.normal(size=50)
  l2 = 0.3
  weights, bias = baselines.fit_ridge(features, labels, l2)
  # min (1 / 2N) |Xw + b - y|^2 + (l2 / 2) |w|^2 = least squares with sqrt(N l2) I rows for w.
  design = np.vstack([np.hstack([features, np.ones((50, 1))]),
                      np.hstack([np.sqrt(50 * l2) * np.eye(4), np.zeros((4, 1))])])
  target = np.concatenate([labels, np.zeros(4)])
  expected = np.linalg.lstsq(design, target, rcond=None)[0]
  assert np.append(weights, bias) == pytest.approx(expected)


def test_linear_probe_separates_a_separable_problem_with_the_strongest_tied_l2():
  rng = np.random.default_rng(2)

  def split(count):
    features = rng.normal(size=(count, 2))
    features = np.vstack([features, -features])  # balanced, so the bias alone decides nothing
    return _segments(features, (features[:, 0] > 0).astype(float))
  probe = baselines.linear_probe("classification", split(50), split(20), split(30))
  assert probe.kind == "linear_probe"
  assert probe.test["accuracy"] == 1.0 and probe.validation["accuracy"] == 1.0
  # Every L2 in the grid separates the validation split: the strongest (100) is kept.
  assert "logistic regression" in probe.description and "L2 100 " in probe.description


def test_linear_probe_recovers_a_linear_target():
  rng = np.random.default_rng(3)

  def split(count):
    features = rng.normal(size=(count, 2)) * [10.0, 0.1]  # z-scoring evens the scales
    return _segments(features, 0.2 * features[:, 0] - 5.0 * features[:, 1] + 1.0)
  probe = baselines.linear_probe("regression", split(100), split(40), split(60),
                                 sentiment_score=True)
  assert probe.test["ccc"] > 0.999 and probe.test["mae"] < 0.01
  assert "ridge regression" in probe.description and "L2 0.0001 " in probe.description
  assert {"acc7", "acc2_has0", "f1_non0"} <= set(probe.test)


def test_split_segments_flattens_clips_in_order():
  class FakeDataset:
    def as_numpy_iterator(self):
      return iter([{"features": {"audio": np.ones((2, 3))}, "labels": np.array([1, 0]),
                    "length": 2},
                   {"features": {"audio": np.zeros((1, 3))}, "labels": np.array([1]),
                    "length": 1}])

  class FakeSplit:
    dataset = FakeDataset()
  segments = baselines.split_segments(FakeSplit(), "audio")
  assert segments.features.shape == (3, 3) and segments.features[:, 0].tolist() == [1, 1, 0]
  assert segments.labels.tolist() == [1, 0, 1] and segments.clips.tolist() == [0, 0, 1]


MOSI_DIR = SHARED_DATA / "mosi"


@pytest.mark.skipif(not (MOSI_DIR / "MD5SUMS").exists(),
                    reason=f"the real CMU-MOSI features are not in {MOSI_DIR}")
def test_mosi_baselines_from_the_real_features(tmp_path):
  (trivial, probe), = baselines.dataset_baselines("mosi", "sentiment", ["text"], str(tmp_path),
                                                   str(MOSI_DIR)).values()
  _, labels, _ = trivial.test_run
  # MANIFEST: 285 negative / 467 positive test utterances in 31 videos.
  assert (int(np.sum(labels == 0)), int(np.sum(labels == 1))) == (285, 467)
  assert len(np.unique(trivial.test_run[0])) == 31
  # Train (52 videos) is mostly negative, so the train majority scores 285 / 752 on test.
  assert "negative" in trivial.description
  assert trivial.test["accuracy"] == pytest.approx(285 / 752)
  # MANIFEST: a ridge classifier on single text utterances scores about 73 % on test.
  assert 0.70 < probe.test["accuracy"] < 0.80
