"""Evaluation metrics: the paper's (Sec. IV) and the ones an honest comparison needs.

binary_accuracy, weighted_f1 (eq. 11) and ccc (eq. 12) take NumPy-convertible arrays of one
common shape (e.g. [batch, time]) and use only the entries where `mask` is True, so that padded
steps may hold anything. classification_metrics, regression_metrics and sentiment_metrics take
flat arrays of real segments and return dicts of JSON types, as written into results.json. All
compute in float64 and return Python floats.
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


# ---------------------------------------------------------------------------------------------
# Full metric sets on flat arrays of real segments, as written into results.json (JSON types).


def _flat_pair(labels, values, what):
  """`labels` and `values` as finite float64 vectors of one length, or ValueError."""
  labels = np.asarray(labels, dtype=np.float64)
  values = np.asarray(values, dtype=np.float64)
  if labels.ndim != 1 or labels.shape != values.shape:
    raise ValueError(f"labels and {what} must be flat arrays of one length; got shapes "
                     f"{labels.shape} and {values.shape}.")
  if labels.size == 0:
    raise ValueError("No segments: the metrics are undefined.")
  for name, array in (("labels", labels), (what, values)):
    if not np.isfinite(array).all():
      raise ValueError(f"{name} hold {np.sum(~np.isfinite(array))} NaN or infinite values.")
  return labels, values


def _ratio(numerator, denominator):
  """numerator / denominator, or 0.0 when the denominator is 0 (scikit-learn's zero_division=0)."""
  return float(numerator / denominator) if denominator else 0.0


def classification_metrics(labels, scores, threshold=0.5):
  """Every binary-classification metric of the flat arrays of real segments.

  Precision of a class that is never predicted, and recall of a class that never occurs, are 0.
  Balanced accuracy is the mean recall over the classes that occur in `labels` (as
  scikit-learn's `balanced_accuracy_score`).

  Args:
    labels: Labels in {0, 1}, shape [segments].
    scores: Scores, shape [segments]; a score >= `threshold` answers positive.
    threshold: Decision threshold on `scores`.

  Returns:
    A dict, in this order: accuracy, f1_weighted, balanced_accuracy, precision_negative,
    precision_positive, recall_negative, recall_positive, positive_rate (fraction of segments
    answered positive), confusion ([[tn, fp], [fn, tp]], ints). Python floats and ints.

  Raises:
    ValueError: The arrays are not flat, differ in length, are empty, hold NaN/Inf, or a label
      is not 0 or 1.
  """
  labels, scores = _flat_pair(labels, scores, "scores")
  everything = np.ones(labels.shape, bool)
  positive, answered = _binary_labels_and_predictions(labels, scores, everything, threshold)
  tp, fp = int(np.sum(positive & answered)), int(np.sum(~positive & answered))
  fn, tn = int(np.sum(positive & ~answered)), int(np.sum(~positive & ~answered))
  negatives, positives = tn + fp, tp + fn
  recall_negative, recall_positive = _ratio(tn, negatives), _ratio(tp, positives)
  present = [recall for recall, count in ((recall_negative, negatives),
                                          (recall_positive, positives)) if count]
  return {
      "accuracy": (tp + tn) / labels.size,
      "f1_weighted": weighted_f1(labels, scores, everything, threshold),
      "balanced_accuracy": float(np.mean(present)),
      "precision_negative": _ratio(tn, tn + fn),
      "precision_positive": _ratio(tp, tp + fp),
      "recall_negative": recall_negative,
      "recall_positive": recall_positive,
      "positive_rate": (tp + fp) / labels.size,
      "confusion": [[tn, fp], [fn, tp]],
  }


def _pearson_r(labels, predictions):
  """Pearson correlation of two flat float64 arrays; 0.0 when either is constant (no linear
  relation can be measured, and a constant prediction must not score NaN)."""
  label_deviations = labels - labels.mean()
  prediction_deviations = predictions - predictions.mean()
  denominator = np.sqrt(np.sum(label_deviations ** 2) * np.sum(prediction_deviations ** 2))
  if denominator == 0.0:
    return 0.0
  return float(np.sum(label_deviations * prediction_deviations) / denominator)


def regression_metrics(labels, predictions):
  """CCC (eq. 12), Pearson r, mean absolute error and root mean squared error.

  Args:
    labels: True values, shape [segments].
    predictions: Predicted values, shape [segments].

  Returns:
    A dict, in this order: ccc, pearson_r (0.0 if labels or predictions are constant), mae, rmse.

  Raises:
    ValueError: The arrays are not flat, differ in length, are empty or hold NaN/Inf.
  """
  labels, predictions = _flat_pair(labels, predictions, "predictions")
  errors = predictions - labels
  return {
      "ccc": ccc(labels, predictions, np.ones(labels.shape, bool)),
      "pearson_r": _pearson_r(labels, predictions),
      "mae": float(np.mean(np.abs(errors))),
      "rmse": float(np.sqrt(np.mean(errors ** 2))),
  }


def _binary_accuracy_and_f1(positive, answered):
  """Accuracy and weighted F1 of boolean truths and answers."""
  labels = positive.astype(np.float64)
  scores = answered.astype(np.float64)
  everything = np.ones(positive.shape, bool)
  return (binary_accuracy(labels, scores, everything),
          weighted_f1(labels, scores, everything))


def sentiment_metrics(labels, predictions):
  """CMU-MOSI's usual metrics of a continuous sentiment score in [-3, 3], as MMSA computes them.

  acc7: the score clipped to [-3, 3] and rounded (half to even, as numpy) is the class.
  acc2_has0 / f1_has0: negative < 0 <= positive, accuracy and weighted F1.
  acc2_non0 / f1_non0: segments labelled exactly 0 left out; positive > 0 for truth and answer.

  Args:
    labels: True scores, shape [segments].
    predictions: Predicted scores, shape [segments].

  Returns:
    A dict: acc7, acc2_has0, f1_has0, acc2_non0, f1_non0 (fractions).

  Raises:
    ValueError: Bad arrays (see regression_metrics), or every label is 0 (non-0 undefined).
  """
  labels, predictions = _flat_pair(labels, predictions, "predictions")
  classes = [np.round(np.clip(x, -3.0, 3.0)) for x in (labels, predictions)]
  acc2_has0, f1_has0 = _binary_accuracy_and_f1(labels >= 0, predictions >= 0)
  nonzero = labels != 0
  if not nonzero.any():
    raise ValueError("Every label is 0: acc2_non0 and f1_non0 are undefined.")
  acc2_non0, f1_non0 = _binary_accuracy_and_f1(labels[nonzero] > 0, predictions[nonzero] > 0)
  return {"acc7": float(np.mean(classes[0] == classes[1])),
          "acc2_has0": acc2_has0, "f1_has0": f1_has0,
          "acc2_non0": acc2_non0, "f1_non0": f1_non0}
