"""Evaluation metrics of the paper (Sec. IV): binary accuracy, weighted F1 (eq. 11), CCC (eq. 12).

All take NumPy-convertible arrays of one common shape (e.g. [batch, time]) and use only the
entries where `mask` is True, so that padded steps may hold anything. They compute in float64
and return Python floats.
"""

import numpy as np


def _valid_entries(labels, values, mask):
  """The entries of `labels` and `values` where `mask` is True, as float64 vectors."""
  labels, values, mask = np.asarray(labels), np.asarray(values), np.asarray(mask)
  if not labels.shape == values.shape == mask.shape:
    raise ValueError(f"labels, scores/predictions and mask must have one shape; got "
                     f"{labels.shape}, {values.shape} and {mask.shape}.")
  mask = mask.astype(bool)
  if not mask.any():
    raise ValueError("The mask selects no entries: the metric is undefined.")
  return labels[mask].astype(np.float64), values[mask].astype(np.float64)


def _binary_labels_and_predictions(labels, scores, mask, threshold):
  labels, scores = _valid_entries(labels, scores, mask)
  if not np.isin(labels, (0.0, 1.0)).all():
    raise ValueError("Binary labels must be 0 or 1 at every valid entry.")
  return labels == 1.0, scores >= threshold


def binary_accuracy(labels, scores, mask, threshold=0.5):
  """Fraction of valid entries whose predicted class equals the label.

  Args:
    labels: Labels in {0, 1}.
    scores: Scores, e.g. probabilities; a score >= `threshold` predicts the positive class.
    mask: True on the entries to evaluate.
    threshold: Decision threshold on `scores`.

  Returns:
    The accuracy, in [0, 1].

  Raises:
    ValueError: The shapes differ, the mask selects nothing, or a valid label is not 0 or 1.
  """
  positive, predicted_positive = _binary_labels_and_predictions(labels, scores, mask, threshold)
  return float(np.mean(positive == predicted_positive))


def weighted_f1(labels, scores, mask, threshold=0.5):
  """Eq. 11: the F1 of each class weighted by its number of true instances.

  F1 = 2 TP / (2 TP + FP + FN), which equals the harmonic mean of precision and recall and
  is 0 for a class whose precision and recall are both 0 (as scikit-learn's
  `f1_score(average="weighted", zero_division=0)`).

  Args:
    labels: Labels in {0, 1}.
    scores: Scores, e.g. probabilities; a score >= `threshold` predicts the positive class.
    mask: True on the entries to evaluate.
    threshold: Decision threshold on `scores`.

  Returns:
    The weighted F1, in [0, 1].

  Raises:
    ValueError: The shapes differ, the mask selects nothing, or a valid label is not 0 or 1.
  """
  positive, predicted_positive = _binary_labels_and_predictions(labels, scores, mask, threshold)
  weighted_sum = 0.0
  for is_class, predicted_class in ((positive, predicted_positive),
                                    (~positive, ~predicted_positive)):
    true_positives = np.sum(is_class & predicted_class)
    errors = np.sum(is_class != predicted_class)  # false positives + false negatives
    denominator = 2 * true_positives + errors
    f1 = 2 * true_positives / denominator if denominator else 0.0
    weighted_sum += f1 * np.sum(is_class)
  return float(weighted_sum / positive.size)


def ccc(labels, predictions, mask):
  """Eq. 12: concordance correlation coefficient, with population (ddof=0) moments.

  CCC = 2 cov(y, ŷ) / (var(y) + var(ŷ) + (mean(y) - mean(ŷ))²). The denominator is 0 only
  when both are one and the same constant; that perfect agreement gives 1.

  Args:
    labels: True values.
    predictions: Predicted values.
    mask: True on the entries to evaluate.

  Returns:
    The CCC, in [-1, 1].

  Raises:
    ValueError: The shapes differ or the mask selects nothing.
  """
  labels, predictions = _valid_entries(labels, predictions, mask)
  label_mean, prediction_mean = labels.mean(), predictions.mean()
  covariance = np.mean((labels - label_mean) * (predictions - prediction_mean))
  denominator = labels.var() + predictions.var() + (label_mean - prediction_mean) ** 2
  if denominator == 0.0:
    return 1.0
  return float(2.0 * covariance / denominator)
