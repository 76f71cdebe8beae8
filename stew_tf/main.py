"""python -m stew_tf.main --strong=text --weak=audio [--flagfile=flags/NAME.cfg]"""

import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from stew_tf import config as config_lib
from stew_tf import data
from stew_tf import experiment
from stew_tf import methods
from stew_tf import rank
from stew_tf import train
from stew_tf import workdir

FLAGS = flags.FLAGS
EXIT_ERROR, EXIT_STOPPED, EXIT_INTERRUPTED = 1, 3, 130


def resume_command():
  return shlex.join([os.path.basename(sys.executable), "-m", "stew_tf.main", *sys.argv[1:]])


def _fail(message, code=EXIT_ERROR):
  print(message, file=sys.stderr)
  sys.exit(code)


def _config():
  """The config of the parsed flags, with --strong=auto resolved by the modality ranking."""
  if FLAGS.strong != "auto" or not methods.get(FLAGS.method).uses_strong:
    return config_lib.from_flag_values(FLAGS)
  label = FLAGS.label or data.get_spec(FLAGS.dataset, FLAGS.manual_dir).labels[0]
  strong, ranking = rank.best_strong(FLAGS.dataset, label, FLAGS.weak,
                                     main_args=rank.training_args(FLAGS))
  print(f"--strong=auto: {strong}, the best-ranked modality other than {FLAGS.weak} "
        f"({ranking})")
  return config_lib.from_flag_values(FLAGS, strong=strong, strong_ranking=ranking)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; TF's INFO lines are noise here
  try:
    experiment.run_experiment(_config())
  except (data.DataError, train.TrainingDiverged, experiment.ConfigError,
          workdir.WorkdirError, rank.RankError) as error:
    _fail(f"error: {error}")
  except train.StopRequested as stop:
    _fail(str(stop), EXIT_STOPPED)
  except train.Interrupted as interrupted:
    _fail(f"{interrupted}; rerun to resume: {resume_command()}", EXIT_INTERRUPTED)
  except KeyboardInterrupt:
    _fail(f"interrupted; finished epochs are saved; rerun to resume: {resume_command()}",
          EXIT_INTERRUPTED)
  except OSError as error:
    # Read-only or full disks, a file where a folder should be: name the path.
    where = f"{error.filename}: " if error.filename else ""
    _fail(f"error: {where}{error.strerror or error} (finished epochs are kept; fix this and "
          "rerun the same command to resume)")
  except tf.errors.OpError as error:
    _fail(f"error: {error.message.splitlines()[0]} (finished epochs are kept; fix this and rerun "
          "the same command to resume)")


if __name__ == "__main__":
  config_lib.define_flags(FLAGS)
  app.run(main)
