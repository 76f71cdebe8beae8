"""A stage's state on disk: checkpoints, resume, early stopping and the done marker.

`last/` holds, after every finished epoch, everything that decides the rest of training: the
weights, the optimizer, the epoch, the early-stopping state and the state of every dropout
random generator (Keras does not put those in a model's checkpoint). Together with batch orders
that depend only on (seed, epoch), a run resumed from `last/` continues exactly as an
uninterrupted one would. `best/` holds the weights of the selected epoch; `done.json` marks a
finished stage.
"""

import json
import math
import os

import tensorflow as tf

from stew_tf import workdir


def random_generator_states(models):
  """The state variables of the models' seed generators (dropout), in the models' structural
  order (their names carry process-wide counters, so they cannot be the key)."""
  return [variable for model in models for variable in model.non_trainable_variables
          if "seed_generator_state" in variable.path]


class StageState:
  """Checkpoints of one stage under `directory` (e.g. <workdir>/checkpoints/stage2)."""

  def __init__(self, directory, models, optimizer, strategy=None):
    self.directory = directory
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
      self.best_value = tf.Variable(-math.inf, dtype=tf.float64, trainable=False)
      self.epochs_without_improvement = tf.Variable(0, dtype=tf.int64, trainable=False)
    weights = {m.name: m for m in models}
    self.last = tf.train.CheckpointManager(
        tf.train.Checkpoint(optimizer=optimizer, epoch=self.epoch, best_value=self.best_value,
                            epochs_without_improvement=self.epochs_without_improvement,
                            random_generators=random_generator_states(models), **weights),
        os.path.join(directory, "last"), max_to_keep=2)
    self.best = tf.train.CheckpointManager(tf.train.Checkpoint(**weights),
                                           os.path.join(directory, "best"), max_to_keep=1)

  @property
  def done_path(self):
    return os.path.join(self.directory, "done.json")

  @property
  def finished_epochs(self):
    return int(self.epoch.numpy())

  def done(self):
    """The done marker's contents, or None while the stage is unfinished."""
    if not os.path.exists(self.done_path):
      return None
    with open(self.done_path) as f:
      return json.load(f)

  def resume(self):
    """Restores the last finished epoch, if any; returns its number (0: a fresh start)."""
    if self.last.latest_checkpoint:
      self.last.checkpoint.restore(self.last.latest_checkpoint).assert_existing_objects_matched()
    return self.finished_epochs

  def wants_more(self, epochs, patience):
    """Whether another epoch should run (budget left and patience not exhausted)."""
    if self.finished_epochs >= epochs:
      return False
    return patience is None or int(self.epochs_without_improvement.numpy()) < patience

  def end_epoch(self, epoch, value):
    """Records a finished epoch whose selection metric is `value` (None: keep every epoch as
    the best, i.e. report the last); returns whether it is the best so far."""
    improved = value is None or value > float(self.best_value.numpy())
    if improved:
      if value is not None:
        self.best_value.assign(value)
      self.epochs_without_improvement.assign(0)
      self.best.save(checkpoint_number=epoch)
    else:
      self.epochs_without_improvement.assign_add(1)
    self.epoch.assign(epoch)
    # Saved last: if the process dies before this, the epoch is simply run again.
    self.last.save(checkpoint_number=epoch)
    return improved

  def kept_message(self, epoch):
    """What survives a failure during `epoch` (for error messages)."""
    if epoch <= 1 or not self.last.latest_checkpoint:
      return "no epoch of this stage had finished, so nothing of it is kept"
    return f"the last good checkpoint (epoch {epoch - 1}) is kept in {self.last.directory}"

  def finish(self):
    """Loads the best weights and writes the done marker; returns the marker's contents."""
    if self.best.latest_checkpoint is None:
      raise RuntimeError(f"{self.directory}: no epoch finished; nothing to restore")
    self.best.checkpoint.restore(self.best.latest_checkpoint).assert_existing_objects_matched()
    best_value = float(self.best_value.numpy())
    done = {"epochs": self.finished_epochs,
            "best_epoch": int(self.best.latest_checkpoint.rsplit("-", 1)[1]),
            "best_value": best_value if math.isfinite(best_value) else None}
    workdir.write_json(self.done_path, done)
    return done

  def load_best(self):
    """Loads the best weights of a finished stage."""
    self.best.checkpoint.restore(self.best.latest_checkpoint).expect_partial()
