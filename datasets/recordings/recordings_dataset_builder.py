"""recordings: a corpus of WAV recordings with labels and timestamped feature tables, prepared once.

The manual dir holds spec.json, splits.csv, labels/<rec>.csv, audio/<rec>.wav and any number of
<modality>/<rec>.csv tables (README.md). Audio becomes eGeMAPS features (stew_tf.audio_features);
every other modality is resampled onto the same 40 ms frames (continuous labels) or averaged over
each segment (segment labels). Continuous recordings are cut into clips as the RECOLA builder cuts
them: a 3 s window every 1 s for train, consecutive 3 s clips otherwise; a segment-labelled
recording is one clip of its segments.

Each corpus gets its own config (`config_from_dir`), named by a hash of all its files, of the
feature recipe (extractor name and version included) and of the annotation delay: an edited
corpus, another window or delay, or another extractor is prepared again, never served from a
stale copy.
"""

import dataclasses
import hashlib
import json
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from stew_tf import audio_features
from . import corpus
from ..recola import recola_dataset_builder as recola

CLIP_ID = "clip_id"


@dataclasses.dataclass(frozen=True)
class FolderSpec:
  """What stew_tf needs of a corpus (stew_tf.data.get_spec)."""
  task: str
  label: str
  modalities: tuple  # (name, dim) pairs, audio first
  label_range: tuple | None


def read_spec(root):
  spec = corpus.read_spec(root)
  return FolderSpec(spec.task, spec.label, tuple(corpus.modality_dims(root).items()),
                    spec.label_range)


def _label_mode(root, splits):
  """FRAMES (time,<label>) or SEGMENTS (start,end,<label>), from the first recording's labels."""
  first = pathlib.Path(root) / corpus.LABELS_DIR / f"{splits['train'][0]}.csv"
  header = corpus.read_header(first) if first.is_file() else []
  if corpus.TIME in header:
    return audio_features.FRAMES
  if corpus.START in header and corpus.END in header:
    return audio_features.SEGMENTS
  raise ValueError(f"{first}, line 1: header {','.join(header) or '(none)'}; expected a 'time' "
                   "column (time,<label>) or 'start' and 'end' columns (start,end,<label>)")


def recording_settings(root, window_seconds=None, annotation_delay=None):
  """(window_seconds, annotation_delay) that the continuous labels of the corpus under `root` are
  prepared with. Each one given here (stew_tf.main's --recording_window and --annotation_delay)
  wins; else spec.json's key of the same name; else the default (AVEC 2016's window for the
  label, audio_features.default_window; 0 s). None for segment labels, to which neither applies:
  giving one is a ValueError."""
  spec = corpus.read_spec(root)
  if _label_mode(root, corpus.read_splits(root)) == audio_features.FRAMES:
    return (_first_given(window_seconds, spec.window_seconds,
                         audio_features.default_window(spec.label)),
            _first_given(annotation_delay, spec.annotation_delay, 0.0))
  for flag, key, value, in_spec in (
      ("--recording_window", "window_seconds", window_seconds, spec.window_seconds),
      ("--annotation_delay", "annotation_delay", annotation_delay, spec.annotation_delay)):
    where = (f"{flag}={value:g}" if value is not None else
             f"{pathlib.Path(root) / corpus.SPEC_FILE}: key {key!r}" if in_spec is not None
             else None)
    if where:
      raise ValueError(f"{where}: the corpus's labels are per segment (start,end,<label>); "
                       "expected it with time-continuous labels (time,<label>) only")
  return None


def _first_given(*values):
  return float(next(value for value in values if value is not None))


def feature_recipe(root, window_seconds=None, annotation_delay=None):
  """The audio_features.Recipe that the corpus under `root` is prepared with (the settings as
  `recording_settings` takes them)."""
  return _recipe(recording_settings(root, window_seconds, annotation_delay))


def _recipe(settings):
  if settings is None:
    return audio_features.recipe(audio_features.SEGMENTS)
  return audio_features.recipe(audio_features.FRAMES, settings[0])


@dataclasses.dataclass(eq=False, repr=False)
class RecordingsConfig(tfds.core.BuilderConfig):
  """One corpus: its spec, modality dimensions and feature recipe."""
  spec: corpus.CorpusSpec | None = None
  dims: tuple = ()  # (modality, dim) pairs
  recipe: audio_features.Recipe | None = None
  annotation_delay: float = 0.0  # seconds; frame t gets the label of t + delay

  def __repr__(self):  # TFDS logs it: one short line
    return f"{self.name} ({self.description})"


def _digest(root, settings_json):
  """sha256 over the settings and every file of the corpus (relative names and contents)."""
  root = pathlib.Path(root)
  digest = hashlib.sha256(settings_json.encode())
  for path in sorted(p for p in root.rglob("*") if p.is_file()):
    digest.update(str(path.relative_to(root)).encode() + b"\0")
    with path.open("rb") as f:
      while chunk := f.read(1 << 20):
        digest.update(chunk)
  return digest.hexdigest()


def config_from_dir(root, window_seconds=None, annotation_delay=None):
  """The RecordingsConfig of a corpus folder (the settings as `recording_settings` takes them);
  its name changes with any file, the recipe or the annotation delay."""
  spec = corpus.read_spec(root)
  dims = tuple(corpus.modality_dims(root).items())
  settings = recording_settings(root, window_seconds, annotation_delay)
  recipe = _recipe(settings)
  delay = settings[1] if settings else 0.0
  digest = _digest(root, json.dumps({"recipe": json.loads(recipe.to_json()),
                                     "annotation_delay": delay}, sort_keys=True))
  what = (f"window {recipe.window_seconds:g} s, annotation delay {delay:g} s"
          if recipe.mode == audio_features.FRAMES else "one vector per segment")
  return RecordingsConfig(
      name=f"corpus_{digest[:16]}", spec=spec, dims=dims, recipe=recipe, annotation_delay=delay,
      description=f"{spec.task} {spec.label}, modalities {dict(dims)}, {recipe.mode} of "
      f"{recipe.feature_set} ({recipe.extractor}, {what}), sha256 {digest}")


class Builder(tfds.core.GeneratorBasedBuilder):
  """Recordings of your own; build it with `config=config_from_dir(folder)`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: WAV recordings, labels and feature tables."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put spec.json, splits.csv, labels/, audio/ and any <modality>/ tables in a folder "
      "(layout: datasets/recordings/README.md) and pass it as the manual dir.")

  def _info(self):
    if self.builder_config is None:
      raise ValueError("The recordings builder needs config=config_from_dir(<folder>)")
    config = self.builder_config
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            CLIP_ID: tfds.features.Text(),
            **{name: tfds.features.Tensor(shape=(None, dim), dtype=np.float32)
               for name, dim in config.dims},
            config.spec.label: tfds.features.Tensor(shape=(None,), dtype=np.float32),
        }),
        description="Recordings of your own (see README.md).")

  def _split_generators(self, dl_manager):
    root = pathlib.Path(dl_manager.manual_dir)
    splits = corpus.read_splits(root)
    # Every recording is read and its features computed before any example is written.
    loaded = {split: [(name, load_recording(root, name, self.builder_config))
                      for name in names] for split, names in splits.items()}
    return {split: self._generate_examples(recordings, split == "train")
            for split, recordings in loaded.items()}

  def _generate_examples(self, recordings, train):
    config = self.builder_config
    window = config.recipe.clip_frames
    for name, (features, labels) in recordings:
      if config.recipe.mode == audio_features.SEGMENTS:
        clips = [(0, len(labels))]
      elif train:
        clips = recola.sliding_clips(len(labels), window, round(window / 3))
      else:
        clips = recola.consecutive_clips(len(labels), window)
      for index, (start, end) in enumerate(clips):
        clip_id = f"{name}/{index:04d}"
        yield clip_id, {CLIP_ID: clip_id, config.spec.label: labels[start:end],
                        **{m: values[start:end] for m, values in features.items()}}


def load_recording(root, name, config):
  """({modality: float32 [frames or segments, dim]}, float32 labels) of one recording."""
  audio_path = root / corpus.AUDIO_DIR / f"{name}.wav"
  recipe = config.recipe
  try:
    samples = audio_features.read_wav(str(audio_path), recipe.sample_rate)
    duration = len(samples) / recipe.sample_rate
    shortest = max(recipe.window_seconds, audio_features.CLIP_SECONDS)
    if recipe.mode == audio_features.FRAMES and duration < shortest:
      raise audio_features.AudioError(f"{audio_path}: {duration:.2f} s long; expected at least "
                                      f"{shortest:g} s (one feature window and one clip)")
    labels_path = root / corpus.LABELS_DIR / f"{name}.csv"
    if recipe.mode == audio_features.FRAMES:
      return _frames(root, name, config, samples, duration, audio_path, labels_path)
    return _segments(root, name, config, samples, duration, audio_path, labels_path)
  except audio_features.AudioError as error:
    message = str(error)
    raise ValueError(message if message.startswith(str(audio_path)) else
                     f"{audio_path}: {message}") from None


def _checked_labels(path, values, lines, spec):
  if spec.task == "classification":
    bad = np.flatnonzero((values != 0) & (values != 1))
    expected = "0 or 1"
  else:
    low, high = spec.label_range
    bad = np.flatnonzero((values < low) | (values > high))
    expected = f"a value in [{low:g}, {high:g}] (spec.json's label_range)"
  if bad.size:
    raise ValueError(f"{path}, line {lines[bad[0]]}: label {values[bad[0]]:g}; expected "
                     f"{expected}")
  return values


def _label_column(path, header, label, columns):
  if label not in header:
    raise ValueError(f"{path}, line 1: header {','.join(header)}; expected {columns}")
  return header.index(label)


def _frames(root, name, config, samples, duration, audio_path, labels_path):
  spec = config.spec
  expected = f"columns time,{spec.label}"
  header = corpus.read_csv(labels_path)[0]
  times, values, lines = corpus.timed_values(labels_path, expected)
  column = _label_column(labels_path, header, spec.label, expected)
  column -= header.index(corpus.TIME) < column  # the time column was removed
  labels = _checked_labels(labels_path, values[:, column], lines, spec)
  corpus.check_covers(labels_path, times, duration, audio_path)
  frame_times = np.arange(audio_features.num_frames(duration)) * audio_features.FRAME_SECONDS
  shifted = frame_times + config.annotation_delay  # past the last rating, the last one holds
  if spec.task == "classification":  # a class holds until the next rating
    frame_labels = labels[np.clip(np.searchsorted(times, shifted, "right") - 1, 0, None)]
  else:
    frame_labels = np.interp(shifted, times, labels)
  features = {corpus.AUDIO: audio_features.frame_features(samples, config.recipe)}
  for modality, folder in corpus.modality_folders(root).items():
    path = folder / f"{name}.csv"
    table_times, table, _ = corpus.timed_values(path, "columns time,<features...>")
    _check_width(path, table, dict(config.dims)[modality])
    corpus.check_covers(path, table_times, duration, audio_path)
    features[modality] = np.stack([np.interp(frame_times, table_times, column)
                                   for column in table.T], axis=1).astype(np.float32)
  return features, frame_labels.astype(np.float32)


def _check_width(path, table, dim):
  if table.shape[1] != dim:
    raise ValueError(f"{path}, line 1: {table.shape[1]} feature columns; expected {dim} as the "
                     "modality's other tables")


def _segments(root, name, config, samples, duration, audio_path, labels_path):
  spec = config.spec
  expected = f"columns start,end,{spec.label}"
  header, values, starts, ends, lines = corpus.read_segments(labels_path, duration, audio_path,
                                                             expected)
  labels = _checked_labels(labels_path, values[:, _label_column(labels_path, header, spec.label,
                                                                 expected)], lines, spec)
  audio = audio_features.segment_features(samples, config.recipe, list(zip(starts, ends)))
  corpus.check_segment_features(labels_path, audio, starts, ends, lines)
  features = {corpus.AUDIO: audio}
  for modality, folder in corpus.modality_folders(root).items():
    path = folder / f"{name}.csv"
    times, table, _ = corpus.timed_values(path, "columns time,<features...>")
    _check_width(path, table, dict(config.dims)[modality])
    rows = []
    for i, (start, end) in enumerate(zip(starts, ends)):
      inside = (times >= start) & (times < end)
      if not inside.any():
        raise ValueError(f"{path}: no row with a time in the segment {start:g}-{end:g} s "
                         f"({labels_path}, line {lines[i]}); expected rows covering every segment")
      rows.append(table[inside].mean(axis=0))
    features[modality] = np.stack(rows).astype(np.float32)
  return features, labels.astype(np.float32)
