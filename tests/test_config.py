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
  from absl import flags
  from stew_tf import config as config_lib
  flag_values = flags.FLAGS
  flag_values(["prog", "--dataset=recola", "--label=valence", "--strong=video_geometric",
               "--weak=audio"])
  try:
    config = config_lib.from_flags()
  finally:
    flag_values.unparse_flags()
  assert config.learning_rate == 1e-5
  assert config.weak_gru_layers == 1  # RECOLA audio: one Bi-GRU layer
  assert config.strong_gru_layers == 2
  assert (config.decoder_units, config.decoder_layers) == (500, 1)  # valence audio decoder
  assert config.workdir == "runs/recola-valence-video_geometric-audio-cm_stew-seed0"
