"""Flag validation: one-line errors that list the valid choices, never a traceback."""

import pytest

from stew_tf import cli_flags
from tests.helpers import run_main


@pytest.mark.parametrize("args, expected", [
    (["--weak=smell"], "--weak=smell is not a modality of --dataset=stew_synthetic; choose one "
                       "of: text, audio, video, label_echo"),
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
  config = cli_flags.parse(["prog", "--dataset=recola", "--label=valence",
                             "--strong=video_geometric", "--weak=audio"])
  assert config.trainer.learning_rate == config.teacher.trainer.learning_rate == 1e-5
  assert config.student.encoder.gru_layers == 1  # RECOLA audio: one Bi-GRU layer
  assert config.teacher.encoder.gru_layers == 2
  translation = config.objective.translation
  assert (translation.decoder_units, translation.decoder_layers) == (500, 1)  # valence audio
  assert config.runtime.workdir == "runs/recola-valence-video_geometric-audio-cm_stew-seed0"


def test_the_default_workdir_differs_for_runs_that_differ():
  def workdir(*args):
    return cli_flags.parse(["prog", *args]).runtime.workdir

  plain = workdir()
  assert plain == "runs/stew_synthetic-text-audio-cm_stew-seed0"
  changed = {workdir(flag) for flag in ("--alpha=0.2", "--dropout=0.5", "--epochs=3",
                                         "--learning_rate=0.002", "--strong_epochs=3")}
  assert len(changed) == 5 and plain not in changed
  assert all(w.startswith(plain + "-") for w in changed)
  # Settings that do not change the model keep the name.
  assert workdir("--stop_after_steps=3", "--data_dir=/tmp/x") == plain
  # A default written out explicitly is still the default.
  assert workdir("--alpha=0.1", "--learning_rate=3e-3", "--strong_learning_rate=3e-3") == plain


@pytest.mark.parametrize("flag, message", [
    ("--learning_rate=0", "flag --learning_rate=0.0: expected a number in (0, 1]"),
    ("--learning_rate=-1e-3", "flag --learning_rate=-0.001: expected a number in (0, 1]"),
    ("--learning_rate=1e6", "flag --learning_rate=1000000.0: expected a number in (0, 1]"),
    ("--strong_learning_rate=2", "flag --strong_learning_rate=2.0: expected a number in (0, 1]"),
    ("--strong_batch_size=1", "flag --strong_batch_size=1: 1 is not integer >= 2"),
    ("--strong_epochs=0", "flag --strong_epochs=0: 0 is not a positive integer"),
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
  extra = ["--validation=none"] if flag.startswith("--select_on") else []
  with pytest.raises(flags.Error) as error:
    cli_flags.parse(["prog", flag, *extra])
  assert message in str(error.value)


def test_uni_modal_methods_have_no_teacher_and_no_objective():
  config = cli_flags.parse(["prog", "--method=enc_cls", "--strong=smell", "--alpha=0.5"])
  assert (config.strong, config.teacher, config.objective) == (None, None, None)
  assert config.runtime.workdir == "runs/stew_synthetic-audio-enc_cls-seed0"
  assert cli_flags.parse(["prog", "--method=cls_only"]).student.encoder is None


def test_the_tree_has_each_method_s_parts_only():
  def parts(method):
    config = cli_flags.parse(["prog", f"--method={method}"])
    return (config.teacher is not None, config.alignment is not None,
            config.translation is not None)

  assert parts("cm_stew") == (True, True, True)
  assert parts("no_lfa") == (False, False, True)  # the strong features are only decoded
  assert parts("no_decoder") == (True, True, False)


def test_the_teacher_trains_with_its_own_settings_defaulting_to_the_students():
  config = cli_flags.parse(["prog", "--learning_rate=0.002", "--epochs=7", "--patience=3",
                             "--batch_size=16"])
  assert config.teacher.trainer == config.trainer
  own = cli_flags.parse(["prog", "--strong_learning_rate=0.01", "--strong_epochs=4",
                          "--strong_patience=2", "--strong_batch_size=8"])
  assert (own.teacher.trainer.learning_rate, own.teacher.trainer.epochs,
          own.teacher.trainer.patience, own.teacher.trainer.batch_size) == (0.01, 4, 2, 8)
  assert own.trainer == cli_flags.parse(["prog"]).trainer


def _teacher_key(*args, version=None):
  import stew_tf
  from stew_tf import teachers
  config = cli_flags.parse(["prog", *args])
  saved = stew_tf.__version__
  stew_tf.__version__ = version or saved
  try:
    return teachers.entry_dir("cache", config.teacher_identity({"data_fingerprint": "f"}))
  finally:
    stew_tf.__version__ = saved


def test_the_teacher_is_reused_when_only_the_student_or_objective_changes():
  key = _teacher_key()
  # The teacher's own settings that default to the student's, pinned to their defaults.
  pinned = {"--learning_rate": "--strong_learning_rate=3e-3", "--epochs": "--strong_epochs=60",
            "--patience": "--strong_patience=10", "--batch_size": "--strong_batch_size=32",
            "--dropout": "--strong_dropout=0.3"}
  for flag in ("--alpha=0.5", "--beta=2", "--decoder_units=64", "--decoder_layers=1",
               "--dropout=0.5", "--weak_gru_layers=1", "--learning_rate=0.002", "--epochs=3",
               "--patience=2", "--batch_size=16", "--dcca_r1=0.01", "--method=no_decoder",
               "--weak=video", "--workdir=elsewhere", "--inter_op_threads=3"):
    pin = pinned.get(flag.split("=")[0])
    assert _teacher_key(flag, *([pin] if pin else [])) == key, flag


def test_a_teacher_setting_or_another_version_gives_another_teacher():
  key = _teacher_key()
  others = {_teacher_key(flag) for flag in (
      "--strong_dropout=0.5", "--strong_gru_layers=2", "--classifier_dropout=0.4",
      "--strong_learning_rate=0.002", "--strong_epochs=3", "--strong_patience=2",
      "--strong_batch_size=16", "--seed=1", "--strong=video", "--select_on=test",
      "--intra_op_threads=7", "--nodeterministic")}
  assert len(others) == 12 and key not in others
  assert _teacher_key(version="0.5.0") != key


def test_the_run_identity_is_the_tree_without_runtime_plus_data_and_version():
  import stew_tf
  config = cli_flags.parse(["prog"])
  identity = config.identity({"data_fingerprint": "f"})
  assert "runtime" not in identity
  assert identity["stew_tf_version"] == stew_tf.__version__
  assert identity["prepared_data"] == {"data_fingerprint": "f"}
  assert identity["numerics"]["intra_op_threads"] == config.numerics.intra_op_threads
  runtime_only = cli_flags.parse(["prog", "--workdir=x", "--inter_op_threads=3",
                                   "--stop_after_steps=2", "--teacher_cache=t", "--overwrite"])
  assert runtime_only.identity({}) == config.identity({})


def test_threads_per_op_default_to_half_the_cpus_and_are_part_of_the_run_identity():
  import os
  config = cli_flags.parse(["prog"])
  assert config.numerics.intra_op_threads == max(1, len(os.sched_getaffinity(0)) // 2)
  assert config.runtime.inter_op_threads is None  # TensorFlow's default
  other = cli_flags.parse(["prog", f"--intra_op_threads={config.numerics.intra_op_threads + 1}"])
  assert other.runtime.workdir != config.runtime.workdir
  assert cli_flags.parse(["prog", "--inter_op_threads=3"]).runtime.workdir == (
      config.runtime.workdir)


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
