"""Flag validation: one-line errors that list the valid choices, never a traceback."""

import pytest

from tests.helpers import run_main


@pytest.mark.parametrize("args, expected", [
    (["--weak=smell"], "--weak=smell is not a modality of --dataset=stew_synthetic; choose one "
                       "of: text, audio, video"),
    (["--strong=audio", "--weak=audio"], "--strong and --weak are both audio"),
    (["--dataset=stew_synthetic/recola_like", "--strong=audio", "--weak=video_geometric",
      "--label=dominance"], "--label=dominance is not a target"),
    (["--method=teacher_student"], "--method=teacher_student: value should be one of <cm_stew|"),
])
def test_bad_flags_give_one_clear_line(args, expected):
  result = run_main(*args, timeout=120)
  assert result.returncode != 0
  assert expected in result.stderr
  assert "Traceback" not in result.stderr


def test_defaults_follow_the_paper():
  from stew_tf import config as config_lib
  config = config_lib.parse(["prog", "--dataset=recola", "--label=valence",
                             "--strong=video_geometric", "--weak=audio"])
  assert config.learning_rate == 1e-5
  assert config.weak_gru_layers == 1  # RECOLA audio: one Bi-GRU layer
  assert config.strong_gru_layers == 2
  assert (config.decoder_units, config.decoder_layers) == (500, 1)  # valence audio decoder
  assert config.workdir == "runs/recola-valence-video_geometric-audio-cm_stew-seed0"


def test_the_default_workdir_differs_for_runs_that_differ():
  from stew_tf import config as config_lib
  plain = config_lib.parse(["prog"]).workdir
  assert plain == "runs/stew_synthetic-text-audio-cm_stew-seed0"
  changed = {config_lib.parse(["prog", flag]).workdir
             for flag in ("--alpha=0.2", "--dropout=0.5", "--epochs=3", "--learning_rate=0.002")}
  assert len(changed) == 4 and plain not in changed
  assert all(w.startswith(plain + "-") for w in changed)
  # Settings that do not change the model keep the name.
  assert config_lib.parse(["prog", "--stop_after_steps=3", "--data_dir=/tmp/x"]).workdir == plain
  # A default written out explicitly is still the default.
  assert config_lib.parse(["prog", "--alpha=0.1", "--learning_rate=1e-3"]).workdir == plain


@pytest.mark.parametrize("flag, message", [
    ("--learning_rate=0", "flag --learning_rate=0.0: expected a number in (0, 1]"),
    ("--learning_rate=-1e-3", "flag --learning_rate=-0.001: expected a number in (0, 1]"),
    ("--learning_rate=1e6", "flag --learning_rate=1000000.0: expected a number in (0, 1]"),
    ("--alpha=-1", "flag --alpha=-1.0: expected a number >= 0"),
    ("--beta=-1", "flag --beta=-1.0: expected a number >= 0"),
    ("--dcca_r1=-10", "flag --dcca_r1=-10.0: expected a number > 0"),
    ("--dcca_r2=0", "flag --dcca_r2=0.0: expected a number > 0"),
    ("--batch_size=1", "flag --batch_size=1: 1 is not integer >= 2"),
    ("--dropout=0.95", "flag --dropout=0.95"),
    ("--select_on=test", "--select_on=test selects an epoch, but --validation=none"),
    ("--intra_op_threads=0", "flag --intra_op_threads=0: 0 is not a positive integer"),
    ("--inter_op_threads=-2", "flag --inter_op_threads=-2: -2 is not a positive integer"),
])
def test_every_numeric_flag_is_checked_where_it_is_defined(flag, message):
  from absl import flags
  from stew_tf import config as config_lib
  extra = ["--validation=none"] if flag.startswith("--select_on") else []
  with pytest.raises(flags.Error) as error:
    config_lib.parse(["prog", flag, *extra])
  assert message in str(error.value)


def test_uni_modal_methods_ignore_strong_and_alpha():
  from stew_tf import config as config_lib
  config = config_lib.parse(["prog", "--method=enc_cls", "--strong=smell", "--alpha=0.5"])
  assert (config.strong, config.alpha, config.beta) == (None, 0.0, 0.0)
  assert config.workdir == "runs/stew_synthetic-audio-enc_cls-seed0"


def test_threads_per_op_default_to_half_the_cpus_and_are_part_of_the_run_identity():
  import os
  from stew_tf import config as config_lib
  config = config_lib.parse(["prog"])
  assert config.intra_op_threads == max(1, len(os.sched_getaffinity(0)) // 2)
  assert config.inter_op_threads is None  # TensorFlow's default
  assert config.recorded()["intra_op_threads"] == config.intra_op_threads
  assert "inter_op_threads" not in config.recorded()  # the number of concurrent ops changes no bit
  other = config_lib.parse(["prog", f"--intra_op_threads={config.intra_op_threads + 1}"])
  assert other.workdir != config.workdir
  assert config_lib.parse(["prog", "--inter_op_threads=3"]).workdir == config.workdir


_SET_THREADS = """
import tensorflow as tf
from stew_tf import experiment
experiment.set_threads(1, 3)
print(tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads())
tf.constant(1.0) + 1.0  # TensorFlow now runs: its pools are fixed
experiment.set_threads(1, 3)  # the same sizes: nothing to do
try:
  experiment.set_threads(2)
except experiment.ConfigError as error:
  print(error)
"""


def test_thread_pools_are_sized_before_tensorflow_runs_or_the_run_stops_with_one_line():
  import subprocess
  import sys
  from tests.helpers import REPO_ROOT
  result = subprocess.run([sys.executable, "-c", _SET_THREADS], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.strip().splitlines()
  assert lines[0] == "1 3"
  assert lines[1] == ("--intra_op_threads=2 --inter_op_threads=default: this process already "
                      "runs TensorFlow with 1 and 3; they can only be set before TensorFlow "
                      "starts (run stew_tf.main in its own process)")
