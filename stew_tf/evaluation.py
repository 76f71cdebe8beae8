"""Scoring a split with a trained stage: per-segment predictions, metrics, degeneracy."""

import dataclasses

import numpy as np

from stew_tf import metrics
from stew_tf import tasks


@dataclasses.dataclass
class Predictions:
  """The real segments of one split, flat: clip index (in the split's order), label, score."""
  clip: np.ndarray  # int32
  label: np.ndarray  # float32
  score: np.ndarray  # float32

  def arrays(self, prefix):
    """For predictions.npz: {prefix}_clip, {prefix}_label, {prefix}_score."""
    return {f"{prefix}_{name}": getattr(self, name) for name in ("clip", "label", "score")}


def predict_split(predict_step, split):
  """Scores every real segment of `split` (batches in the split's fixed order)."""
  clips, labels, scores = [], [], []
  offset = 0
  for batch in split.batches():
    batch_scores = predict_step(batch).numpy()
    mask = batch["mask"].numpy()
    index = np.broadcast_to(np.arange(offset, offset + len(mask))[:, None], mask.shape)
    offset += len(mask)
    clips.append(index[mask])
    labels.append(batch["labels"].numpy()[mask])
    scores.append(batch_scores[mask])
  return Predictions(np.concatenate(clips).astype(np.int32),
                     np.concatenate(labels).astype(np.float32),
                     np.concatenate(scores).astype(np.float32))


def metrics_of(task, labels, scores, sentiment=False):
  """The metrics of results.json of flat labels and scores, by the task's table row
  (`sentiment`: add CMU-MOSI's metrics of its continuous score)."""
  values = tasks.get(task).metrics(labels, scores)
  if sentiment:
    values.update(metrics.sentiment_metrics(labels, scores))
  return values


def split_metrics(task, predictions, sentiment=False):
  """The metrics of results.json for one split (`sentiment`: add CMU-MOSI's score metrics)."""
  return metrics_of(task, predictions.label, predictions.score, sentiment)


def degeneracy(task, predictions):
  """None, or a dict saying how the model's answers are (nearly) constant."""
  return tasks.get(task).degeneracy(predictions.label, predictions.score)
