"""Recordings in, traces out, for stew_tf.predict --audio: the exported feature recipe applied to
WAV files, the features cut into the clips the model was tested on, one score per 40 ms frame
(continuous labels) or per segment (segment labels), written as CSV and drawn as a figure."""

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
  """One recording's predictions: a score per frame (at `times`, seconds), or per segment (from
  `times` to `ends`)."""
  recording: str  # the file name without its folder and extension (recording_name)
  times: np.ndarray
  scores: np.ndarray
  ends: np.ndarray | None = None  # None: frames


SEGMENT_COLUMNS = "columns start,end in seconds (any other columns numeric too)"


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


def segment_files(segments, audio_path, files):
  """Each recording's segments file (None: the whole recording is one segment): `segments`
  itself for one WAV file, `segments`/<recording>.csv for a folder of them."""
  if segments is None:
    return [None] * len(files)
  if os.path.isdir(audio_path):
    if not os.path.isdir(segments):
      raise InputError(f"--segments={segments}: not a folder; expected a folder of "
                       f"<recording>.csv, as --audio={audio_path} is a folder")
    paths = [os.path.join(segments, f"{recording_name(file)}.csv") for file in files]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
      raise InputError(f"{missing[0]}: no such file; expected the segments (start,end) of "
                       f"each recording in --audio={audio_path}")
    return paths
  if not os.path.isfile(segments):
    raise InputError(f"--segments={segments}: no such file; expected a CSV file of "
                     f"{SEGMENT_COLUMNS}")
  return [segments]


def recording_clips(path, recipe, segments=None):
  """(starts, ends, Clips) of one recording, cut as the recordings builder cuts test recordings.
  Per frame (ends None): the frame times, and the features in consecutive clips of the recipe's
  length (a shorter tail joins the last clip). Per segment: the segments of the CSV file
  `segments` (None: the whole recording), one clip of them."""
  try:
    samples = audio_features.read_wav(path, recipe.sample_rate)
    duration = len(samples) / recipe.sample_rate
    if recipe.mode == audio_features.SEGMENTS:
      return _segment_clips(path, recipe, segments, samples, duration)
    if duration < recipe.window_seconds:
      raise InputError(f"{path}: {duration:.2f} s long; expected at least one "
                       f"{recipe.window_seconds:g} s feature window")
    features = audio_features.frame_features(samples, recipe)
  except ValueError as error:  # AudioError, and the segments' checks (datasets/recordings)
    raise InputError(str(error)) from None
  clips = tfds_builders.builder_module("recola").consecutive_clips(len(features),
                                                                   recipe.clip_frames)
  arrays = [features[start:end] for start, end in clips]
  ids = [str(index) for index in range(len(arrays))]
  times = np.arange(len(features)) * recipe.hop_seconds
  return times, None, clip_files.pad_clips(ids, arrays)


def _segment_clips(path, recipe, segments, samples, duration):
  # The recordings builder's own reading and checks of start,end tables (datasets/recordings).
  corpus = tfds_builders.builder_module("recordings").corpus
  if segments is None:
    starts, ends = np.array([0.0]), np.array([duration])
  else:
    _, _, starts, ends, lines = corpus.read_segments(segments, duration, path, SEGMENT_COLUMNS)
  features = audio_features.segment_features(samples, recipe, list(zip(starts, ends)))
  if segments is not None:
    corpus.check_segment_features(segments, features, starts, ends, lines)
  elif not np.isfinite(features).all():
    raise InputError(f"{path}: {duration:.2f} s long, too short for eGeMAPS functionals; "
                     "expected a longer recording")
  return starts, ends, clip_files.pad_clips(["0"], [features])


def check_outputs(output, plot):
  if output and os.path.splitext(output)[1].lower() != ".csv":
    raise InputError(f"{output}: unknown output format; expected a .csv file (recording,time,"
                     "score, or recording,start,end,score per segment)")
  for path in (output, plot):
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    if folder and not os.path.isdir(folder):
      raise InputError(f"{path}: folder {folder} does not exist; expected an existing folder")


def format_traces(traces):
  """CSV lines: recording,time,score, one per frame, or recording,start,end,score, one per
  segment (all traces of one export are of one kind)."""
  if traces and traces[0].ends is not None:
    lines = ["recording,start,end,score"]
    for trace in traces:
      lines += [f"{trace.recording},{start:.3f},{end:.3f},{score:.6f}"
                for start, end, score in zip(trace.times, trace.ends, trace.scores)]
    return lines
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
  """One panel per recording: its predicted trace over time (a bar per segment)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  figure, axes = pyplot.subplots(len(traces), 1, figsize=(8, 1.6 + 1.4 * len(traces)),
                                 squeeze=False, sharex=True)
  for axis, trace in zip(axes[:, 0], traces):
    if trace.ends is None:
      axis.plot(trace.times, trace.scores, linewidth=1)
    else:
      axis.hlines(trace.scores, trace.times, trace.ends, linewidth=2)
    axis.set_title(trace.recording, fontsize=9)
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
  axes[-1, 0].set_xlabel("time (s)")
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  pyplot.close(figure)
