"""Tests of the evaluation metrics against values worked out by hand."""

import json

import numpy as np
import pytest

from stew_tf import metrics

# A 2x4 batch; the last step of each row is padding and holds junk.
LABELS = np.array([[1, 0, 1, 7],
                   [1, 0, 0, -3]], dtype=np.float32)
SCORES = np.array([[0.9, 0.6, 0.2, 1e9],
                   [0.5, 0.1, 0.4, -1e9]], dtype=np.float32)
MASK = np.array([[True, True, True, False],
                 [True, True, True, False]])
# Valid pairs (label, predicted class with score >= 0.5):
#   (1, 1) (0, 1) (1, 0) / (1, 1) (0, 0) (0, 0)
# Correct: 4 of 6 -> accuracy 2/3.
# Positive class: TP 2, FP 1, FN 1 -> F1 = 4 / (4 + 2) = 2/3, 3 true positives.
# Negative class: TP 2, FP 1, FN 1 -> F1 = 2/3, 3 true negatives.
# Weighted F1 = (2/3 * 3 + 2/3 * 3) / 6 = 2/3.


def test_accuracy_by_hand():
  assert metrics.binary_accuracy(LABELS, SCORES, MASK) == pytest.approx(2 / 3)


def test_threshold_is_inclusive():
  # 0.5 predicts positive: (1, 1) correct; at threshold 0.55 it is (1, 0), wrong.
  assert metrics.binary_accuracy([[1.0]], [[0.5]], [[True]]) == 1.0
  assert metrics.binary_accuracy([[1.0]], [[0.5]], [[True]], threshold=0.55) == 0.0


def test_weighted_f1_by_hand():
  assert metrics.weighted_f1(LABELS, SCORES, MASK) == pytest.approx(2 / 3)


def test_weighted_f1_unbalanced_by_hand():
  labels = np.array([1, 1, 1, 1, 0, 0])
  scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.6])
  mask = np.ones(6, bool)
  # Positive: TP 3, FP 1, FN 1 -> F1 = 6 / 8 = 0.75, 4 true.
  # Negative: TP 1, FP 1, FN 1 -> F1 = 2 / 4 = 0.5, 2 true.
  # Weighted: (0.75 * 4 + 0.5 * 2) / 6 = 4 / 6.
  assert metrics.weighted_f1(labels, scores, mask) == pytest.approx(4 / 6)
  assert metrics.binary_accuracy(labels, scores, mask) == pytest.approx(4 / 6)


def test_all_positive_predictions_on_62_1_percent_positive_set():
  labels = np.array([1] * 621 + [0] * 379, dtype=np.float32).reshape(10, 100)
  scores = np.ones_like(labels)
  mask = np.ones_like(labels, bool)
  assert metrics.binary_accuracy(labels, scores, mask) == pytest.approx(0.621)
  # Positive F1 = 2 * 621 / (2 * 621 + 379); the negative class, never predicted, scores 0.
  expected_f1 = (2 * 621 / (2 * 621 + 379)) * 0.621
  assert metrics.weighted_f1(labels, scores, mask) == pytest.approx(expected_f1)


def test_ccc_by_hand():
  labels = np.array([[0.0, 1.0, 2.0, 99.0]])
  predictions = np.array([[1.0, 1.0, 4.0, -99.0]])
  mask = np.array([[True, True, True, False]])
  # y = (0, 1, 2): mean 1, var 2/3. ŷ = (1, 1, 4): mean 2, var 2.
  # cov = ((-1)(-1) + 0 + (1)(2)) / 3 = 1.
  # CCC = 2 * 1 / (2/3 + 2 + 1) = 6 / 11.
  assert metrics.ccc(labels, predictions, mask) == pytest.approx(6 / 11)


def test_ccc_identical_negated_and_shifted():
  sequence = np.sin(np.linspace(0.0, 6.0, 50)).reshape(2, 25)
  sequence -= sequence.mean()  # so that negating it keeps the mean: CCC exactly -1
  mask = np.ones_like(sequence, bool)
  assert metrics.ccc(sequence, sequence, mask) == pytest.approx(1.0)
  assert metrics.ccc(sequence, -sequence, mask) == pytest.approx(-1.0)
  shifted = metrics.ccc(sequence, sequence + 0.3, mask)
  assert shifted < 0.99
  # Pearson correlation would still be 1; the CCC pays for the bias: 2σ² / (2σ² + 0.09).
  variance = sequence.var()
  assert shifted == pytest.approx(2 * variance / (2 * variance + 0.09))
  assert metrics.ccc([[2.0, 2.0]], [[2.0, 2.0]], [[True, True]]) == 1.0


def test_masked_junk_does_not_change_results():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, size=(3, 8)).astype(np.float32)
  scores = rng.uniform(size=(3, 8))
  mask = rng.uniform(size=(3, 8)) < 0.7
  junk_labels = np.where(mask, labels, 5.0)
  junk_scores = np.where(mask, scores, rng.choice([-1e30, 1e30], size=(3, 8)))
  for metric in (metrics.binary_accuracy, metrics.weighted_f1, metrics.ccc):
    assert metric(junk_labels, junk_scores, mask) == metric(labels[mask], scores[mask],
                                                             np.ones(mask.sum(), bool))


@pytest.mark.parametrize("metric", [metrics.binary_accuracy, metrics.weighted_f1, metrics.ccc])
def test_errors(metric):
  with pytest.raises(ValueError, match="shape"):
    metric(np.zeros((2, 3)), np.zeros((2, 4)), np.ones((2, 3), bool))
  with pytest.raises(ValueError, match="no entries"):
    metric(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3), bool))


def test_binary_metrics_reject_non_binary_labels():
  with pytest.raises(ValueError, match="0 or 1"):
    metrics.binary_accuracy([[0.0, 2.0]], [[0.1, 0.9]], [[True, True]])


# ---------------------------------------------------------------------------------------------
# Full metric sets on flat arrays.


def test_classification_metrics_by_hand():
  # Labels 1 1 1 1 0 0 0 0 0 0; answered 1 1 1 0 1 1 0 0 0 0 (scores >= 0.5).
  labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
  scores = np.array([0.9, 0.5, 0.7, 0.1, 0.6, 0.8, 0.2, 0.3, 0.0, 0.4])
  result = metrics.classification_metrics(labels, scores)
  # tp 3, fn 1, fp 2, tn 4.
  assert list(result) == ["accuracy", "f1_weighted", "balanced_accuracy", "precision_negative",
                          "precision_positive", "recall_negative", "recall_positive",
                          "positive_rate", "confusion"]
  assert result["confusion"] == [[4, 2], [1, 3]]
  assert all(type(n) is int for row in result["confusion"] for n in row)
  assert result["accuracy"] == pytest.approx(7 / 10)
  # F1 positive 6 / (6 + 3) = 2/3 (4 true); negative 8 / (8 + 3) = 8/11 (6 true).
  assert result["f1_weighted"] == pytest.approx((2 / 3 * 4 + 8 / 11 * 6) / 10)
  assert result["recall_positive"] == pytest.approx(3 / 4)
  assert result["recall_negative"] == pytest.approx(4 / 6)
  assert result["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
  assert result["precision_positive"] == pytest.approx(3 / 5)
  assert result["precision_negative"] == pytest.approx(4 / 5)
  assert result["positive_rate"] == pytest.approx(5 / 10)
  json.dumps(result)  # plain Python types


def test_classification_metrics_of_always_positive_on_the_mosi_test_balance():
  labels = np.array([1] * 467 + [0] * 285)
  result = metrics.classification_metrics(labels, np.ones(752))
  assert result["accuracy"] == pytest.approx(467 / 752)  # 62.1 %: high, yet nothing learnt
  assert result["balanced_accuracy"] == 0.5  # recall 1 and 0: chance
  assert result["positive_rate"] == 1.0
  assert result["precision_negative"] == 0.0  # never answered: 0, not NaN
  assert result["confusion"] == [[0, 285], [0, 467]]


def test_balanced_accuracy_ignores_a_class_that_never_occurs():
  result = metrics.classification_metrics([1, 1, 1], [0.9, 0.1, 0.8])
  assert result["recall_negative"] == 0.0 and result["balanced_accuracy"] == pytest.approx(2 / 3)


def test_regression_metrics_by_hand_and_against_numpy():
  labels = np.array([0.0, 1.0, 2.0])
  predictions = np.array([1.0, 1.0, 4.0])
  result = metrics.regression_metrics(labels, predictions)
  assert list(result) == ["ccc", "pearson_r", "mae", "rmse"]
  assert result["ccc"] == pytest.approx(6 / 11)  # as in test_ccc_by_hand
  # cov 1, sd(y) sqrt(2/3), sd(ŷ) sqrt(2): r = 1 / sqrt(4/3) = sqrt(3) / 2.
  assert result["pearson_r"] == pytest.approx(np.sqrt(3) / 2)
  assert result["mae"] == pytest.approx((1 + 0 + 2) / 3)
  assert result["rmse"] == pytest.approx(np.sqrt((1 + 0 + 4) / 3))
  rng = np.random.default_rng(1)
  labels, predictions = rng.normal(size=50), rng.normal(size=50)
  assert metrics.regression_metrics(labels, predictions)["pearson_r"] == pytest.approx(
      np.corrcoef(labels, predictions)[0, 1])


def test_pearson_r_of_a_constant_prediction_is_zero():
  result = metrics.regression_metrics([0.0, 1.0, 2.0], [1.0, 1.0, 1.0])
  assert result["pearson_r"] == 0.0 and result["ccc"] == 0.0
  assert result["mae"] == pytest.approx(2 / 3)


def test_sentiment_metrics_by_hand():
  labels = np.array([-2.6, -0.4, 0.0, 0.0, 1.2, 3.0, 2.4])
  predictions = np.array([-3.7, 0.3, -0.2, 0.0, 0.6, 2.5, 1.4])
  result = metrics.sentiment_metrics(labels, predictions)
  # Classes (clip, round half to even): labels -3 -0 0 0 1 3 2; predictions -3 0 -0 0 1 2 1.
  assert result["acc7"] == pytest.approx(5 / 7)
  # Has-0 (>= 0 positive): truth 0 0 1 1 1 1 1, answer 0 1 0 1 1 1 1: 5 of 7 right.
  # Positive F1: tp 4, fp 1, fn 1 -> 8/10 (5 true); negative: tp 1, 2 errors -> 2/4 (2 true).
  assert result["acc2_has0"] == pytest.approx(5 / 7)
  assert result["f1_has0"] == pytest.approx((0.8 * 5 + 0.5 * 2) / 7)
  # Non-0 (zeros left out, > 0 positive): truth 0 0 1 1 1, answer 0 1 1 1 1: 4 of 5.
  # Positive F1: tp 3, fp 1 -> 6/7 (3 true); negative: tp 1, fn 1 -> 2/3 (2 true).
  assert result["acc2_non0"] == pytest.approx(4 / 5)
  assert result["f1_non0"] == pytest.approx((6 / 7 * 3 + 2 / 3 * 2) / 5)


@pytest.mark.parametrize("function", [metrics.classification_metrics,
                                      metrics.regression_metrics, metrics.sentiment_metrics])
def test_flat_metrics_reject_bad_input(function):
  with pytest.raises(ValueError, match="flat arrays of one length"):
    function(np.zeros(3), np.zeros(4))
  with pytest.raises(ValueError, match="flat arrays"):
    function(np.zeros((2, 2)), np.zeros((2, 2)))
  with pytest.raises(ValueError, match="No segments"):
    function([], [])
  with pytest.raises(ValueError, match="1 NaN or infinite"):
    function([0.0, 1.0], [0.3, np.nan])


def test_sentiment_metrics_need_a_nonzero_label():
  with pytest.raises(ValueError, match="Every label is 0"):
    metrics.sentiment_metrics([0.0, 0.0], [0.1, -0.1])
