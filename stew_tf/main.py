"""python -m stew_tf.main --strong=text --weak=audio [--flagfile=flags/NAME.cfg]"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app
from absl import logging

from stew_tf import config as config_lib
from stew_tf import data
from stew_tf import experiment
from stew_tf import train


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # progress is printed; TF's INFO lines are noise here
  config = config_lib.from_flags()
  try:
    experiment.run_experiment(config)
  except (data.DataError, train.TrainingDiverged) as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  except train.StopRequested as stop:
    print(str(stop), file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
  app.run(main)
