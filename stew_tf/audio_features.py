"""Recordings → eGeMAPS features with openSMILE: the one feature recipe that the recordings
builder prepares data with and that stew_tf.predict applies to new audio (it travels with the
export as assets.extra/feature_recipe.json).

Continuous labels (AVEC 2016 style): one 88-d eGeMAPS functionals vector every 40 ms, computed
over a window of `window_seconds` centred on the frame. openSMILE computes all windows in one
pass: its low-level descriptors once per 10 ms, then its own eGeMAPS functionals over each
window of them (frameMode=fixed in the functionals' include file), so the values are the
eGeMAPS functionals of the window's LLDs. Windows never reach past the recording: the first and
last window_seconds / 2 take the first and last full window. Segment labels: one eGeMAPS
functionals vector per segment.

openSMILE, soundfile and audresample are imported on first use only: `import stew_tf` stays free
of them.
"""

import ctypes
import dataclasses
import glob
import importlib.util
import json
import os
import sys
import tempfile

import numpy as np

FEATURE_SET = "eGeMAPSv02"
FEATURE_DIM = 88  # eGeMAPSv02 functionals
FRAME_SECONDS = 0.04  # one vector every 40 ms, as RECOLA's AVEC 2016 features
SAMPLE_RATE = 16000  # every recording is resampled to this rate and mixed down to mono
# Default feature window (--recording_window) by label: AVEC 2016's RECOLA audio features, whose
# centred window was tuned per dimension on the development partition (docs/own_data.md cites it).
AVEC2016_WINDOWS = {"arousal": 4.0, "valence": 6.0}
# Any other label: valence's, the dimension on which the paper's audio is the weak modality.
WINDOW_SECONDS = AVEC2016_WINDOWS["valence"]
CLIP_SECONDS = 3.0  # clips of 75 frames, as the RECOLA builder cuts them
FRAMES, SEGMENTS = "frames", "segments"  # what one feature vector describes
RECIPE_FILE = "feature_recipe.json"
RECIPE_DIR = "assets.extra"  # SavedModel files that the graph does not load (TF Serving ignores)


class AudioError(ValueError):
  """An audio file cannot be used; the one-line message names it and what was expected."""


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How a recording becomes model inputs; equal recipes give equal features."""
  mode: str  # FRAMES (continuous labels) or SEGMENTS (one label per segment)
  window_seconds: float  # FRAMES: functionals window centred on each frame
  hop_seconds: float = FRAME_SECONDS
  clip_frames: int = round(CLIP_SECONDS / FRAME_SECONDS)  # FRAMES: consecutive clips scored
  sample_rate: int = SAMPLE_RATE
  channels: str = "mean of all channels"
  feature_set: str = FEATURE_SET
  feature_level: str = "functionals"
  feature_dim: int = FEATURE_DIM
  extractor: str = ""  # "opensmile <version>", filled by `recipe`
  # The exported model standardises raw features itself (training split's mean and variance).
  normalisation: str = "inside the model: per-dimension mean and variance of the training split"

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"


def _opensmile():
  """The opensmile package. Its library is loaded first with RTLD_DEEPBIND: loaded after
  TensorFlow, it would otherwise bind some of its own symbols to TensorFlow's copies and corrupt
  the heap (measured: malloc aborts; with DEEPBIND the features equal those of a process without
  TensorFlow, bit for bit)."""
  if "opensmile" not in sys.modules:
    spec = importlib.util.find_spec("opensmile")
    if spec is None:
      raise AudioError("the opensmile package is not installed; expected it from "
                       "requirements.txt (pip install -r requirements.txt)")
    pattern = os.path.join(os.path.dirname(spec.origin), "core", "bin", "*", "libSMILEapi.so")
    for library in glob.glob(pattern):
      ctypes.CDLL(library, mode=getattr(os, "RTLD_DEEPBIND", 0) | os.RTLD_LOCAL)
  import opensmile  # pylint: disable=import-outside-toplevel
  return opensmile


def extractor_version():
  return f"opensmile {_opensmile().__version__}"


WINDOW_EXPECTED = f"a positive multiple of {FRAME_SECONDS} s (whole 40 ms frames)"


def is_window(seconds):
  """Whether `seconds` is a feature window: a positive whole number of 40 ms frames."""
  frames = seconds / FRAME_SECONDS
  return seconds > 0 and abs(frames - round(frames)) <= 1e-6


def default_window(label):
  """Seconds of the default feature window for continuous labels named `label`."""
  return AVEC2016_WINDOWS.get(label.lower(), WINDOW_SECONDS)


def recipe(mode, window_seconds=WINDOW_SECONDS):
  """The Recipe of this extractor; raises AudioError on a window that is not `is_window`."""
  if not is_window(window_seconds):
    raise AudioError(f"window_seconds={window_seconds}: expected {WINDOW_EXPECTED}")
  return Recipe(mode=mode, window_seconds=float(window_seconds), extractor=extractor_version())


def write_recipe(folder, feature_recipe):
  os.makedirs(os.path.join(folder, RECIPE_DIR), exist_ok=True)
  with open(os.path.join(folder, RECIPE_DIR, RECIPE_FILE), "w") as f:
    f.write(feature_recipe.to_json())


def read_recipe(saved_model_dir):
  """The Recipe exported beside `saved_model_dir`'s saved_model.pb; AudioError if none."""
  path = os.path.join(saved_model_dir, RECIPE_DIR, RECIPE_FILE)
  if not os.path.isfile(path):
    raise AudioError(f"{saved_model_dir}: the export has no feature recipe ({RECIPE_DIR}/"
                     f"{RECIPE_FILE}); expected a model trained on --dataset=recordings")
  try:
    with open(path) as f:
      return Recipe(**json.load(f))
  except (ValueError, TypeError) as error:
    raise AudioError(f"{path}: not a feature recipe ({error}); expected the JSON that "
                     "stew_tf.export writes") from None


def read_wav(path, sample_rate=SAMPLE_RATE):
  """float32 mono samples of an audio file at `sample_rate` (channels averaged, resampled)."""
  import audresample  # pylint: disable=import-outside-toplevel
  import soundfile  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(path):
    raise AudioError(f"{path}: no such file; expected a WAV recording")
  try:
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise AudioError(f"{path}: cannot be read as audio ({reason}); expected a WAV file "
                     "(PCM or float, mono or stereo, any sample rate)") from None
  if not len(samples):
    raise AudioError(f"{path}: holds no samples; expected a WAV recording")
  mono = samples.mean(axis=1)
  if rate != sample_rate:
    mono = audresample.resample(mono, rate, sample_rate)[0]
  if not np.isfinite(mono).all():
    raise AudioError(f"{path}: holds NaN or infinite samples; expected finite audio")
  return np.clip(mono, -1.0, 1.0).astype(np.float32)


def num_frames(duration_seconds):
  """Frames at 0, 40 ms, ... up to the recording's end (7501 for 5 minutes, as RECOLA)."""
  return int(np.floor(duration_seconds / FRAME_SECONDS + 1e-9)) + 1


def _smile(feature_recipe, folder):
  """An opensmile.Smile computing eGeMAPS functionals (over fixed windows in FRAMES mode)."""
  opensmile = _opensmile()
  options = {}
  if feature_recipe.mode == FRAMES:
    include = os.path.join(folder, "frame_mode.conf.inc")
    with open(include, "w") as f:
      f.write(f"frameMode = fixed\nframeSize = {feature_recipe.window_seconds}\n"
              f"frameStep = {feature_recipe.hop_seconds}\nframeCenterSpecial = left\n")
    options["frameModeFunctionalsConf"] = include
  return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                         feature_level=opensmile.FeatureLevel.Functionals, options=options)


def frame_features(samples, feature_recipe):
  """float32 [num_frames, 88]: frame k's window is centred on k * 40 ms, clamped to the
  recording (which must be at least one window long)."""
  duration = len(samples) / feature_recipe.sample_rate
  if duration + 1e-9 < feature_recipe.window_seconds:
    raise AudioError(f"{duration:.2f} s long; expected at least one "
                     f"{feature_recipe.window_seconds:g} s feature window")
  with tempfile.TemporaryDirectory() as folder:
    windows = _smile(feature_recipe, folder).process_signal(
        samples, feature_recipe.sample_rate).to_numpy(np.float32)
  # Window j starts at j * hop: frame k takes the window starting half a window before it.
  half = feature_recipe.window_seconds / 2
  starts = np.arange(num_frames(duration)) * feature_recipe.hop_seconds - half
  index = np.clip(np.round(starts / feature_recipe.hop_seconds), 0, len(windows) - 1)
  return windows[index.astype(int)]


def segment_features(samples, feature_recipe, segments):
  """float32 [segments, 88]: eGeMAPS functionals of each (start, end) in seconds; NaN rows where
  a segment is too short for openSMILE."""
  rate = feature_recipe.sample_rate
  with tempfile.TemporaryDirectory() as folder:
    smile = _smile(feature_recipe, folder)
    rows = []
    for start, end in segments:
      piece = samples[int(round(start * rate)):int(round(end * rate))]
      rows.append(smile.process_signal(piece, rate).to_numpy(np.float32)[0] if len(piece)
                  else np.full(FEATURE_DIM, np.nan, np.float32))
  return np.stack(rows)
