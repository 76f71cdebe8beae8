"""One epoch loop for both stages, every method and every baseline.

`StageTrainer` wires a Stage's traced steps (train_step.py), its state on disk (stage_state.py)
and the listeners (listeners.py), and runs the epochs: train, select, checkpoint, report.
Which loss terms are on is the Stage's configuration, not a copy of the loop.
"""

import math
import time

import tensorflow as tf

from stew_tf import evaluation
from stew_tf import stage_state
from stew_tf import train_step


class TrainingDiverged(RuntimeError):
  """A loss term became NaN or Inf; the message names the stage, step and term."""


class StopRequested(Exception):
  """--stop_after_steps was reached; the last finished epoch is checkpointed."""


class Terminated(KeyboardInterrupt):
  """SIGTERM (what Slurm, Kubernetes and `kill` send), raised by stew_tf.main's handler: it
  stops training as Ctrl-C does."""


class Interrupted(Exception):
  """Ctrl-C or SIGTERM during training; says where, and what is kept."""

  def __init__(self, stage, epoch, finished_epochs, terminated=False):
    how = "stopped by SIGTERM" if terminated else "interrupted"
    super().__init__(f"{how} in {stage}, epoch {epoch}; {finished_epochs} finished "
                     f"epoch(s) of {stage} are saved")
    self.stage, self.epoch, self.finished_epochs = stage, epoch, finished_epochs
    self.terminated = terminated


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


class StageTrainer:
  """Trains one Stage: the epoch loop, with selection, checkpoints, resume and listeners.

  Args:
    stage: what to train.
    modalities: {name: feature dim} of the batches.
    learning_rate: Adam's.
    state_dir: the stage's checkpoint folder (stage_state.StageState).
    seed: with the epoch number, fixes each epoch's batch order.
    epochs: at most this many epochs (exactly this many without a selection split).
    patience: early stopping, in epochs without a better selection metric.
    listeners: listeners.Listener objects called around steps and epochs.
    budget: a StepBudget (--stop_after_steps).
    strategy, jit_compile, optimizer: how the step runs.
    cache_teacher_latents: a stage aligned with a frozen teacher computes the teacher's latents
      of the training clips once per fit and takes them from the batches, instead of running the
      teacher in every step (same numbers up to float rounding).
  """

  def __init__(self, stage, modalities, learning_rate, state_dir, *, seed, epochs, patience,
               listeners=(), budget=None, strategy=None, jit_compile=False, optimizer=None,
               cache_teacher_latents=False):
    self.stage = stage
    self.caches_teacher_latents = cache_teacher_latents and stage.alignment
    self.seed = seed
    self.epochs = epochs
    self.patience = patience
    self.listeners = list(listeners)
    self.budget = budget or StepBudget(0)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      optimizer = optimizer or train_step.make_optimizer(learning_rate)
    self.steps = train_step.StepFunctions(stage, modalities, optimizer, strategy, jit_compile,
                                          teacher_latents_in_batch=self.caches_teacher_latents)
    self.state = stage_state.StageState(state_dir, stage.trained_models, optimizer, strategy)

  @property
  def optimizer(self):
    return self.steps.optimizer

  def predict(self, split):
    return evaluation.predict_split(self.steps.predict_step, split)

  def evaluate(self, split):
    """Metrics of the current weights on a data.Split."""
    return evaluation.split_metrics(self.stage.task, self.predict(split))

  def fit(self, train, selection, log=print):
    """Trains (or resumes, or skips a finished stage) and leaves the selected weights loaded.

    Args:
      train: the data.Split to train on.
      selection: the data.Split whose metric picks the epoch; None: no selection (every epoch
        runs and the last one is kept).
      log: prints one line.

    Returns:
      The done marker: {"epochs", "best_epoch", "best_value"}.
    """
    stage = self.stage

    def note(line):
      log(f"[{stage.name}] {line}")

    for repair in self.state.notes:
      note(repair)
    done = self.state.done(note)
    if done is not None:
      self.state.load_best()
      note(f"already finished after {done['epochs']} epochs (kept epoch {done['best_epoch']}); "
           "not training again")
      return done
    resumed_from = self.state.resume(note)
    if resumed_from:
      note(f"resuming after epoch {self.state.finished_epochs} from {resumed_from}")
    if self.caches_teacher_latents:
      # From the teacher as loaded now (restored, on resume), like the step would compute them.
      train = train.with_teacher_latents(self.steps.teacher_latents(train))
    steps_per_epoch = math.ceil(train.num_examples / train.batch_size)
    for listener in self.listeners:
      listener.on_stage_begin(stage, self.epochs, steps_per_epoch)
    patience = self.patience if selection is not None else None
    try:
      while self.state.wants_more(self.epochs, patience):
        self._run_epoch(train, selection)
    except KeyboardInterrupt as stop:
      raise Interrupted(stage.name, self.state.finished_epochs + 1, self.state.finished_epochs,
                        terminated=isinstance(stop, Terminated)) from None
    finally:
      for listener in self.listeners:
        listener.on_stage_end()
    return self.state.finish()

  def _run_epoch(self, train, selection):
    stage = self.stage
    epoch = self.state.finished_epochs + 1
    start = time.time()
    self.steps.reset_sums()
    for listener in self.listeners:
      listener.on_epoch_begin(epoch)
    step = 0
    # The order of each epoch depends on (seed, epoch) only, so a resumed run sees the same.
    for batch in self.steps.distribute(train.batches(shuffle_seed=self.seed * 100_003 + epoch)):
      step += 1
      try:
        self.steps.train_step(batch)
      except tf.errors.InvalidArgumentError as error:
        # E.g. an eigendecomposition of a covariance full of NaN after a diverged update: the
        # first non-finite loss, if one came before, is the cause to report.
        self._raise_if_diverged(epoch)
        raise TrainingDiverged(
            f"[{stage.name}] training step failed at epoch {epoch}, step {step}: "
            f"{error.message.splitlines()[0]}. {self._kept(epoch)}.") from None
      clips = min(train.batch_size, train.num_examples - (step - 1) * train.batch_size)
      for listener in self.listeners:
        listener.on_step_end(step, clips)
      self.budget.spend()
    means = self._raise_if_diverged(epoch)
    metrics = self.evaluate(selection) if selection is not None else None
    improved = self.state.end_epoch(epoch, metrics[stage.monitor] if metrics else None)
    for listener in self.listeners:
      listener.on_epoch_end(epoch, means, metrics, improved and metrics is not None,
                            time.time() - start)

  def _raise_if_diverged(self, epoch):
    """The epoch's mean loss terms, or TrainingDiverged naming the first NaN/Inf."""
    means, bad = self.steps.read_sums()
    if bad is None:
      return means
    bad_step, term = bad
    value = means[term] if not math.isfinite(means[term]) else "not finite"
    raise TrainingDiverged(
        f"[{self.stage.name}] loss term '{term}' is {value} at epoch {epoch}, step {bad_step}; "
        f"training stopped. {self._kept(epoch)}. Lower --learning_rate or --alpha and rerun.")

  def _kept(self, epoch):
    kept = self.state.kept_message(epoch)
    return kept[0].upper() + kept[1:]
