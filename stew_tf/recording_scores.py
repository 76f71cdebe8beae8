"""Recordings in, traces out, for stew_tf.predict --audio: the exported feature recipe applied to
WAV files, the features cut into the consecutive clips the model was tested on, one score per
40 ms frame, written as CSV and drawn as a figure."""

import csv
import dataclasses
import os

import numpy as np

from stew_tf import audio_features
from stew_tf import clip_files
from stew_tf import tfds_builders
from stew_tf.clip_files import InputError


@dataclasses.dataclass
class Trace:
  """One recording's predictions: a score per frame (at `times`, seconds)."""
  recording: str  # the file name without its folder and extension (recording_name)
  times: np.ndarray
  scores: np.ndarray


def audio_files(path):
  """The WAV files to score: `path` itself, or every .wav file in the folder `path`."""
  if os.path.isdir(path):
    files = sorted(os.path.join(path, name) for name in os.listdir(path)
                   if name.lower().endswith(".wav"))
    if not files:
      raise InputError(f"{path}: no .wav file in this folder; expected WAV recordings")
    return files
  if not os.path.isfile(path):
    raise InputError(f"{path}: no such file or folder; expected a WAV file or a folder of them")
  return [path]


def recording_name(path):
  return os.path.splitext(os.path.basename(path))[0]


def recording_clips(path, recipe):
  """(frame times, Clips): the recording's features cut into consecutive clips of the recipe's
  length (a shorter tail joins the last clip, as the recordings builder cuts test recordings)."""
  if recipe.mode != audio_features.FRAMES:
    raise InputError(f"{path}: the export's recipe is per segment; predict --audio scores "
                     "models of continuous (time,<label>) labels only")
  try:
    samples = audio_features.read_wav(path, recipe.sample_rate)
    duration = len(samples) / recipe.sample_rate
    if duration < recipe.window_seconds:
      raise InputError(f"{path}: {duration:.2f} s long; expected at least one "
                       f"{recipe.window_seconds:g} s feature window")
    features = audio_features.frame_features(samples, recipe)
  except audio_features.AudioError as error:
    raise InputError(str(error)) from None
  clips = tfds_builders.builder_module("recola").consecutive_clips(len(features),
                                                                   recipe.clip_frames)
  arrays = [features[start:end] for start, end in clips]
  ids = [str(index) for index in range(len(arrays))]
  return np.arange(len(features)) * recipe.hop_seconds, clip_files.pad_clips(ids, arrays)


def check_outputs(output, plot):
  if output and os.path.splitext(output)[1].lower() != ".csv":
    raise InputError(f"{output}: unknown output format; expected a .csv file (recording,time,"
                     "score)")
  for path in (output, plot):
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    if folder and not os.path.isdir(folder):
      raise InputError(f"{path}: folder {folder} does not exist; expected an existing folder")


def format_traces(traces):
  """CSV lines: recording,time,score, one per frame."""
  lines = ["recording,time,score"]
  for trace in traces:
    lines += [f"{trace.recording},{t:.2f},{s:.6f}" for t, s in zip(trace.times, trace.scores)]
  return lines


def write_traces(path, traces):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    for line in format_traces(traces):
      writer.writerow(line.split(","))


def plot_traces(path, traces, label="prediction"):
  """One panel per recording: its predicted trace over time."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  figure, axes = pyplot.subplots(len(traces), 1, figsize=(8, 1.6 + 1.4 * len(traces)),
                                 squeeze=False, sharex=True)
  for axis, trace in zip(axes[:, 0], traces):
    axis.plot(trace.times, trace.scores, linewidth=1)
    axis.set_title(trace.recording, fontsize=9)
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
  axes[-1, 0].set_xlabel("time (s)")
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  pyplot.close(figure)
