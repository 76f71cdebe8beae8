"""Reading and checking a corpus of recordings (layout: README.md beside this file).

Every defect is a ValueError of one line naming the file, the line where there is one, and what
was expected. Nothing here computes audio features: see stew_tf.audio_features.
"""

import csv
import dataclasses
import json
import math
import pathlib
import re

import numpy as np

from stew_tf import audio_features

SPEC_FILE = "spec.json"
SPLITS_FILE = "splits.csv"
LABELS_DIR = "labels"
AUDIO_DIR = "audio"
AUDIO = "audio"  # the modality computed from AUDIO_DIR
SPLITS = ("train", "validation", "test")
TASKS = ("classification", "regression")
DEFAULT_LABEL_RANGE = (-1.0, 1.0)
_SPEC_KEYS = ("task", "label", "label_range", "window_seconds", "annotation_delay")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED = (AUDIO, LABELS_DIR, "clip_id")
TIME, START, END = "time", "start", "end"


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
  """What spec.json says; the last two keys are the corpus's feature recipe."""
  task: str
  label: str
  label_range: tuple | None  # (low, high) for regression
  # Continuous labels only; None when absent (the builder's recording_settings resolves them).
  window_seconds: float | None  # seconds of audio per eGeMAPS functionals vector
  annotation_delay: float | None  # seconds; frame t gets the label of t + delay


def _spec_error(path, key, message):
  return ValueError(f"{path}: key {key!r}: {message}")


def _number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_spec(root):
  """The CorpusSpec of `root`/spec.json, checked."""
  path = pathlib.Path(root) / SPEC_FILE
  if not path.is_file():
    raise FileNotFoundError(f"{path}: missing; expected e.g. "
                            '{"task": "regression", "label": "arousal"}')
  try:
    spec = json.loads(path.read_text(encoding="utf-8"))
  except (ValueError, UnicodeDecodeError) as error:
    raise ValueError(f"{path}: expected JSON ({error})") from None
  if not isinstance(spec, dict):
    raise ValueError(f"{path}: expected a JSON object with the keys {', '.join(_SPEC_KEYS)}")
  for key in spec:
    if key not in _SPEC_KEYS:
      raise _spec_error(path, key, f"unknown; expected only {', '.join(_SPEC_KEYS)}")
  task, label = spec.get("task"), spec.get("label")
  if task not in TASKS:
    raise _spec_error(path, "task", f"expected one of {', '.join(map(repr, TASKS))}, got {task!r}")
  if not isinstance(label, str) or not _NAME.fullmatch(label) or label in _RESERVED:
    raise _spec_error(path, "label", "expected a name of letters, digits and _ (starting with a "
                      f"letter, not {', '.join(_RESERVED)}), got {label!r}")
  label_range = spec.get("label_range")
  if label_range is not None:
    if task != "regression":
      raise _spec_error(path, "label_range", 'applies to "task": "regression" only')
    if (not isinstance(label_range, list) or len(label_range) != 2
        or not all(map(_number, label_range)) or label_range[0] >= label_range[1]):
      raise _spec_error(path, "label_range", f"expected [low, high] with low < high, got "
                        f"{label_range!r}")
  elif task == "regression":
    label_range = DEFAULT_LABEL_RANGE
  window, delay = spec.get("window_seconds"), spec.get("annotation_delay")
  if window is not None and not (_number(window) and audio_features.is_window(window)):
    raise _spec_error(path, "window_seconds", f"expected {audio_features.WINDOW_EXPECTED}, got "
                      f"{window!r}")
  if delay is not None and not (_number(delay) and delay >= 0):
    raise _spec_error(path, "annotation_delay", f"expected seconds >= 0, got {delay!r}")
  return CorpusSpec(task, label, tuple(map(float, label_range)) if label_range else None,
                    None if window is None else float(window),
                    None if delay is None else float(delay))


def read_splits(root):
  """{split: [recording, ...]} from splits.csv; every wav in audio/ must be in one split."""
  root = pathlib.Path(root)
  path = root / SPLITS_FILE
  header, rows = read_csv(path)
  if header[:2] != ["recording", "split"] or len(header) != 2:
    raise ValueError(f"{path}, line 1: header {','.join(header)}; expected recording,split")
  splits, first_line = {split: [] for split in SPLITS}, {}
  for line, (recording, split) in rows:
    if recording in first_line:
      raise ValueError(f"{path}, line {line}: recording {recording!r} is listed again (first at "
                       f"line {first_line[recording]}); expected each recording once")
    if split not in SPLITS:
      raise ValueError(f"{path}, line {line}: split {split!r}; expected one of "
                       f"{', '.join(SPLITS)}")
    audio = root / AUDIO_DIR / f"{recording}.wav"
    if not audio.is_file():
      raise ValueError(f"{path}, line {line}: recording {recording!r} has no audio file "
                       f"{audio}; expected one WAV per listed recording")
    first_line[recording] = line
    splits[split].append(recording)
  for audio in sorted((root / AUDIO_DIR).glob("*.wav")):
    if audio.stem not in first_line:
      raise ValueError(f"{audio}: recording {audio.stem!r} is in no split; expected a row "
                       f"'{audio.stem},<train|validation|test>' in {path}")
  for split, recordings in splits.items():
    if not recordings:
      raise ValueError(f"{path}: no recording in the {split!r} split; expected at least one")
  return splits


def modality_folders(root):
  """{modality: folder} of the timestamped feature tables (every folder but audio/, labels/)."""
  folders = {}
  for folder in sorted(pathlib.Path(root).iterdir()):
    if folder.is_dir() and folder.name not in (AUDIO_DIR, LABELS_DIR):
      if not _NAME.fullmatch(folder.name) or folder.name in _RESERVED:
        raise ValueError(f"{folder}: a modality's folder needs a name of letters, digits and _ "
                         f"starting with a letter (not {', '.join(_RESERVED)})")
      folders[folder.name] = folder
  return folders


def modality_dims(root):
  """{modality: feature dimension}: audio's eGeMAPS and each table folder's columns but time."""
  dims = {AUDIO: audio_features.FEATURE_DIM}
  for name, folder in modality_folders(root).items():
    tables = sorted(folder.glob("*.csv"))
    if not tables:
      raise ValueError(f"{folder}: holds no .csv table; expected <recording>.csv per recording")
    header = read_header(tables[0])
    if TIME not in header or len(header) < 2:
      raise ValueError(f"{tables[0]}, line 1: header {','.join(header)}; expected time,"
                       "<feature columns...>")
    dims[name] = len(header) - 1
  return dims


def read_header(path):
  with open(path, newline="", encoding="utf-8-sig") as f:
    return [cell.strip() for cell in next(csv.reader(f), [])]


def read_csv(path):
  """(header, [(line, cells)]) of a CSV file; blank lines skipped."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f"{path}: missing; expected a CSV file with a header row")
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = [(line, [cell.strip() for cell in row])
              for line, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
  except (UnicodeDecodeError, csv.Error) as error:
    raise ValueError(f"{path}: cannot be read as CSV text ({error})") from None
  if not rows or rows[0][0] != 1:
    raise ValueError(f"{path}, line 1: expected a header row")
  header = rows[0][1]
  for line, cells in rows[1:]:
    if len(cells) != len(header):
      raise ValueError(f"{path}, line {line}: {len(cells)} columns; expected {len(header)} as "
                       "the header")
  if len(rows) < 2:
    raise ValueError(f"{path}: only a header row; expected data rows")
  return header, rows[1:]


def numeric_table(path, columns_expected):
  """(header, float64 [rows, columns], line numbers) of a table of finite numbers."""
  header, rows = read_csv(path)
  values = np.empty((len(rows), len(header)))
  for index, (line, cells) in enumerate(rows):
    for column, cell in enumerate(cells):
      try:
        values[index, column] = value = float(cell)
      except ValueError:
        value = None
      if value is None or not math.isfinite(value):
        raise ValueError(f"{path}, line {line}, column {header[column]!r}: {cell!r}; expected "
                         f"a finite number ({columns_expected})")
  return header, values, [line for line, _ in rows]


def timed_values(path, columns_expected):
  """(times [rows], values [rows, columns], lines) of a table with a `time` column, checked
  to increase."""
  header, values, lines = numeric_table(path, columns_expected)
  if TIME not in header:
    raise ValueError(f"{path}, line 1: header {','.join(header)}; expected a 'time' column "
                     f"({columns_expected})")
  time_column = header.index(TIME)
  times = values[:, time_column]
  back = np.flatnonzero(np.diff(times) <= 0)
  if back.size:
    raise ValueError(f"{path}, line {lines[back[0] + 1]}: time {times[back[0] + 1]:g} after "
                     f"{times[back[0]]:g}; expected increasing times")
  return times, np.delete(values, time_column, axis=1), lines


def check_covers(path, times, duration, audio_path):
  """A table must span the recording, up to one of its own steps at either end."""
  step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
  if times[0] > step + 1e-6 or times[-1] < duration - step - 1e-6:
    raise ValueError(f"{path}: times {times[0]:g} to {times[-1]:g} s do not cover the recording "
                     f"{audio_path} (0 to {duration:.2f} s); expected rows from 0 to its end")


def read_segments(path, duration, audio_path, columns_expected):
  """(header, values, starts, ends, lines) of a start,end,... table of numbers whose segments
  lie within the recording `audio_path` of `duration` seconds."""
  header, values, lines = numeric_table(path, columns_expected)
  if START not in header or END not in header:
    raise ValueError(f"{path}, line 1: header {','.join(header)}; expected {columns_expected}")
  starts, ends = values[:, header.index(START)], values[:, header.index(END)]
  bad = np.flatnonzero((starts < 0) | (ends <= starts) | (ends > duration + 1e-6))
  if bad.size:
    i = bad[0]
    raise ValueError(f"{path}, line {lines[i]}: segment {starts[i]:g}-{ends[i]:g} s; expected "
                     f"0 <= start < end <= {duration:.2f} s ({audio_path})")
  return header, values, starts, ends, lines


def check_segment_features(path, features, starts, ends, lines):
  """openSMILE gives NaN functionals for a segment too short for them: name its line."""
  short = np.flatnonzero(~np.isfinite(features).all(axis=1))
  if short.size:
    i = short[0]
    raise ValueError(f"{path}, line {lines[i]}: segment {starts[i]:g}-{ends[i]:g} s is too "
                     "short for eGeMAPS functionals; expected a longer segment")
