"""Your own clips: per-segment features and labels from numpy arrays in a folder, no code to write.

The folder (the manual dir) holds `spec.json` and `train.npz`, `validation.npz`, `test.npz`
(format: README.md beside this file). TFDS features are fixed per builder config, so each folder
gets its own config, made by `config_from_dir`: its name is a hash of spec.json and of the three
.npz files, so that an edited folder is prepared again instead of reusing a stale copy. Every
inconsistency is a `ValueError` (or `FileNotFoundError`) of one line naming the file, the key and,
where there is one, the clip index.
"""

import dataclasses
import hashlib
import json
import math
import re
import zipfile

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

SPEC_FILE = "spec.json"
SPLITS = ("train", "validation", "test")
TASKS = ("classification", "regression")
LABELS_KEY = "labels"  # .npz key of the labels [clips, time]
LENGTHS_KEY = "lengths"  # .npz key of the real segments per clip [clips]
LABEL = "label"  # TFDS feature (and --label) holding a clip's labels
CLIP_INDEX = "clip_index"  # TFDS feature: the clip's row in its .npz file
DEFAULT_LABEL_RANGE = (-1.0, 1.0)
_SPEC_KEYS = ("task", "modalities", "label_range")
# A modality is a flag value (--weak=NAME) and an .npz key, and must not collide with the others.
_MODALITY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED_NAMES = (LABELS_KEY, LENGTHS_KEY, LABEL, CLIP_INDEX)


def split_file(split):
  return f"{split}.npz"


FILES = (SPEC_FILE, *(split_file(split) for split in SPLITS))


@dataclasses.dataclass(frozen=True)
class ClipsSpec:
  """What spec.json says."""
  task: str  # "classification" or "regression"
  modalities: tuple  # (name, feature dimension) pairs, in spec.json's order
  label_range: tuple | None  # (low, high) for regression; None for classification


def missing_files(directory):
  """The entries of FILES that are not under `directory`."""
  directory = epath.Path(directory)
  return [name for name in FILES if not (directory / name).exists()]


def files_needed(names, directory="<manual dir>"):
  """Lines naming each file that must be in the folder (see README.md for the format)."""
  return "\n".join(f"  {epath.Path(directory) / name}" for name in names)


def _spec_error(path, key, message):
  return ValueError(f"{path}: key {key!r}: {message}")


def _read_modalities(path, modalities):
  if not isinstance(modalities, dict) or not modalities:
    raise _spec_error(path, "modalities", 'expected an object {"<name>": <feature dim>, ...} '
                      f"with at least one modality, got {modalities!r}")
  for name, dim in modalities.items():
    if not _MODALITY_NAME.fullmatch(name) or name in _RESERVED_NAMES:
      raise _spec_error(path, "modalities", f"expected names of letters, digits and _ (starting "
                        f"with a letter, none of {', '.join(_RESERVED_NAMES)}), got {name!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
      raise _spec_error(path, "modalities", f"expected a positive integer feature dimension for "
                        f"{name!r}, got {dim!r}")
  return tuple(modalities.items())


def _read_label_range(path, task, label_range):
  if label_range is None:
    return DEFAULT_LABEL_RANGE if task == "regression" else None
  if task != "regression":
    raise _spec_error(path, "label_range", 'applies to "task": "regression" only; remove it')
  valid = (isinstance(label_range, list) and len(label_range) == 2
           and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in label_range))
  if not valid or label_range[0] >= label_range[1]:
    raise _spec_error(path, "label_range", f"expected [low, high], two finite numbers with "
                      f"low < high, got {label_range!r}")
  return (float(label_range[0]), float(label_range[1]))


def read_spec(directory):
  """The ClipsSpec of `directory`/spec.json, checked."""
  path = epath.Path(directory) / SPEC_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path}: missing; expected the folder's description, e.g. "
                            '{"task": "classification", "modalities": {"audio": 88}}')
  try:
    spec = json.loads(path.read_text(encoding="utf-8"))
  except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError.
    raise ValueError(f"{path}: expected JSON ({err})") from None
  if not isinstance(spec, dict):
    raise ValueError(f"{path}: expected a JSON object with the keys {', '.join(_SPEC_KEYS)}, "
                     f"got {type(spec).__name__}")
  for key in spec:
    if key not in _SPEC_KEYS:
      raise _spec_error(path, key, f"unknown; expected only {', '.join(_SPEC_KEYS)}")
  task = spec.get("task")
  if task not in TASKS:
    raise _spec_error(path, "task", f"expected one of {', '.join(map(repr, TASKS))}, got {task!r}")
  modalities = _read_modalities(path, spec.get("modalities"))
  return ClipsSpec(task, modalities, _read_label_range(path, task, spec.get("label_range")))


@dataclasses.dataclass(eq=False, repr=False)
class ClipsConfig(tfds.core.BuilderConfig):
  """The features of one folder: its ClipsSpec."""
  spec: ClipsSpec | None = None

  def __repr__(self):  # TFDS logs it on every run: one short line
    return f"{self.name} ({self.description})"


def _digest(directory):
  """sha256 over spec.json and the three .npz files (names and contents)."""
  directory = epath.Path(directory)
  digest = hashlib.sha256()
  for name in FILES:
    path = directory / name
    if not path.exists():
      raise FileNotFoundError(f"{path}: missing; expected the {name.removesuffix('.npz')} "
                              "split as numpy.savez arrays (see datasets/clips/README.md)")
    digest.update(name.encode() + b"\0")
    with path.open("rb") as f:
      while chunk := f.read(1 << 20):
        digest.update(chunk)
  return digest.hexdigest()


def config_from_dir(directory):
  """The ClipsConfig of a folder; its name changes whenever any of its files does."""
  spec = read_spec(directory)
  digest = _digest(directory)
  return ClipsConfig(name=f"spec_{digest[:16]}", spec=spec,
                     description=f"{spec.task}, modalities {dict(spec.modalities)}, files sha256 "
                     f"{digest}")


def _load_npz(path):
  """{key: array} of an .npz file."""
  if not path.exists():
    raise FileNotFoundError(f"{path}: missing; expected numpy.savez arrays")
  try:
    with path.open("rb") as f:
      loaded = np.load(f, allow_pickle=False)
      if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("holds a single array")
      with loaded:
        arrays = {}
        for key in loaded.files:
          try:
            arrays[key] = loaded[key]
          except ValueError as err:  # object arrays: numpy refuses to unpickle them
            raise ValueError(f"{path}: key {key!r}: expected a numeric array ({err})") from None
        return arrays
  except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
    if str(err).startswith(str(path)):
      raise
    raise ValueError(f"{path}: expected an .npz file written by numpy.savez ({err})") from None


def _error(path, key, message, clip=None, segment=None):
  where = "" if clip is None else f", clip {clip}" + ("" if segment is None else
                                                      f", segment {segment}")
  return ValueError(f"{path}: key {key!r}{where}: {message}")


def _check_keys(path, arrays, spec):
  expected = [LABELS_KEY, LENGTHS_KEY, *(name for name, _ in spec.modalities)]
  for key in expected:
    if key not in arrays:
      raise _error(path, key, f"missing; expected the keys {', '.join(expected)}, found "
                   f"{', '.join(sorted(arrays)) or 'none'}")
  for key in sorted(arrays):
    if key not in expected:
      raise _error(path, key, f"not a modality of {SPEC_FILE}; expected only the keys "
                   f"{', '.join(expected)}")


def _check_lengths(path, lengths):
  if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
    raise _error(path, LENGTHS_KEY, f"expected a 1-D integer array [clips], got "
                 f"{lengths.dtype} of shape {list(lengths.shape)}")
  if not len(lengths):
    raise _error(path, LENGTHS_KEY, "expected at least one clip, got an empty split")


def _as_float32(path, key, values, expected_shape, what):
  if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
    raise _error(path, key, f"expected numbers, got dtype {values.dtype}")
  if list(values.shape) != expected_shape:
    raise _error(path, key, f"expected shape {what} = {expected_shape}, got "
                 f"{list(values.shape)}")
  with np.errstate(over="ignore", invalid="ignore"):  # Overflow to inf is reported by the caller.
    return values.astype(np.float32)


def _first_bad(path, key, bad, values, message):
  """Raises naming the first (clip, segment) where `bad` holds."""
  if bad.any():
    clip, segment = np.argwhere(bad)[0][:2]
    raise _error(path, key, f"{message}, got {values[clip, segment]}", clip, segment)


def _check_split(path, arrays, spec):
  """Checks one split; returns (lengths, labels, {modality: features}), float32."""
  _check_keys(path, arrays, spec)
  lengths = arrays[LENGTHS_KEY]
  _check_lengths(path, lengths)
  labels = arrays[LABELS_KEY]
  clips = len(lengths)
  time = labels.shape[1] if labels.ndim == 2 else "time"
  labels = _as_float32(path, LABELS_KEY, labels, [clips, time], "[clips, time] (clips as "
                       f"{LENGTHS_KEY!r})")
  for clip, length in enumerate(lengths):
    if not 1 <= length <= time:
      raise _error(path, LENGTHS_KEY, f"expected 1 to {time} real segments (the time axis of "
                   f"{LABELS_KEY!r}), got {length}", clip)
  real = np.arange(time)[None, :] < lengths[:, None]
  _first_bad(path, LABELS_KEY, real & ~np.isfinite(labels), arrays[LABELS_KEY],
             "expected a finite label in a real segment")
  if spec.task == "classification":
    _first_bad(path, LABELS_KEY, real & (labels != 0) & (labels != 1), labels,
               "expected a classification label, 0 or 1")
  else:
    low, high = spec.label_range
    _first_bad(path, LABELS_KEY, real & ((labels < low) | (labels > high)), labels,
               f"expected a label in the label_range [{low:g}, {high:g}] of {SPEC_FILE}")
  features = {}
  for name, dim in spec.modalities:
    values = _as_float32(path, name, arrays[name], [clips, time, dim],
                         f"[clips, time, dim] (clips and time as {LABELS_KEY!r}, dim from "
                         f"{SPEC_FILE})")
    bad = real[:, :, None] & ~np.isfinite(values)
    if bad.any():
      clip, segment, column = np.argwhere(bad)[0]
      raise _error(path, name, f"expected finite features in a real segment, got "
                   f"{arrays[name][clip, segment, column]} in feature {column}", clip, segment)
    features[name] = values
  return lengths, labels, features


class Builder(tfds.core.GeneratorBasedBuilder):
  """Clips of your own; one example per clip. Build it with `config=config_from_dir(folder)`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: spec.json and train/validation/test .npz files."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put spec.json, train.npz, validation.npz and test.npz in a folder (format: "
      "datasets/clips/README.md or docs/own_data.md) and pass it as the manual dir.")

  def _info(self):
    if self.builder_config is None:
      raise ValueError("The clips builder needs config=config_from_dir(<folder>): its features "
                       "come from the folder's spec.json")
    spec = self.builder_config.spec
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            CLIP_INDEX: tfds.features.Scalar(dtype=np.int64),
            **{name: tfds.features.Tensor(shape=(None, dim), dtype=np.float32)
               for name, dim in spec.modalities},
            LABEL: tfds.features.Tensor(shape=(None,), dtype=np.float32),
        }),
        description="Clips of your own, per-segment features and labels (see README.md).",
    )

  def _split_generators(self, dl_manager):
    directory = dl_manager.manual_dir
    spec = self.builder_config.spec
    # Every split is read and checked before any example is written.
    splits = {}
    for split in SPLITS:
      path = directory / split_file(split)
      splits[split] = _check_split(path, _load_npz(path), spec)
    return {split: self._generate_examples(*arrays) for split, arrays in splits.items()}

  def _generate_examples(self, lengths, labels, features):
    for clip, length in enumerate(lengths):
      yield clip, {CLIP_INDEX: clip, LABEL: labels[clip, :length],
                   **{name: values[clip, :length] for name, values in features.items()}}
