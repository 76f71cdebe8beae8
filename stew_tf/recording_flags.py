"""--recording_window and --annotation_delay: how --dataset=recordings turns a corpus's audio and
ratings into frames (cli_flags.py resolves them into the config)."""

import math

from absl import flags

from stew_tf import audio_features
from stew_tf import data

NAMES = ("recording_window", "annotation_delay")


def define(fv):
  """Defines the flags and their checks on `fv`."""
  flags.DEFINE_float("recording_window", None, "--dataset=recordings, continuous labels: seconds "
                     "of audio over which each 40 ms frame's eGeMAPS functionals are computed, "
                     "a multiple of 0.04. Default: the corpus's spec.json window_seconds, else "
                     "AVEC 2016's for the spec.json label: "
                     f"{audio_features.default_window('arousal'):g} for arousal, "
                     f"{audio_features.default_window('valence'):g} for valence and any other "
                     "label (docs/own_data.md cites it).",
                     flag_values=fv)
  flags.DEFINE_float("annotation_delay", None, "--dataset=recordings, continuous labels: seconds "
                     "to shift the labels by (frame t gets the label rated at t + delay: raters "
                     "react late; the RECOLA builder's is the paper's 2.8). Default: the corpus's "
                     "spec.json annotation_delay, else 0.", flag_values=fv)
  flags.register_validator("recording_window",
                           lambda v: v is None or audio_features.is_window(v),
                           f"expected seconds, {audio_features.WINDOW_EXPECTED}", flag_values=fv)
  flags.register_validator("annotation_delay",
                           lambda v: v is None or (math.isfinite(v) and v >= 0),
                           "expected seconds >= 0", flag_values=fv)
  flags.register_multi_flags_validator(["dataset", *NAMES], _check_dataset, flag_values=fv)


def _check_dataset(values):
  """The flags shape a corpus of recordings; other datasets come prepared."""
  given = [f"--{name}" for name in NAMES if values[name] is not None]
  if given and data.DATASETS[values["dataset"]].builder != "recordings":
    one = len(given) == 1
    raise flags.ValidationError(
        f"{' and '.join(given)} {'applies' if one else 'apply'} to --dataset=recordings only; "
        f"expected {'it' if one else 'them'} left out with --dataset={values['dataset']}, whose "
        "features and labels come prepared")
  return True
