"""Scoring a split with a trained stage: per-segment predictions, metrics, degeneracy."""

import dataclasses

import numpy as np

from stew_tf import metrics

# A classifier answering one class for at least this share of the test segments, or a regressor
# whose outputs' spread is below this share of the labels', has learnt (nearly) nothing.
DEGENERATE_CLASS_SHARE = 0.99
DEGENERATE_SPREAD_RATIO = 1e-3


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


def split_metrics(task, predictions, sentiment=False):
  """The metrics of results.json for one split (`sentiment`: add CMU-MOSI's score metrics)."""
  if task == "classification":
    return metrics.classification_metrics(predictions.label, predictions.score)
  values = metrics.regression_metrics(predictions.label, predictions.score)
  if sentiment:
    values.update(metrics.sentiment_metrics(predictions.label, predictions.score))
  return values


def degeneracy(task, predictions):
  """None, or a dict saying how the model's answers are (nearly) constant."""
  if task == "classification":
    positive = float(np.mean(predictions.score >= 0.5))
    share = max(positive, 1.0 - positive)
    if share >= DEGENERATE_CLASS_SHARE:
      answer = "positive" if positive >= 0.5 else "negative"
      return {"kind": "one_class", "answer": answer, "share": share,
              "text": f"answers '{answer}' for {100 * share:.1f} % of the test segments"}
    return None
  spread = float(np.std(predictions.score))
  label_spread = float(np.std(predictions.label)) or 1.0
  if spread < DEGENERATE_SPREAD_RATIO * label_spread:
    return {"kind": "constant", "std": spread, "label_std": label_spread,
            "text": f"outputs have std {spread:.2e}, against {label_spread:.3f} for the labels"}
  return None
