"""Listeners: the in-epoch progress line on terminals only, one console line per epoch."""

import io
import time

from stew_tf import listeners
from stew_tf import splits


class _Terminal(io.StringIO):

  def isatty(self):
    return True


class _Stage:
  name, modality = "stage2", "audio"


def _run_epoch(stream):
  progress = listeners.Progress(stream, min_interval=0.0)
  progress.on_stage_begin(_Stage(), epochs=3, steps_per_epoch=4)
  progress.on_epoch_begin(1)
  for step in range(1, 5):
    time.sleep(0.01)
    progress.on_step_end(step, clips=32)
  progress.on_epoch_end(1, {}, None, False, 1.0)
  return stream.getvalue()


def test_a_terminal_sees_steps_clips_per_second_and_time_left():
  text = _run_epoch(_Terminal())
  updates = [part for part in text.split("\r") if part.startswith("[stage2 audio]")]
  assert len(updates) == 4
  assert updates[0].startswith("[stage2 audio] epoch 1: step 1/4  ")
  assert updates[-1].startswith("[stage2 audio] epoch 1: step 4/4  ")
  assert "clips/s" in updates[0] and "s left" in updates[0]
  assert updates[-1].rstrip().endswith("0s left")
  assert text.endswith("\r\033[K")  # the line is cleared before the epoch's own line


def test_a_log_file_gets_no_progress_lines():
  assert _run_epoch(io.StringIO()) == ""


def test_the_epoch_line_shows_losses_and_three_selection_metrics():
  lines = []
  log = listeners.ConsoleLog(lines.append, splits.selection_name(splits.VALIDATION))
  log.on_stage_begin(_Stage(), epochs=3, steps_per_epoch=4)
  metrics = {"accuracy": 0.5, "f1_weighted": 0.25, "balanced_accuracy": 0.75,
             "recall_positive": 1.0, "confusion": [[1, 2], [3, 4]]}
  log.on_epoch_end(2, {"prediction": 0.125, "total": 0.5}, metrics, True, 3.25)
  assert lines == ["[stage2 audio] epoch   2/3  prediction 0.1250  total 0.5000  |  validation "
                   "accuracy 0.5000  f1_weighted 0.2500  balanced_accuracy 0.7500  *best*  (3.2s)"]


def test_a_test_selection_is_named_so_on_the_console_and_in_tensorboard(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  name = splits.selection_name(splits.TEST)
  lines = []
  console = listeners.ConsoleLog(lines.append, name)
  board = listeners.TensorBoardLog(str(tmp_path), 1e-3, name)
  for listener in (console, board):
    listener.on_stage_begin(_Stage(), epochs=1, steps_per_epoch=1)
    listener.on_epoch_end(1, {"total": 0.5}, {"ccc": 0.25}, False, 1.0)
  board.on_stage_end()
  assert "|  test_selection ccc 0.2500" in lines[0]
  tags = {value.tag for path in tmp_path.iterdir()
          for event in tf.compat.v1.train.summary_iterator(str(path))
          for value in event.summary.value}
  assert tags == {"loss/total", "test_selection/ccc", "learning_rate"}
