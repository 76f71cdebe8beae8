"""Files of clips in and scores out, for stew_tf.predict: .npy, .npz and .csv readers that check
every value, and .csv/.npy/.json writers. See stew_tf.predict for the formats."""

import csv
import dataclasses
import json
import os
import zipfile

import numpy as np

OUTPUT_FORMATS = (".csv", ".npy", ".json")


class InputError(Exception):
  """A file or folder cannot be used; the one-line message names it and what was expected."""


@dataclasses.dataclass
class Clips:
  """Clips right-padded to a common length, as the serving signature takes them."""
  ids: list  # str per clip
  features: np.ndarray  # float32 [clips, time, D], zeros past each clip's end
  mask: np.ndarray  # bool [clips, time], True on real segments

  @property
  def lengths(self):
    return self.mask.sum(axis=1)


def load_clips(path, feature_dim):
  """Reads a .npy, .npz or .csv file into Clips; raises InputError on anything unexpected."""
  if not os.path.isfile(path):
    raise InputError(f"{path}: no such file; expected a .npy, .npz or .csv file of clips")
  extension = os.path.splitext(path)[1].lower()
  readers = {".npy": _read_npy, ".npz": _read_npz, ".csv": _read_csv}
  if extension not in readers:
    raise InputError(f"{path}: unknown input format {extension!r}; expected a .npy, .npz or "
                     ".csv file")
  clips = readers[extension](path, feature_dim)
  if not clips:
    raise InputError(f"{path}: holds zero clips; expected at least one clip of [time, "
                     f"{feature_dim}] features")
  ids, arrays = [], []
  for clip_id, values, lines in clips:
    ids.append(clip_id)
    arrays.append(_checked_clip(path, clip_id, values, feature_dim, lines))
  return pad_clips(ids, arrays)


def pad_clips(ids, arrays):
  """Right-pads float32 [length, D] arrays with zeros into Clips."""
  time = max(len(a) for a in arrays)
  features = np.zeros((len(arrays), time, arrays[0].shape[-1]), np.float32)
  mask = np.zeros((len(arrays), time), bool)
  for index, values in enumerate(arrays):
    features[index, :len(values)] = values
    mask[index, :len(values)] = True
  return Clips(list(ids), features, mask)


def _checked_clip(path, clip_id, values, feature_dim, lines=None):
  """float32 [length, D] values of one clip, or InputError naming the clip."""
  expected = f"expected [time, {feature_dim}] real numbers per clip"
  dtype = values.dtype
  if dtype == bool or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
    raise InputError(f"{path}: clip {clip_id!r} has dtype {dtype}; {expected} (int or float)")
  if values.ndim != 2:
    raise InputError(f"{path}: clip {clip_id!r} has shape {values.shape}; {expected}")
  if values.shape[1] != feature_dim:
    raise InputError(f"{path}: clip {clip_id!r}: wrong feature dimension: got {values.shape[1]}, "
                     f"model expects {feature_dim}")
  if not len(values):
    raise InputError(f"{path}: clip {clip_id!r} has zero segments; {expected} with time >= 1")
  with np.errstate(over="ignore"):  # values beyond float32 become inf, reported just below
    values = values.astype(np.float32)
  bad = np.argwhere(~np.isfinite(values))
  if len(bad):
    row, column = bad[0]
    where = f"row {row}" + (f" (line {lines[row]})" if lines else "")
    raise InputError(f"{path}: clip {clip_id!r} {where} column {column} is "
                     f"{values[row, column]} (as float32); expected finite numbers")
  return values


def _load_numpy(path):
  """np.load without pickles: an array (.npy) or a dict of arrays (.npz), or InputError."""
  try:
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
      return loaded
    with loaded:
      return {name: loaded[name] for name in loaded.files}
  except ValueError as error:
    # numpy refuses object arrays (dtype object) when pickles are off.
    raise InputError(f"{path}: cannot be read as numeric arrays ({error}); expected int or "
                     "float arrays written by numpy.save / numpy.savez") from None
  except (OSError, EOFError, zipfile.BadZipFile) as error:
    raise InputError(f"{path}: cannot be read ({error}); expected a file written by "
                     "numpy.save / numpy.savez") from None


def _read_npy(path, feature_dim):
  array = _load_numpy(path)
  if isinstance(array, dict):
    raise InputError(f"{path}: is an .npz archive; expected an .npy array (or name it .npz)")
  if array.ndim == 2:
    return [("0", array, None)]
  if array.ndim == 3:
    return [(str(index), clip, None) for index, clip in enumerate(array)]
  raise InputError(f"{path}: array of shape {array.shape}; expected [time, {feature_dim}] "
                   f"(one clip) or [clips, time, {feature_dim}]")


def _read_npz(path, feature_dim):
  arrays = _load_numpy(path)
  if not isinstance(arrays, dict):
    raise InputError(f"{path}: is an .npy array; expected an .npz archive (or name it .npy)")
  if "features" not in arrays:
    if "mask" in arrays:
      raise InputError(f"{path}: has 'mask' but no 'features' array; expected 'features' "
                       f"[clips, time, {feature_dim}] with it")
    return [(name, array, None) for name, array in arrays.items()]
  extra = sorted(set(arrays) - {"features", "mask"})
  if extra:
    raise InputError(f"{path}: has 'features' and also {extra}; expected either 'features' "
                     "(+ 'mask') or one [time, D] array per clip")
  features = arrays["features"]
  if features.ndim != 3:
    raise InputError(f"{path}: 'features' has shape {features.shape}; expected [clips, time, "
                     f"{feature_dim}]")
  if "mask" not in arrays:
    return [(str(index), clip, None) for index, clip in enumerate(features)]
  mask = arrays["mask"]
  if mask.dtype != bool or mask.shape != features.shape[:2]:
    raise InputError(f"{path}: 'mask' is {mask.dtype} {mask.shape}; expected bool "
                     f"{features.shape[:2]} (clips, time of 'features')")
  lengths = mask.sum(axis=1)
  right_padded = np.arange(mask.shape[1]) < lengths[:, None]
  bad = np.flatnonzero((mask != right_padded).any(axis=1))
  if len(bad):
    raise InputError(f"{path}: 'mask' of clip {bad[0]} is not right-padded; expected True on "
                     "the real segments, then False to the end")
  return [(str(index), clip[:length], None)
          for index, (clip, length) in enumerate(zip(features, lengths))]


def is_number(text):
  try:
    float(text)
  except ValueError:
    return False
  return True


def _read_csv(path, feature_dim):
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = [(line, [cell.strip() for cell in row])
              for line, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
  except (UnicodeDecodeError, csv.Error) as error:
    raise InputError(f"{path}: cannot be read as CSV text ({error}); expected UTF-8 rows of "
                     f"{feature_dim} numbers") from None
  expected = f"expected one row per segment with {feature_dim} numeric columns"
  if not rows:
    raise InputError(f"{path}: no data rows; {expected}")
  first = rows[0][1]
  has_ids = first[0] == "clip_id"
  # A header names columns: no number in it (the first cell may be clip_id).
  if has_ids or not any(is_number(cell) for cell in first):
    rows = rows[1:]
    if not rows:
      raise InputError(f"{path}: only a header row; {expected}")
  clips = {}  # clip id -> ([values of each row], [line numbers]), in order of first appearance
  for line, row in rows:
    clip_id, cells = (row[0], row[1:]) if has_ids else ("0", row)
    if len(cells) != feature_dim:
      hint = ("; to group rows into clips, add a header whose first column is clip_id"
              if not has_ids and len(cells) == feature_dim + 1 else "")
      raise InputError(f"{path}: line {line}: wrong feature dimension: got {len(cells)} "
                       f"columns, model expects {feature_dim}{hint}")
    bad = [cell for cell in cells if not is_number(cell)]
    if bad:
      raise InputError(f"{path}: line {line} holds {bad[0]!r}; expected {feature_dim} real "
                       "numbers (int or float) per row")
    values, lines = clips.setdefault(clip_id, ([], []))
    values.append([float(cell) for cell in cells])
    lines.append(line)
  return [(clip_id, np.array(values, np.float64), lines)
          for clip_id, (values, lines) in clips.items()]


def format_scores(ids, scores):
  """One line per clip: the id, a tab, the scores."""
  return [f"{clip_id}\t{' '.join(f'{s:.6f}' for s in row)}" for clip_id, row in zip(ids, scores)]


def write_scores(path, ids, scores):
  """Writes scores as .csv (long format), .npy (NaN-padded) or .json."""
  extension = os.path.splitext(path)[1].lower()
  if extension == ".npy":
    padded = np.full((len(scores), max(len(row) for row in scores)), np.nan, np.float32)
    for index, row in enumerate(scores):
      padded[index, :len(row)] = row
    np.save(path, padded)
  elif extension == ".json":
    with open(path, "w") as f:
      json.dump([{"clip_id": clip_id, "scores": [float(s) for s in row]}
                 for clip_id, row in zip(ids, scores)], f)
  else:
    with open(path, "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["clip_id", "segment", "score"])
      for clip_id, row in zip(ids, scores):
        writer.writerows([clip_id, segment, float(s)] for segment, s in enumerate(row))


def check_output(path):
  extension = os.path.splitext(path)[1].lower()
  if extension not in OUTPUT_FORMATS:
    raise InputError(f"{path}: unknown output format {extension!r}; expected a .csv, .npy or "
                     ".json file")
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise InputError(f"{path}: folder {folder} does not exist; expected an existing folder")
