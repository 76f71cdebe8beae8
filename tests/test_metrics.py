"""Tests of the evaluation metrics against values worked out by hand."""

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
