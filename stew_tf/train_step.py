"""What one stage trains (`Stage`) and its traced train and predict steps (`StepFunctions`).

The step is small and stays on the device: the loss terms of the stage, the gradients, the
optimizer update and the distribution strategy. Loss sums and the first non-finite step are kept
in device variables, so the loop reads them once per epoch instead of once per step.
"""

import dataclasses

import keras
import tensorflow as tf

from stew_tf import data
from stew_tf import losses
from stew_tf import tasks


@dataclasses.dataclass
class StrongTerms:
  """What one strong modality adds to the weak model's loss: alpha * -DCCA between its frozen
  teacher's latents and the weak latents (alignment), beta * MAE of its own decoder from the weak
  latents to its normalised features (translation)."""
  modality: str
  teacher: keras.Model | None = None  # frozen strong encoder (alignment)
  decoder: keras.Model | None = None  # translation
  normalizer: keras.layers.Layer | None = None  # gives the decoder's target
  alpha: float = 0.0
  beta: float = 0.0
  dcca_r1: float = 1e-3
  dcca_r2: float = 1e-3


@dataclasses.dataclass
class Stage:
  """What one stage trains and which loss terms it uses (from the method table)."""
  name: str  # "stage1" (a teacher: "stage1/<modality>" with several) or "stage2": names the
  # checkpoint and TensorBoard folders
  modality: str  # input of the model being trained
  encoder: keras.Model
  classifier: keras.Model
  task: str  # a row of stew_tf.tasks
  alignment: bool = False  # alpha * -DCCA(teacher latents, latents), per strong modality
  translation: bool = False  # beta * MAE(decoder(latents), normalised strong features), per one
  strong: tuple = ()  # StrongTerms, one per strong modality, in --strong's order

  @property
  def trained_models(self):
    decoders = [s.decoder for s in self.strong if s.decoder is not None]
    return [self.encoder, self.classifier, *decoders]

  @property
  def teachers(self):
    """{strong modality: frozen teacher encoder} (alignment)."""
    return {s.modality: s.teacher for s in self.strong if s.teacher is not None}

  def term_name(self, kind, strong):
    """"dcca" or "mae" with one strong modality; "dcca/text", ... with several."""
    return kind if len(self.strong) == 1 else f"{kind}/{strong.modality}"

  @property
  def term_names(self):
    """The loss terms the step reports, in order."""
    return (["prediction"]
            + [self.term_name("dcca", s) for s in self.strong if self.alignment]
            + [self.term_name("mae", s) for s in self.strong if self.translation] + ["total"])

  @property
  def monitor(self):
    """The metric that picks the epoch (the task's)."""
    return tasks.get(self.task).monitor


def make_optimizer(learning_rate):
  """Adam; with dynamic loss scaling under a float16 policy, so small gradients survive."""
  optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
  if keras.mixed_precision.global_policy().compute_dtype == "float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


class StepFunctions:
  """The traced train and predict steps of one Stage, with on-device loss sums."""

  def __init__(self, stage, modalities, optimizer, strategy=None, jit_compile=False,
               teacher_latents_in_batch=False):
    """`teacher_latents_in_batch`: the training batches carry the frozen teachers' latents
    (data.TEACHER_LATENTS, see teacher_latents), so the step does not run the teachers."""
    self.stage = stage
    self.prediction_loss = tasks.get(stage.task).prediction_loss
    self.optimizer = optimizer
    self.strategy = strategy or tf.distribute.get_strategy()
    for teacher in stage.teachers.values():
      # Frozen before tracing, so the traced step never updates it.
      teacher.trainable = False
    self.variables = [v for m in stage.trained_models for v in m.trainable_variables]
    with self.strategy.scope():
      optimizer.build(self.variables)
    # Plain variables, updated in cross-replica context after the reduction.
    self.sums = {name: tf.Variable(0.0, dtype=tf.float64, trainable=False)
                 for name in stage.term_names}
    self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.first_bad_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
    self.first_bad_term = tf.Variable(-1, dtype=tf.int64, trainable=False)
    self._jit_compile = jit_compile
    signature = data.batch_signature(modalities)
    self.train_step = None
    if self.strategy.num_replicas_in_sync == 1:
      self._trace_train_step(data.batch_signature(modalities, teacher_latents_in_batch and {
          modality: teacher.outputs[0].shape[-1] for modality, teacher in stage.teachers.items()}))
    self.predict_step = tf.function(self._predict_step, input_signature=[signature])
    self.teacher_step = (tf.function(self._teacher_step, input_signature=[signature])
                         if stage.alignment else None)

  def _trace_train_step(self, signature):
    # One trace per stage: fixed signatures with dynamic batch and time dimensions.
    self.train_step = tf.function(self._train_step, input_signature=[signature],
                                  jit_compile=self._jit_compile)

  def distribute(self, batches):
    """Splits each global batch across the strategy's replicas (no-op for one replica)."""
    if self.strategy.num_replicas_in_sync == 1:
      return batches
    # Split each global batch between the replicas (and workers): sharding by file would give
    # each worker other clips, not its share of one global batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    distributed = self.strategy.experimental_distribute_dataset(batches.with_options(options))
    if self.train_step is None:
      # Per-replica batches: their spec is known once the dataset is distributed.
      self._trace_train_step(distributed.element_spec)
    return distributed

  def reset_sums(self):
    for variable in (*self.sums.values(), self.steps):
      variable.assign(tf.zeros_like(variable))
    self.first_bad_step.assign(-1)
    self.first_bad_term.assign(-1)

  def read_sums(self):
    """(mean of each term over the epoch's steps, None or (step, term) of the first NaN/Inf)."""
    steps = int(self.steps.numpy())
    means = {name: float(total.numpy()) / max(steps, 1) for name, total in self.sums.items()}
    bad_step = int(self.first_bad_step.numpy())
    if bad_step < 0:
      return means, None
    return means, (bad_step, self.stage.term_names[int(self.first_bad_term.numpy())])

  def teacher_latents(self, split):
    """The frozen teachers' latents of every clip of `split`, in its order: {strong modality:
    [time, dim] arrays}.

    They are a fixed function of the clip (no dropout, frozen weights), so computing them once
    replaces the teachers' forward passes in every step (data.Split.with_teacher_latents).
    """
    per_clip = {modality: [] for modality in self.stage.teachers}
    for batch in split.batches():
      lengths = batch["mask"].numpy().sum(axis=1)
      for modality, latents in self.teacher_step(batch).items():
        per_clip[modality].extend(clip[:length] for clip, length in zip(latents.numpy(), lengths))
    return per_clip

  # --- traced -------------------------------------------------------------------------------
  def loss_terms(self, batch, training):
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
    prediction = self.prediction_loss(batch["labels"], scores, mask)
    terms = {"prediction": prediction * share}
    objective = terms["prediction"]  # what this replica differentiates
    teacher_latents = stage.alignment and (batch.get(data.TEACHER_LATENTS)
                                           or self._teacher_step(batch))
    for name, value, weight in [*_alignment_terms(stage, teacher_latents, latents, mask, replica),
                                *_translation_terms(stage, batch, latents, mask, share, training)]:
      terms[name] = value
      objective += weight * value
    terms["total"] = objective
    return terms, objective

  def _replica_train_step(self, batch):
    with tf.GradientTape() as tape:
      terms, objective = self.loss_terms(batch, training=True)
      scaled_objective = self.optimizer.scale_loss(objective)
    gradients = tape.gradient(scaled_objective, self.variables)
    self.optimizer.apply(gradients, self.variables)
    return terms

  def _train_step(self, batch):
    per_replica = self.strategy.run(self._replica_train_step, args=(batch,))
    terms = {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[name], axis=None)
             for name in self.stage.term_names}
    self.steps.assign_add(1)
    for index, (name, value) in enumerate(terms.items()):
      self.sums[name].assign_add(tf.cast(value, tf.float64))
      first = tf.logical_and(self.first_bad_step < 0,
                             tf.logical_not(tf.math.is_finite(value)))
      self.first_bad_step.assign(tf.where(first, self.steps, self.first_bad_step))
      self.first_bad_term.assign(tf.where(first, tf.constant(index, tf.int64),
                                          self.first_bad_term))
    return terms

  def _teacher_step(self, batch):
    # float32: exact for float16 latents (mixed precision).
    return {modality: tf.cast(teacher([batch["features"][modality], batch["mask"]],
                                      training=False), tf.float32)
            for modality, teacher in self.stage.teachers.items()}

  def _predict_step(self, batch):
    latents = self.stage.encoder([batch["features"][self.stage.modality], batch["mask"]],
                                 training=False)
    return self.stage.classifier(latents, training=False)


def _alignment_terms(stage, teacher_latents, latents, mask, replica):
  """(name, value, alpha) of each strong modality's -DCCA term; none without alignment."""
  if not stage.alignment:
    return []
  # Every replica computes the same global correlation from the gathered latents; the
  # gradients of all replicas are summed (all-reduced) before the update, so each replica
  # differentiates its 1/N share, like the other terms.
  return [(stage.term_name("dcca", strong),
           -losses.dcca_correlation(
               *_gather(replica, teacher_latents[strong.modality], latents, mask),
               r1=strong.dcca_r1, r2=strong.dcca_r2) / replica.num_replicas_in_sync,
           strong.alpha) for strong in stage.strong]


def _translation_terms(stage, batch, latents, mask, share, training):
  """(name, value, beta) of each strong modality's MAE term; none without translation."""
  if not stage.translation:
    return []
  return [(stage.term_name("mae", strong),
           losses.masked_mae(strong.normalizer(batch["features"][strong.modality]),
                             strong.decoder([latents, mask], training=training), mask) * share,
           strong.beta) for strong in stage.strong]


def _gather(replica, strong_latents, latents, mask):
  """The whole global batch's latents and mask, on every replica."""
  if replica.num_replicas_in_sync == 1:
    return strong_latents, latents, mask
  # Collectives take numbers, not bools; float32 also avoids gathering float16 latents.
  gathered = [replica.all_gather(tf.cast(t, tf.float32), axis=0)
              for t in (strong_latents, latents, mask)]
  return gathered[0], gathered[1], tf.cast(gathered[2], tf.bool)
