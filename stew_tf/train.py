"""One custom training loop for both stages, every method and every baseline.

A stage trains an encoder + classifier on one modality. Stage 2 of the transfer methods adds a
frozen teacher (the stage-1 strong encoder) for the DCCA alignment term and a decoder for the MAE
translation term; which terms are on is configuration, not a copy of the loop.
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from stew_tf import data
from stew_tf import losses
from stew_tf import metrics


class TrainingDiverged(RuntimeError):
  """A loss term became NaN or Inf; the message names the stage, step and term."""


class StopRequested(Exception):
  """--stop_after_steps was reached; the last finished epoch is checkpointed."""


@dataclasses.dataclass
class Stage:
  """What one stage trains and which loss terms it uses."""
  name: str  # "stage1" or "stage2": names the checkpoint and TensorBoard folders
  modality: str  # input of the model being trained
  encoder: keras.Model
  classifier: keras.Model
  task: str
  teacher: keras.Model | None = None  # frozen strong encoder (stage 2 of transfer methods)
  strong_modality: str | None = None
  decoder: keras.Model | None = None
  strong_normalizer: keras.layers.Layer | None = None  # gives the decoder's target
  alpha: float = 0.0
  beta: float = 0.0
  dcca_r1: float = 1e-3
  dcca_r2: float = 1e-3

  @property
  def trained_models(self):
    return [m for m in (self.encoder, self.classifier, self.decoder) if m is not None]

  @property
  def monitor(self):
    """The validation metric that early stopping maximises."""
    return "accuracy" if self.task == "classification" else "ccc"


def split_metrics(task, labels, scores):
  """Metrics of flat arrays of real segments (M in results.json)."""
  valid = np.ones_like(labels, dtype=bool)
  if task == "classification":
    return {"accuracy": float(metrics.binary_accuracy(labels, scores, valid)),
            "f1_weighted": float(metrics.weighted_f1(labels, scores, valid))}
  return {"ccc": float(metrics.ccc(labels, scores, valid))}


class StepBudget:
  """Counts training steps across stages for --stop_after_steps."""

  def __init__(self, limit):
    self.limit = limit
    self.steps = 0

  def spend(self):
    self.steps += 1
    if self.limit and self.steps >= self.limit:
      raise StopRequested(f"stopped after {self.steps} training steps (--stop_after_steps); "
                          "rerun the same command to resume from the last finished epoch")


class Trainer:
  """Trains one Stage with early stopping, checkpoints, resume and TensorBoard logging."""

  def __init__(self, stage, modalities, learning_rate, epochs, patience, seed, workdir,
               step_budget=None, log=print, strategy=None, jit_compile=False, optimizer=None):
    self.stage = stage
    self.epochs = epochs
    self.patience = patience
    self.seed = seed
    self.log = log
    self.step_budget = step_budget or StepBudget(0)
    self.checkpoint_dir = os.path.join(workdir, "checkpoints", stage.name)
    self.tensorboard_dir = os.path.join(workdir, "tensorboard", stage.name)
    self.learning_rate = learning_rate
    self.strategy = strategy or tf.distribute.get_strategy()
    if stage.teacher is not None:
      # Frozen before tracing, so the traced step never updates it.
      stage.teacher.trainable = False
    self.variables = [v for m in stage.trained_models for v in m.trainable_variables]
    with self.strategy.scope():
      self.optimizer = optimizer or keras.optimizers.Adam(learning_rate=learning_rate)
      if keras.mixed_precision.global_policy().compute_dtype == "float16":
        # Dynamic loss scaling keeps small float16 gradients from underflowing.
        self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
      self.optimizer.build(self.variables)
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
      self.best_value = tf.Variable(-math.inf, dtype=tf.float64, trainable=False)
      self.epochs_without_improvement = tf.Variable(0, dtype=tf.int64, trainable=False)
    weights = {m.name: m for m in stage.trained_models}
    self.last = tf.train.CheckpointManager(
        tf.train.Checkpoint(optimizer=self.optimizer, epoch=self.epoch,
                            best_value=self.best_value,
                            epochs_without_improvement=self.epochs_without_improvement,
                            **weights),
        os.path.join(self.checkpoint_dir, "last"), max_to_keep=2)
    self.best = tf.train.CheckpointManager(tf.train.Checkpoint(**weights),
                                           os.path.join(self.checkpoint_dir, "best"),
                                           max_to_keep=1)

    # One trace per stage: fixed signatures with dynamic batch and time dimensions. Under a
    # multi-replica strategy the train step takes per-replica batches, whose spec is known once
    # the dataset is distributed (see distribute()).
    signature = data.batch_signature(modalities)
    self._jit_compile = jit_compile
    self.train_step = None
    if self.strategy.num_replicas_in_sync == 1:
      self._trace_train_step(signature)
    self.predict_step = tf.function(self._predict_step, input_signature=[signature])

  def _trace_train_step(self, signature):
    self.train_step = tf.function(self._train_step, input_signature=[signature],
                                  jit_compile=self._jit_compile)

  # --- traced functions -------------------------------------------------------------------
  def _loss_terms(self, batch, training):
    """This replica's share of each loss term; summed over replicas they give the global value.

    Masked means are weighted by this replica's share of the global batch's valid segments,
    and DCCA, a statistic of the whole batch, is computed on latents gathered from all
    replicas, so no term depends on the number of replicas.
    """
    stage = self.stage
    mask = batch["mask"]
    replica = tf.distribute.get_replica_context()
    local_count = tf.reduce_sum(tf.cast(mask, tf.float32))
    share = tf.math.divide_no_nan(
        local_count, replica.all_reduce(tf.distribute.ReduceOp.SUM, local_count))
    latents = stage.encoder([batch["features"][stage.modality], mask], training=training)
    scores = stage.classifier(latents, training=training)
    if stage.task == "classification":
      prediction = losses.masked_binary_crossentropy(batch["labels"], scores, mask)
    else:
      prediction = losses.masked_mse(batch["labels"], scores, mask)
    terms = {"prediction": prediction * share}
    objective = terms["prediction"]  # what this replica differentiates
    if stage.alpha:
      strong = batch["features"][stage.strong_modality]
      strong_latents = stage.teacher([strong, mask], training=False)
      correlation = losses.dcca_correlation(*self._gather(replica, strong_latents, latents, mask),
                                            r1=stage.dcca_r1, r2=stage.dcca_r2)
      terms["dcca"] = -correlation / replica.num_replicas_in_sync
      # Every replica computes the same correlation, but all_gather's gradient hands each replica
      # only the gradient of its own loss with respect to its own slice; so each replica
      # differentiates the full correlation, while the reported term is shared out like the
      # others so that its sum over replicas is the global value.
      objective += stage.alpha * terms["dcca"]
    if stage.decoder is not None:
      target = stage.strong_normalizer(batch["features"][stage.strong_modality])
      reconstruction = stage.decoder([latents, mask], training=training)
      terms["mae"] = losses.masked_mae(target, reconstruction, mask) * share
      objective += stage.beta * terms["mae"]
    terms["total"] = (terms["prediction"] + stage.alpha * terms.get("dcca", 0.0)
                      + stage.beta * terms.get("mae", 0.0))
    return terms, objective

  @staticmethod
  def _gather(replica, strong_latents, latents, mask):
    """The whole global batch's latents and mask, on every replica."""
    if replica.num_replicas_in_sync == 1:
      return strong_latents, latents, mask
    # Collectives take numbers, not bools; float32 also avoids gathering float16 latents.
    gathered = [replica.all_gather(tf.cast(t, tf.float32), axis=0)
                for t in (strong_latents, latents, mask)]
    return gathered[0], gathered[1], tf.cast(gathered[2], tf.bool)

  def _replica_train_step(self, batch):
    with tf.GradientTape() as tape:
      terms, objective = self._loss_terms(batch, training=True)
      scaled_objective = self.optimizer.scale_loss(objective)
    gradients = tape.gradient(scaled_objective, self.variables)
    self.optimizer.apply(gradients, self.variables)
    return terms

  def _train_step(self, batch):
    per_replica = self.strategy.run(self._replica_train_step, args=(batch,))
    return {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for name, value in per_replica.items()}

  def _predict_step(self, batch):
    latents = self.stage.encoder([batch["features"][self.stage.modality], batch["mask"]],
                                 training=False)
    return self.stage.classifier(latents, training=False)

  def distribute(self, batches):
    """Splits each global batch across the strategy's replicas (no-op for one replica)."""
    if self.strategy.num_replicas_in_sync == 1:
      return batches
    distributed = self.strategy.experimental_distribute_dataset(batches)
    if self.train_step is None:
      self._trace_train_step(distributed.element_spec)
    return distributed

  # --- loop ---------------------------------------------------------------------------------
  def evaluate(self, split):
    """Metrics of the current weights on a Split."""
    labels, scores = [], []
    for batch in split.batches():
      batch_scores = self.predict_step(batch).numpy()
      mask = batch["mask"].numpy()
      labels.append(batch["labels"].numpy()[mask])
      scores.append(batch_scores[mask])
    return split_metrics(self.stage.task, np.concatenate(labels), np.concatenate(scores))

  def _done_path(self):
    return os.path.join(self.checkpoint_dir, "done.json")

  def fit(self, train, validation):
    """Trains (or resumes, or skips a finished stage) and leaves the best weights loaded.

    Returns the number of epochs trained in total.
    """
    stage = self.stage
    if os.path.exists(self._done_path()):
      self.best.checkpoint.restore(self.best.latest_checkpoint).expect_partial()
      with open(self._done_path()) as f:
        done = json.load(f)
      self.log(f"[{stage.name}] already finished after {done['epochs']} epochs "
               f"(best validation {stage.monitor} {done['best_value']:.4f}); not training again")
      return done["epochs"]
    if self.last.latest_checkpoint:
      self.last.checkpoint.restore(self.last.latest_checkpoint).assert_existing_objects_matched()
      self.log(f"[{stage.name}] resuming after epoch {int(self.epoch.numpy())} from "
               f"{self.last.latest_checkpoint}")
    writer = tf.summary.create_file_writer(self.tensorboard_dir)
    while int(self.epoch.numpy()) < self.epochs:
      if int(self.epochs_without_improvement.numpy()) >= self.patience:
        break
      self._run_epoch(train, validation, writer)
    writer.close()
    if self.best.latest_checkpoint is None:
      raise TrainingDiverged(f"[{stage.name}] no epoch finished; nothing to restore")
    self.best.checkpoint.restore(self.best.latest_checkpoint).assert_existing_objects_matched()
    epochs = int(self.epoch.numpy())
    with open(self._done_path(), "w") as f:
      json.dump({"epochs": epochs, "best_value": float(self.best_value.numpy())}, f)
    return epochs

  def _run_epoch(self, train, validation, writer):
    stage = self.stage
    epoch = int(self.epoch.numpy()) + 1
    start = time.time()
    sums, steps = {}, 0
    # The order of each epoch depends on (seed, epoch) only, so a resumed run sees the same.
    for batch in self.distribute(train.batches(shuffle_seed=self.seed * 100_003 + epoch)):
      steps += 1
      try:
        terms = {k: float(v) for k, v in self.train_step(batch).items()}
      except tf.errors.InvalidArgumentError as error:
        # E.g. an eigendecomposition of a covariance full of NaN after a diverged update.
        raise TrainingDiverged(
            f"[{stage.name}] training step failed at epoch {epoch}, step {steps}: "
            f"{error.message.splitlines()[0]}. The last good checkpoint (epoch {epoch - 1}) is "
            f"kept in {self.last.directory}.") from None
      for name, value in terms.items():
        if not math.isfinite(value):
          raise TrainingDiverged(
              f"[{stage.name}] loss term '{name}' is {value} at epoch {epoch}, step {steps}; "
              f"training stopped. The last good checkpoint (epoch {epoch - 1}) is kept in "
              f"{self.last.directory}. Lower --learning_rate or --alpha and rerun.")
        sums[name] = sums.get(name, 0.0) + value
      self.step_budget.spend()
    means = {name: total / steps for name, total in sums.items()}
    scores = self.evaluate(validation)
    value = scores[stage.monitor]
    improved = value > float(self.best_value.numpy())
    if improved:
      self.best_value.assign(value)
      self.epochs_without_improvement.assign(0)
      self.best.save(checkpoint_number=epoch)
    else:
      self.epochs_without_improvement.assign_add(1)
    self.epoch.assign(epoch)
    self.last.save(checkpoint_number=epoch)
    with writer.as_default(step=epoch):
      for name, mean in means.items():
        tf.summary.scalar(f"loss/{name}", mean)
      for name, metric in scores.items():
        tf.summary.scalar(f"validation/{name}", metric)
      tf.summary.scalar("learning_rate", self.learning_rate)
    writer.flush()
    loss_text = "  ".join(f"{name} {mean:.4f}" for name, mean in means.items())
    metric_text = "  ".join(f"{name} {metric:.4f}" for name, metric in scores.items())
    self.log(f"[{stage.name} {stage.modality}] epoch {epoch:3d}/{self.epochs}  {loss_text}  |  "
             f"val {metric_text}{'  *best*' if improved else ''}  ({time.time() - start:.1f}s)")
