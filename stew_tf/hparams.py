"""A run's settings and final metrics for TensorBoard's HParams dashboard.

`write` puts one session into `<workdir>/tensorboard/hparams/`: the leaves of the config tree
without `runtime` (dotted names such as `objective.alignment.alpha`) as the session's hparams,
and the weak model's final `validation/<metric>` and `test/<metric>` (and the strong model's,
as `strong/<split>/<metric>`) from results.json as scalars. `tensorboard --logdir runs/` then
compares every run below runs/ in the HParams dashboard.

No `hparams_config` is written: TensorBoard uses the first one it finds for a whole logdir, so
one run's would hide the settings of the others; without one it collects the settings and metric
names of every session.
"""

import numbers
import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from stew_tf import evaluation
from stew_tf import records
from stew_tf import splits

FOLDER = os.path.join("tensorboard", "hparams")
NONE = "none"  # HParams values are bool, number or string: a branch or setting left out


def settings(config):
  """{dotted name: bool, number or string} of every leaf of the config tree but runtime."""
  tree = {key: value for key, value in config.as_dict().items() if key != "runtime"}
  return {name: NONE if value is None else value
          for name, value in records.flatten(tree).items()}


def final_metrics(results):
  """{"<split>/<metric>" (weak model), "strong/<split>/<metric>" (one teacher) or
  "strong/<modality>/<split>/<metric>" (several): value} of results.json's number metrics (the
  confusion matrix is left out; a split a run did not have is absent)."""
  strong = evaluation.strong_model_metrics(results)
  models = [("", results.get("weak_model"))] + [
      (f"strong/{modality}/" if len(strong) > 1 else "strong/", found)
      for modality, found in strong.items()]
  found = {}
  for prefix, model in models:
    for split in splits.EVALUATED:
      split_metrics = (model or {}).get(split) or {}
      found.update({f"{prefix}{split}/{name}": value for name, value in split_metrics.items()
                    if isinstance(value, numbers.Real)})
  return found


def write(workdir, config, results):
  """Writes the run's HParams session into <workdir>/tensorboard/hparams/; returns the folder."""
  folder = os.path.join(workdir, FOLDER)
  os.makedirs(folder, exist_ok=True)
  # A run that is started again rewrites its results: keep one session per run, not one per start.
  for name in os.listdir(folder):
    if name.startswith("events.out.tfevents."):
      os.remove(os.path.join(folder, name))
  writer = tf.summary.create_file_writer(folder)
  with writer.as_default():
    hp.hparams(settings(config))
    for tag, value in final_metrics(results).items():
      tf.summary.scalar(tag, value, step=0)
  writer.close()
  return folder
