"""Scoring a split with a trained stage: per-segment predictions, metrics, degeneracy."""

import dataclasses

import numpy as np

from stew_tf import metrics
from stew_tf import splits
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


def strong_model_metrics(results):
  """{strong modality: {split: metrics}} of results.json's teachers: its "strong_model" holds
  one teacher's metrics, or {strong modality: metrics} for several, or None."""
  found = results.get("strong_model")
  if not found:
    return {}
  return {results.get("strong"): found} if splits.TEST in found else dict(found)


def _metric_text(values):
  parts = []
  for name, value in values.items():
    if isinstance(value, float):
      parts.append(f"{name} {value:.4f}")
    elif name == "confusion":
      (tn, fp), (fn, tp) = value
      parts.append(f"confusion tn/fp/fn/tp {tn}/{fp}/{fn}/{tp}")
  return "  ".join(parts)


def summary_table(results):
  """A plain-text table of the final metrics."""
  rows = []
  models = [("strong_model", modality, found)
            for modality, found in strong_model_metrics(results).items()]
  models.append(("weak_model", results["weak"], results["weak_model"]))
  for model, modality, found in models:
    for split in splits.EVALUATED:
      if found[split] is not None:
        rows.append(f"  {model:<12} {modality:<17} {split:<10} {_metric_text(found[split])}")
  selected = results["selected_on"]
  note = ("  SELECTED ON TEST: optimistic, not a result" if selected == "test" else
          f"  epochs selected on: {selected}")
  header = (f"Results: {results['method']} on {results['dataset']} ({results['label']}), "
            f"seed {results['seed']}, epochs {results['epochs']}, "
            f"{results['wall_seconds']:.0f}s")
  return "\n".join([header, note, *rows])
