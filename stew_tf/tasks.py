"""What each task is: the one table that the models, the train step, the selection of the epoch,
the metrics, the degenerate-model check and the baselines read.

The baselines' constants and probes are named here and looked up in stew_tf.baselines (which
reads this table).
"""

import dataclasses
from typing import Callable

import numpy as np

from stew_tf import losses
from stew_tf import metrics

# A classifier answering one class for at least this share of the test segments, or a regressor
# whose outputs' spread is below this share of the labels', has learnt (nearly) nothing.
DEGENERATE_CLASS_SHARE = 0.99
DEGENERATE_SPREAD_RATIO = 1e-3


def one_class_answer(labels, scores):
  """None, or a dict saying that the classifier answers one class for (nearly) every segment."""
  del labels  # the answers alone decide
  positive = float(np.mean(scores >= 0.5))
  share = max(positive, 1.0 - positive)
  if share >= DEGENERATE_CLASS_SHARE:
    answer = "positive" if positive >= 0.5 else "negative"
    return {"kind": "one_class", "answer": answer, "share": share,
            "text": f"answers '{answer}' for {100 * share:.1f} % of the test segments"}
  return None


def constant_output(labels, scores):
  """None, or a dict saying that the regressor's outputs have (near) zero spread."""
  spread = float(np.std(scores))
  label_spread = float(np.std(labels)) or 1.0
  if spread < DEGENERATE_SPREAD_RATIO * label_spread:
    return {"kind": "constant", "std": spread, "label_std": label_spread,
            "text": f"outputs have std {spread:.2e}, against {label_spread:.3f} for the labels"}
  return None


@dataclasses.dataclass(frozen=True)
class Task:
  """One kind of target.

  Attributes:
    name: the task of a dataset's label (data.DatasetSpec), in the config and results.json.
    description: one line for the docs.
    prediction_loss: f(labels, scores, mask) -> the prediction term, a float32 scalar.
    activation: the Keras activation of the classifier's one output unit.
    activation_range: (low, high) of that activation's outputs.
    default_label_range: None: the labels are the classes 0 and 1 and the scores their
      probabilities (a label range does not apply); else the labels' (low, high) when the
      dataset gives none. The classifier maps `activation_range` onto the labels' range.
    monitor: the metric of the selection split that picks the epoch (and the dropout, and the
      linear probe's L2); the primary metric of the reports.
    maximise: whether a higher `monitor` is better.
    metrics: f(labels, scores) -> the metric dict of a split in results.json (flat arrays).
    degeneracy: f(labels, scores) -> None, or a dict saying how the answers are (nearly) constant.
    trivial_baseline: the stew_tf.baselines.TRIVIAL constant of the trivial baseline.
    probe: the stew_tf.baselines.PROBES model of the linear probe.
  """
  name: str
  description: str
  prediction_loss: Callable
  activation: str
  activation_range: tuple
  default_label_range: tuple | None
  monitor: str
  maximise: bool
  metrics: Callable
  degeneracy: Callable
  trivial_baseline: str
  probe: str

  @property
  def binary(self):
    """The labels are the classes 0 and 1, and the scores their probabilities."""
    return self.default_label_range is None

  def better(self, value, best):
    """Whether `value` of the monitored metric beats `best` (ties do not)."""
    return value > best if self.maximise else value < best

  def label_scaling(self, label_range):
    """(scale, offset) that maps the activation's outputs linearly onto `label_range` (low,
    high); None when nothing is mapped: no range given, labels that are classes, or a range that
    is the activation's own."""
    if self.binary or label_range is None:
      return None
    if tuple(label_range) == self.activation_range:
      return None
    (start, end), (low, high) = self.activation_range, label_range
    # For tanh's (-1, 1) these are exactly (high - low) / 2 and (high + low) / 2.
    return (high - low) / (end - start), (end * low - start * high) / (end - start)

  def random_labels(self, rng, size):
    """Labels of this task drawn at random (stew_tf.bench): the classes 0 and 1 with equal
    chance, or uniform in the default label range."""
    if self.binary:
      return rng.integers(0, 2, size=size)
    return rng.uniform(*self.default_label_range, size=size)


TASKS = {t.name: t for t in (
    Task("classification", "binary labels 0 / 1; the score is the probability of 1",
         prediction_loss=losses.masked_binary_crossentropy, activation="sigmoid",
         activation_range=(0.0, 1.0), default_label_range=None, monitor="accuracy",
         maximise=True, metrics=metrics.classification_metrics, degeneracy=one_class_answer,
         trivial_baseline="majority_class", probe="logistic"),
    Task("regression", "continuous labels in a range; the score is the predicted value",
         prediction_loss=losses.masked_mse, activation="tanh", activation_range=(-1.0, 1.0),
         default_label_range=(-1.0, 1.0), monitor="ccc", maximise=True,
         metrics=metrics.regression_metrics, degeneracy=constant_output,
         trivial_baseline="lowest_mae_constant", probe="ridge"),
)}


def get(name):
  return TASKS[name]
