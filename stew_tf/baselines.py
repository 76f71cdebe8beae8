"""Baselines computed from a dataset's splits, scored with the metrics the models get.

- trivial: a constant (the task's `trivial_baseline`). majority_class: the majority class of the
  train split. lowest_mae_constant: the best, by validation MAE, of the train mean, the train
  median and 0 (CCC cannot choose: it is 0 for every constant).
- linear probe: logistic or ridge regression (the task's `probe`) on single z-scored segments
  (train moments), fitted on train with NumPy; its L2 strength is chosen by the task's monitored
  metric on the validation split (ties go to the stronger regularisation).

Neither sees the sequence, so they say what a segment alone carries; a sequence model that does
not beat them has learnt nothing from the context.
"""

import dataclasses

import numpy as np

from stew_tf import evaluation
from stew_tf import splits
from stew_tf import tasks

# L2 strength on the mean loss: (1/N) sum loss + (lambda / 2) |w|^2; the bias is not penalised.
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
_NEWTON_STEPS = 50


@dataclasses.dataclass(frozen=True)
class Segments:
  """One split as flat arrays of real segments."""
  features: np.ndarray  # float64 [segments, dim]
  labels: np.ndarray  # float64 [segments]
  clips: np.ndarray  # int32 [segments]: clip index in the split's order


@dataclasses.dataclass(frozen=True)
class Baseline:
  """A baseline's description and metrics; `test_run`: (clips, labels, scores) of the test split."""
  kind: str  # "trivial" or "linear_probe"
  task: str  # a row of stew_tf.tasks
  description: str
  validation: dict
  test: dict
  test_run: tuple


def _sigmoid(logits):
  return 0.5 * (1.0 + np.tanh(0.5 * logits))  # no overflow for large |logits|


def fit_logistic(features, labels, l2):
  """(weights, bias) of L2-regularised logistic regression, by Newton's method."""
  count, dim = features.shape
  design = np.hstack([features, np.ones((count, 1))])
  penalty = np.diag([l2] * dim + [0.0])
  theta = np.zeros(dim + 1)
  for _ in range(_NEWTON_STEPS):
    probabilities = _sigmoid(design @ theta)
    gradient = design.T @ (probabilities - labels) / count + penalty @ theta
    weights = probabilities * (1.0 - probabilities)
    hessian = (design * weights[:, None]).T @ design / count + penalty
    # A tiny ridge keeps the bias row solvable when every probability saturates.
    step = np.linalg.solve(hessian + 1e-12 * np.eye(dim + 1), gradient)
    theta -= step
    if np.max(np.abs(step)) < 1e-10:
      break
  return theta[:-1], theta[-1]


def fit_ridge(features, labels, l2):
  """(weights, bias) of ridge regression with an unpenalised bias, in closed form."""
  count, dim = features.shape
  feature_mean, label_mean = features.mean(axis=0), labels.mean()
  centred = features - feature_mean
  gram = centred.T @ centred / count + l2 * np.eye(dim)
  weights = np.linalg.solve(gram, centred.T @ (labels - label_mean) / count)
  return weights, label_mean - feature_mean @ weights


def _standardise(train, *others):
  """Each split's features z-scored with the train moments (a constant feature stays 0)."""
  mean, std = train.features.mean(axis=0), train.features.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  return [(split.features - mean) / std for split in (train, *others)]


def _majority_class(train, validation):
  """The train split's majority class (a tie answers negative)."""
  del validation
  positive = bool(np.mean(train.labels) > 0.5)
  name = "positive" if positive else "negative"
  return float(positive), f"always \"{name}\" (the train split's majority)"


def _lowest_mae_constant(train, validation):
  """The train mean, the train median or 0, whichever has the lowest validation MAE."""
  candidates = {"the train mean": float(np.mean(train.labels)),
                "the train median": float(np.median(train.labels)), "0": 0.0}
  choice = min(candidates,
               key=lambda k: np.mean(np.abs(validation.labels - candidates[k])))
  constant = candidates[choice]
  return constant, f"always {constant:.3g} ({choice}; lowest validation MAE)"


# Each task's trivial constant: f(train, validation) -> (constant, description).
TRIVIAL = {"majority_class": _majority_class, "lowest_mae_constant": _lowest_mae_constant}
# Each task's linear probe: (fit(features, labels, l2) -> (weights, bias), link of its output).
PROBES = {"logistic": (fit_logistic, _sigmoid), "ridge": (fit_ridge, None)}


def trivial(task, train, validation, test, sentiment_score=False):
  """The constant baseline (see the module docstring)."""
  constant, description = TRIVIAL[tasks.get(task).trivial_baseline](train, validation)
  scores = [np.full(split.labels.shape, constant) for split in (validation, test)]
  return _baseline("trivial", description, task, (validation, test), scores, sentiment_score)


def linear_probe(task, train, validation, test, sentiment_score=False):
  """The linear probe on single segments (see the module docstring)."""
  train_x, validation_x, test_x = _standardise(train, validation, test)
  row = tasks.get(task)
  fit, link = PROBES[row.probe]
  best = None
  for l2 in sorted(L2_GRID, reverse=True):  # strongest first: it keeps ties
    weights, bias = fit(train_x, train.labels, l2)
    outputs = [x @ weights + bias for x in (validation_x, test_x)]
    if link is not None:
      outputs = [link(output) for output in outputs]
    score = evaluation.metrics_of(task, validation.labels, outputs[0])[row.monitor]
    if best is None or row.better(score, best[0]):
      best = score, l2, outputs
  _, l2, scores = best
  description = (f"{row.probe} regression on single z-scored segments, L2 {l2:g} "
                 f"(best validation {row.monitor} of {len(L2_GRID)})")
  return _baseline("linear_probe", description, task, (validation, test), scores,
                   sentiment_score)


def _baseline(kind, description, task, evaluated, scores, sentiment_score):
  """A Baseline from its (validation, test) Segments and their scores."""
  (validation, test), (validation_scores, test_scores) = evaluated, scores
  return Baseline(
      kind, task, description,
      evaluation.metrics_of(task, validation.labels, validation_scores, sentiment_score),
      evaluation.metrics_of(task, test.labels, test_scores, sentiment_score),
      (test.clips, test.labels, test_scores))


def compute(task, train, validation, test, sentiment_score=False):
  """[trivial, linear probe] of one modality's splits."""
  return [trivial(task, train, validation, test, sentiment_score),
          linear_probe(task, train, validation, test, sentiment_score)]


def split_segments(split, modality):
  """A stew_tf.data.Split's examples as Segments of one modality (clips in the split's order)."""
  features, labels, clips = [], [], []
  for index, example in enumerate(split.dataset.as_numpy_iterator()):
    features.append(example["features"][modality])
    labels.append(example["labels"])
    clips.append(np.full(len(example["labels"]), index, np.int32))
  return Segments(np.concatenate(features).astype(np.float64),
                  np.concatenate(labels).astype(np.float64), np.concatenate(clips))


def dataset_baselines(dataset, label, modalities, data_dir=None, manual_dir=None,
                      download=False):
  """{modality: [trivial, linear probe]} computed from the dataset's train/validation/test.

  Raises:
    stew_tf.data.DataError: The dataset cannot be found or prepared.
  """
  from stew_tf import data  # pylint: disable=g-import-not-at-top  # TensorFlow only when needed
  task = data.get_spec(dataset, manual_dir).task_of(label)
  builder = data.make_builder(dataset, label, data_dir, manual_dir, download)
  sentiment_score = (dataset, label) == ("mosi", "sentiment_score")
  results = {}
  for modality in modalities:
    segments = [split_segments(data.load_split(builder, name, [modality], label, 32), modality)
                for name in (splits.TRAIN, *splits.EVALUATED)]
    results[modality] = compute(task, *segments, sentiment_score=sentiment_score)
  return results
