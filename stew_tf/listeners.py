"""What happens around the loop's steps and epochs: console lines, progress, TensorBoard.

The loop calls every listener's hooks; none of them changes training (like Keras callbacks).
"""

import sys
import time

import tensorflow as tf

from stew_tf import splits


class Listener:
  """No-op hooks; subclasses override what they need."""

  def on_stage_begin(self, stage, epochs, steps_per_epoch):
    pass

  def on_epoch_begin(self, epoch):
    pass

  def on_step_end(self, step, clips):
    pass

  def on_epoch_end(self, epoch, losses, metrics, improved, seconds):
    pass

  def on_stage_end(self):
    pass


class ConsoleLog(Listener):
  """One line per epoch: losses, the selection split's metrics, and whether it is the best.

  `selection_name`: splits.selection_name(select_on), so that the line never passes a test
  selection off as a validation result.
  """

  def __init__(self, log=print, selection_name=splits.VALIDATION):
    self.log = log
    self.selection_name = selection_name

  def on_stage_begin(self, stage, epochs, steps_per_epoch):
    self.prefix = f"[{stage.name} {stage.modality}]"
    self.epochs = epochs

  def on_epoch_end(self, epoch, losses, metrics, improved, seconds):
    loss_text = "  ".join(f"{name} {mean:.4f}" for name, mean in losses.items())
    line = f"{self.prefix} epoch {epoch:3d}/{self.epochs}  {loss_text}"
    if metrics:
      # The first few scalars (accuracy, weighted F1, balanced accuracy; or CCC, r, MAE): the
      # full set is in TensorBoard and results.json.
      scalars = [(name, value) for name, value in metrics.items() if isinstance(value, float)]
      metric_text = "  ".join(f"{name} {value:.4f}" for name, value in scalars[:3])
      line += f"  |  {self.selection_name} {metric_text}{'  *best*' if improved else ''}"
    self.log(f"{line}  ({seconds:.1f}s)")


class Progress(Listener):
  """Steps done/total, clips/s and time left while an epoch runs, on a terminal only.

  Logs that are not a terminal keep to the one line per epoch of ConsoleLog.
  """

  def __init__(self, stream=None, min_interval=0.5):
    self.stream = stream or sys.stdout
    self.min_interval = min_interval
    self.enabled = self.stream.isatty()

  def on_stage_begin(self, stage, epochs, steps_per_epoch):
    self.prefix = f"[{stage.name} {stage.modality}]"
    self.total = steps_per_epoch

  def on_epoch_begin(self, epoch):
    self.epoch = epoch
    self.start = self.shown = time.perf_counter()
    self.clips = 0

  def on_step_end(self, step, clips):
    self.clips += clips
    now = time.perf_counter()
    if not self.enabled or now - self.shown < self.min_interval:
      return
    self.shown = now
    elapsed = now - self.start
    left = elapsed / step * (self.total - step) if self.total else 0.0
    self.stream.write(f"\r{self.prefix} epoch {self.epoch}: step {step}/{self.total}  "
                      f"{self.clips / elapsed:.1f} clips/s  {left:.0f}s left ")
    self.stream.flush()

  def on_epoch_end(self, epoch, losses, metrics, improved, seconds):
    if self.enabled:
      self.stream.write("\r\033[K")  # clear the progress line before the epoch's line
      self.stream.flush()


class TensorBoardLog(Listener):
  """Per epoch: loss/<term>, <selection_name>/<metric>, learning_rate (`selection_name`:
  splits.selection_name(select_on))."""

  def __init__(self, directory, learning_rate, selection_name=splits.VALIDATION):
    self.directory = directory
    self.learning_rate = learning_rate
    self.selection_name = selection_name
    self.writer = None

  def on_stage_begin(self, stage, epochs, steps_per_epoch):
    self.writer = tf.summary.create_file_writer(self.directory)

  def on_epoch_end(self, epoch, losses, metrics, improved, seconds):
    with self.writer.as_default(step=epoch):
      for name, mean in losses.items():
        tf.summary.scalar(f"loss/{name}", mean)
      for name, value in (metrics or {}).items():
        if isinstance(value, float):
          tf.summary.scalar(f"{self.selection_name}/{name}", value)
      tf.summary.scalar("learning_rate", self.learning_rate)
    self.writer.flush()

  def on_stage_end(self):
    if self.writer is not None:
      self.writer.close()
