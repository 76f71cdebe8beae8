"""recola: AVEC 2016 RECOLA features and gold-standard ratings, cut into 3 s clips.

Preprocessing as in the CM-StEW paper (Sec. IV-A), with the choices it leaves open documented in
README.md: labels shifted back by 2.8 s (the last label repeated over the tail), train recordings
cut by a 3 s window every 1 s (299 clips per 7501-frame recording), held-out train recordings
(validation) and dev recordings (test) cut into consecutive 3 s clips.
"""

import dataclasses
import re

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from . import arff_io
# The writer of dummy_data/ holds the AVEC 2016 layout; it imports nothing so it can run alone.
from . import make_dummy_data

FRAME_SECONDS = make_dummy_data.FRAME_SECONDS
FEATURE_DIMS = make_dummy_data.FEATURE_DIMS  # modality -> eGeMAPS / LGBP-TOP / landmark dims
_GOLD_STANDARD_DIR = make_dummy_data.GOLD_STANDARD_DIR
_NUM_VALUES = {None: 1, **FEATURE_DIMS}  # numeric columns besides frameTime; None: gold standard
_TIME_ATTRIBUTE = "frametime"
_RECORDING = re.compile(r"^(train|dev)_(\d+)\.arff$")
_PAPER_RECORDINGS = 9  # per partition


def modality_dims(config_name=None):
  """{modality: feature dimension} (stew_tf reads them from here); one set for both labels."""
  del config_name
  return dict(FEATURE_DIMS)

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
RECOLA is licensed per user: ask its owners for the AVEC 2016 emotion data (an end-user licence
agreement; https://diuf.unifr.ch/main/diva/recola/) and place its feature and rating folders in
the manual dir, unchanged:

  <manual_dir>/features_audio/{arousal,valence}/{train,dev}_{1..9}.arff
  <manual_dir>/features_video_appearance/{arousal,valence}/{train,dev}_{1..9}.arff
  <manual_dir>/features_video_geometric/{arousal,valence}/{train,dev}_{1..9}.arff
  <manual_dir>/ratings_gold_standard/{arousal,valence}/{train,dev}_{1..9}.arff

Other files there (e.g. test_N.arff, which has no ratings) are ignored.
"""


@dataclasses.dataclass(eq=False)
class RecolaConfig(tfds.core.BuilderConfig):
  """One target with its own feature files; lengths count 40 ms frames."""
  target: str = "arousal"
  shift_frames: int = 70  # 2.8 s annotation delay (paper, Sec. IV-A)
  window_frames: int = 75  # 3 s clips
  hop_frames: int = 25  # 1 s hop between train clips
  validation_recordings: tuple = (8, 9)  # train_N held out whole; () for no validation split


def _paper_config(target):
  return RecolaConfig(
      name=target, target=target,
      description=f"{target} in [-1, 1] per 40 ms frame with the features the AVEC 2016 "
      f"baseline provides for {target}; paper preprocessing, train_8 and train_9 held out.")


class Builder(tfds.core.GeneratorBasedBuilder):
  """AVEC 2016 RECOLA: 3 s clips of audio and video features with arousal or valence."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [_paper_config("arousal"), _paper_config("valence")]

  def _info(self):
    target = self.builder_config.target
    if target not in make_dummy_data.TARGETS:
      raise ValueError(f"RecolaConfig.target must be one of {make_dummy_data.TARGETS}, "
                       f"got {target!r}")
    features = {"clip_id": tfds.features.Text()}
    for modality, dim in FEATURE_DIMS.items():
      features[modality] = tfds.features.Tensor(shape=(None, dim), dtype=np.float32)
    features[target] = tfds.features.Tensor(shape=(None,), dtype=np.float32)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage="https://diuf.unifr.ch/main/diva/recola/",
    )

  def _split_generators(self, dl_manager):
    config = self.builder_config
    root = epath.Path(dl_manager.manual_dir)
    recordings = _find_recordings(root, config.target)
    # Every file is found and its header checked before the slow parsing starts.
    for recording in recordings:
      for modality, path in _recording_paths(root, config.target, recording).items():
        _check_columns(arff_io.read_header(path), _NUM_VALUES[modality])
    train, validation, test = [], [], []
    for recording in recordings:
      partition, number = _partition_and_number(recording)
      if partition == "dev":
        test.append(recording)
      elif number in config.validation_recordings:
        validation.append(recording)
      else:
        train.append(recording)
    splits = {"train": (train, self._train_clips), "test": (test, self._eval_clips)}
    if config.validation_recordings:
      splits["validation"] = (validation, self._eval_clips)
    for split, (names, _) in splits.items():
      if not names:
        raise ValueError(f"No recording for the {split!r} split under {root} (found: "
                         f"{', '.join(recordings)}; validation_recordings="
                         f"{config.validation_recordings}).")
    return {split: self._generate_examples(root, names, clips)
            for split, (names, clips) in splits.items()}

  def _train_clips(self, num_frames):
    return sliding_clips(num_frames, self.builder_config.window_frames,
                         self.builder_config.hop_frames)

  def _eval_clips(self, num_frames):
    return consecutive_clips(num_frames, self.builder_config.window_frames)

  def _generate_examples(self, root, recordings, clips):
    config = self.builder_config
    for recording in recordings:
      features, labels = load_recording(root, config.target, recording)
      labels = shift_labels(labels, config.shift_frames)
      for index, (start, end) in enumerate(clips(len(labels))):
        clip_id = f"{recording}/{index:04d}"
        example = {modality: values[start:end] for modality, values in features.items()}
        yield clip_id, {"clip_id": clip_id, config.target: labels[start:end], **example}


def shift_labels(labels, shift):
  """Frame t gets the label of frame t + shift; the last label fills the last `shift` frames.

  Repeating the last label keeps every frame (so a 7501-frame recording still gives the paper's
  299 train clips) without inventing a neutral 0 level at the end.
  """
  if shift <= 0:
    return labels
  tail = np.full(min(shift, len(labels)), labels[-1], dtype=labels.dtype)
  return np.concatenate([labels[shift:], tail])


def sliding_clips(num_frames, window, hop):
  """(start, end) of train clips: one every `hop` frames, the last one ending at the end.

  For 7501 frames, 75 and 25: 298 clips start at 0, 25, ..., 7425, and one more covers the last
  frame (7426-7501), so every frame is in a clip and every clip is 3 s: 299 clips.
  """
  if num_frames <= window:
    return [(0, num_frames)]
  starts = list(range(0, num_frames - window + 1, hop))
  if starts[-1] + window < num_frames:
    starts.append(num_frames - window)
  return [(start, start + window) for start in starts]


def consecutive_clips(num_frames, window):
  """(start, end) of non-overlapping clips; a tail shorter than `window` joins the last clip.

  Every frame is scored exactly once and no clip is shorter than 3 s: a 7501-frame recording gives
  99 clips of 75 frames and one of 76.
  """
  bounds = [i * window for i in range(max(1, num_frames // window))] + [num_frames]
  return list(zip(bounds[:-1], bounds[1:]))


def _recording_paths(root, target, recording):
  """Gold standard (key None) and feature file of each modality of one recording."""
  paths = {None: root / _GOLD_STANDARD_DIR / target / f"{recording}.arff"}
  for modality in FEATURE_DIMS:
    paths[modality] = root / make_dummy_data.feature_dir(modality) / target / f"{recording}.arff"
  return paths


def _partition_and_number(recording):
  partition, number = recording.split("_")
  return partition, int(number)


def _find_recordings(root, target):
  """Names (train_N, dev_N) of the recordings that have any file for `target`, in order."""
  found = set()
  for path in _recording_paths(root, target, "any").values():
    if path.parent.exists():
      found.update(p.stem for p in path.parent.iterdir() if _RECORDING.match(p.name))
  if not found:
    expected = _recording_paths(root, target, "train_1")[None]
    raise ValueError(f"No RECOLA recordings under {root}: expected e.g. {expected}.\n"
                     f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}")
  recordings = sorted(found, key=lambda r: (make_dummy_data.PARTITIONS.index(
      _partition_and_number(r)[0]), _partition_and_number(r)[1]))
  for partition in make_dummy_data.PARTITIONS:
    count = sum(_partition_and_number(r)[0] == partition for r in recordings)
    if count != _PAPER_RECORDINGS:
      logging.warning("%d %s recordings for %s under %s; the paper uses %d.", count, partition,
                      target, root, _PAPER_RECORDINGS)
  for recording in recordings:
    for path in _recording_paths(root, target, recording).values():
      if not path.exists():
        raise ValueError(f"Missing file {path}: recording {recording} has other files for "
                         f"{target}, so it needs this one too (layout: see the builder's "
                         f"MANUAL_DOWNLOAD_INSTRUCTIONS).")
  return recordings


def _check_columns(header, expected):
  """Checks a header: frameTime plus `expected` other numeric attributes."""
  names = [name.lower() for name in header.numeric_names]
  if _TIME_ATTRIBUTE not in names:
    raise ValueError(f"{header.path}, line {header.data_line}: no frameTime attribute before "
                     f"@data; frames are aligned by it (expected '@attribute frameTime numeric')")
  if len(names) - 1 != expected:
    raise ValueError(f"{header.path}, line {header.data_line}: {len(names) - 1} numeric "
                     f"attributes besides frameTime, expected {expected}")


def _values(table):
  """frameTime and the other numeric columns of a table."""
  names = [name.lower() for name in table.header.numeric_names]
  time_column = names.index(_TIME_ATTRIBUTE)
  return table.values[:, time_column], np.delete(table.values, time_column, axis=1)


def load_recording(root, target, recording):
  """Reads one recording: ({modality: float32 [frames, dim]}, float32 labels [frames]).

  Raises ValueError naming the file and line when a file is malformed, a label is missing or out
  of [-1, 1], or a feature file's frames do not line up with the gold standard's by frameTime.
  Missing feature values ('?', NaN, inf; e.g. where the face tracker failed) become 0, like the
  frames that AVEC itself zeroed, and are counted in the log.
  """
  paths = _recording_paths(root, target, recording)
  logging.info("Reading %s %s (%s)", target, recording, paths[None])
  gold = arff_io.read(paths[None])
  _check_columns(gold.header, _NUM_VALUES[None])
  times, labels = _values(gold)
  labels = labels[:, 0]
  bad = np.flatnonzero(~(np.abs(labels) <= 1))  # NaN is bad too.
  if bad.size:
    raise ValueError(f"{gold.path}, line {gold.lines[bad[0]]}: rating {labels[bad[0]]} is not in "
                     f"[-1, 1]")
  # Written as `not <=` so that a missing ('?') time counts as a jump.
  steps = np.flatnonzero(~(np.abs(np.diff(times) - FRAME_SECONDS) <= FRAME_SECONDS / 2))
  if steps.size:
    i = steps[0] + 1
    raise ValueError(f"{gold.path}, line {gold.lines[i]}: frameTime jumps from {times[i - 1]} to "
                     f"{times[i]}; expected one row every {FRAME_SECONDS} s")
  features = {}
  for modality, dim in FEATURE_DIMS.items():
    table = arff_io.read(paths[modality])
    _check_columns(table.header, dim)
    feature_times, values = _values(table)
    _check_aligned(table, feature_times, gold, times)
    missing = ~np.isfinite(values)
    if missing.any():
      logging.warning("%s: %d of %d frames have missing values ('?', NaN or inf), set to 0.",
                      table.path, missing.any(axis=1).sum(), len(values))
      values[missing] = 0
    zero_frames = (values == 0).all(axis=1).sum()
    if zero_frames:
      logging.info("%s: %d of %d frames are all zero (e.g. no face found).", table.path,
                   zero_frames, len(values))
    features[modality] = values.astype(np.float32)
  return features, labels.astype(np.float32)


def _check_aligned(table, feature_times, gold, gold_times):
  if len(feature_times) != len(gold_times):
    raise ValueError(
        f"{table.path}, line {table.lines[-1]}: the feature file ends after {len(feature_times)} "
        f"frames, but its gold standard {gold.path} has {len(gold_times)} (to line "
        f"{gold.lines[-1]}); their frames must line up one to one")
  off = np.flatnonzero(~(np.abs(feature_times - gold_times) < FRAME_SECONDS / 2))  # NaN is off.
  if off.size:
    i = off[0]
    raise ValueError(f"{table.path}, line {table.lines[i]}: frameTime {feature_times[i]} does not "
                     f"match {gold_times[i]} at line {gold.lines[i]} of the gold standard "
                     f"{gold.path}")
