"""python -m stew_tf.main --strong=text --weak=audio [--flagfile=flags/NAME.cfg]

(flagfiles may include others, relative to themselves: stew_tf/flagfiles.py)
"""

import os
import re
import shlex
import signal
import sys
import warnings

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

import stew_tf
from stew_tf import cli_flags
from stew_tf import data
from stew_tf import experiment
from stew_tf import flagfiles
from stew_tf import methods
from stew_tf import rank
from stew_tf import records
from stew_tf import train
from stew_tf import workdir

FLAGS = flags.FLAGS
EXIT_ERROR, EXIT_STOPPED, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 3, 130, 143  # 128 + signal


def resume_command():
  return shlex.join([os.path.basename(sys.executable), "-m", "stew_tf.main", *sys.argv[1:]])


def _fail(message, code=EXIT_ERROR):
  print(message, file=sys.stderr)
  sys.exit(code)


def _raise_terminated(signum, frame):
  del signum, frame
  raise train.Terminated()


def _set_up_process():
  """Quiet logs and warnings, and SIGTERM (Slurm, Kubernetes) stopping a run as Ctrl-C does."""
  # Progress is printed; absl's warnings (e.g. TFDS's notes while it prepares data) are shown
  # with TensorFlow's log, when TF_CPP_MIN_LOG_LEVEL is set (see stew_tf/__init__.py).
  logging.set_verbosity(logging.WARNING if stew_tf.TENSORFLOW_LOG_REQUESTED else logging.ERROR)
  # Our models take the mask as an explicit input, so the implicit Keras mask that the Bi-GRU
  # and transformer layers attach to their outputs is not needed downstream; Keras warns each
  # time a sub-model drops it.
  warnings.filterwarnings("ignore", category=UserWarning,
                          message=r"Layer '.*' \(of type .*\) was passed an input with a mask")
  signal.signal(signal.SIGTERM, _raise_terminated)


def _op_error_text(error):
  """The first line of TensorFlow's message without its internal function and op names."""
  text = (error.message or type(error).__name__).splitlines()[0]
  text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
  return re.sub(r"\s*\[Op:\w+\].*$", "", text)


def _config():
  """The config of the parsed flags, with --strong=auto resolved by the modality ranking."""
  if FLAGS.strong != "auto" or not methods.get(FLAGS.method).uses_strong:
    return cli_flags.from_flag_values(FLAGS)
  label = FLAGS.label or data.get_spec(FLAGS.dataset, FLAGS.manual_dir).labels[0]
  strong, ranking = rank.best_strong(FLAGS.dataset, label, FLAGS.weak,
                                     main_args=rank.training_args(FLAGS))
  print(f"--strong=auto: {strong}, the best-ranked modality other than {FLAGS.weak} "
        f"({ranking})")
  return cli_flags.from_flag_values(FLAGS, strong=strong, strong_ranking=ranking)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  _set_up_process()
  try:
    experiment.run_experiment(_config())
  except (data.DataError, train.TrainingDiverged, experiment.ConfigError,
          workdir.WorkdirError, rank.RankError, records.RecordError) as error:
    _fail(f"error: {error}")
  except train.StopRequested as stop:
    _fail(str(stop), EXIT_STOPPED)
  except train.Interrupted as interrupted:
    _fail(f"{interrupted}; rerun to resume: {resume_command()}",
          EXIT_TERMINATED if interrupted.terminated else EXIT_INTERRUPTED)
  except KeyboardInterrupt as stop:
    terminated = isinstance(stop, train.Terminated)
    _fail(f"{'stopped by SIGTERM' if terminated else 'interrupted'}; finished epochs are saved; "
          f"rerun to resume: {resume_command()}",
          EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
  except OSError as error:
    # Read-only or full disks, a file where a folder should be: name the path.
    where = f"{error.filename}: " if error.filename else ""
    _fail(f"error: {where}{error.strerror or error} (finished epochs are kept; fix this and "
          "rerun the same command to resume)")
  except tf.errors.OpError as error:
    _fail(f"error: {_op_error_text(error)} (finished epochs are kept; fix this and rerun the "
          "same command to resume)")


def _parse_flags(argv):
  """absl's parsing, after the flagfiles' includes are expanded relative to their files."""
  try:
    argv = flagfiles.expand_argv(argv)
  except flagfiles.FlagfileError as error:
    _fail(f"error: {error}")
  return app.parse_flags_with_usage(argv)


if __name__ == "__main__":
  cli_flags.define_flags(FLAGS)
  app.run(main, flags_parser=_parse_flags)
