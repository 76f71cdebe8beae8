"""Dataset name → TFDS builder → padded tf.data batches.

Each batch is a dict: `features` ({modality: float32 [B, T, D]}), `mask` (bool [B, T], True on
real segments, always right-padded so that the GRUs can take the cuDNN path) and `labels`
(float32 [B, T]); a training split of an aligned stage adds `teacher_latents` ({strong modality:
float32 [B, T, 100]}, one per teacher, see Split.with_teacher_latents).
"""

import dataclasses
import os

from google.protobuf import json_format
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from stew_tf import paper
from stew_tf import tasks
from stew_tf import tfds_builders


class DataError(Exception):
  """Data cannot be found or prepared; the message says what the user should do."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What stew_tf needs to know about one dataset beyond its TFDS features."""
  builder: str  # folder under datasets/
  config: str | None  # TFDS builder config; None: the config is named after --label
  labels: tuple  # target names; the first is the default --label
  task: str  # a row of tasks.py
  needs_files: bool  # real data: placed in --manual_dir or fetched with --download
  learning_rate: float  # default --learning_rate (the paper's for real data)
  epochs: int  # default --epochs
  paper_dataset: str | None  # whose architecture the paper's settings give (paper.py), if any
  # Per-label exceptions to `task`, and the value range of regression labels (the task's default
  # otherwise).
  label_tasks: tuple = ()  # (label, task) pairs
  label_ranges: tuple = ()  # (label, (low, high)) pairs
  modalities: dict | None = None  # name -> feature dimension, read from the builder by get_spec

  def task_of(self, label):
    """The task (a tasks.TASKS key) of `label`."""
    return dict(self.label_tasks).get(label, self.task)

  def label_range(self, label):
    """(low, high) of a regression label; None for classification."""
    default = tasks.get(self.task_of(label)).default_label_range
    return tuple(dict(self.label_ranges).get(label, default)) if default else None


DATASETS = {
    # noisy_labels: 40 % of the train and validation labels flipped, test labels clean. 3e-3 and
    # 60 epochs: an epoch is 5 steps, and the teacher's dense signal needs more
    # (docs/positive_control.md).
    "stew_synthetic": DatasetSpec(
        builder="stew_synthetic", config="noisy_labels", labels=("sentiment",),
        task="classification", needs_files=False, learning_rate=3e-3, epochs=60,
        paper_dataset="mosi"),
    # The default data of stew_tf 0.5.0 and before (tests/test_numbers_unchanged.py).
    "stew_synthetic/mosi_like": DatasetSpec(
        builder="stew_synthetic", config="mosi_like", labels=("sentiment",),
        task="classification", needs_files=False, learning_rate=1e-3, epochs=25,
        paper_dataset="mosi"),
    "stew_synthetic/recola_like": DatasetSpec(
        builder="stew_synthetic", config="recola_like", labels=("arousal", "valence"),
        task="regression", needs_files=False, learning_rate=1e-3, epochs=25,
        paper_dataset="recola"),
    # sentiment: binary (score >= 0); sentiment_score: the annotators' mean score in [-3, 3].
    "mosi": DatasetSpec(
        builder="mosi", config=None, labels=("sentiment", "sentiment_score"),
        task="classification", needs_files=True, learning_rate=paper.LEARNING_RATE["mosi"],
        epochs=100, paper_dataset="mosi", label_tasks=(("sentiment_score", "regression"),),
        label_ranges=(("sentiment_score", (-3.0, 3.0)),)),
    "recola": DatasetSpec(
        builder="recola", config="label", labels=("arousal", "valence"), task="regression",
        needs_files=True, learning_rate=paper.LEARNING_RATE["recola"], epochs=100,
        paper_dataset="recola"),
    # Your own clips (datasets/clips, docs/own_data.md): a placeholder; get_spec reads the real
    # modalities, task and label range from --manual_dir/spec.json. Defaults (our choice): the
    # learning rate and epochs that train the small synthetic data; early stopping ends sooner.
    "clips": DatasetSpec(
        builder="clips", config=None, labels=("label",), task="classification",
        needs_files=True, learning_rate=1e-3, epochs=50, paper_dataset=None),
    # Your own recordings (datasets/recordings, docs/own_data.md): like "clips", the modalities,
    # label, task and range come from --manual_dir (spec.json and the modality folders).
    "recordings": DatasetSpec(
        builder="recordings", config=None, labels=("label",), task="regression",
        needs_files=True, learning_rate=1e-3, epochs=50, paper_dataset=None),
}

# Datasets whose builder config and spec come from the folder given as --manual_dir.
_FOLDER_BUILDERS = {"clips": "a folder holding spec.json, train.npz, validation.npz and test.npz",
                    "recordings": "a corpus folder holding spec.json, splits.csv, labels/ and "
                                  "audio/"}


def get_spec(dataset, manual_dir=None):
  """The DatasetSpec of `dataset`, its modalities read from its builder; for "clips" and
  "recordings", the modalities, label, task and label range come from the folder `manual_dir`."""
  if dataset not in DATASETS:
    raise DataError(f"--dataset={dataset} is not a dataset; choose one of: "
                    f"{', '.join(sorted(DATASETS))}")
  spec = DATASETS[dataset]
  module = tfds_builders.builder_module(spec.builder)
  if spec.builder not in _FOLDER_BUILDERS:
    return dataclasses.replace(spec, modalities=module.modality_dims(spec.config))
  clips = _read_folder(dataset, manual_dir, module.read_spec)
  label = getattr(clips, "label", getattr(module, "LABEL", None))
  label_ranges = ((label, clips.label_range),) if clips.label_range else ()
  return dataclasses.replace(spec, modalities=dict(clips.modalities), labels=(label,),
                             task=clips.task, label_ranges=label_ranges)


def recording_settings(dataset, manual_dir, window_seconds=None, annotation_delay=None):
  """(window_seconds, annotation_delay) of a dataset of recordings with continuous labels: each
  given one wins, else the corpus's spec.json, else the default; None for other datasets and for
  segment labels (datasets/recordings: recording_settings)."""
  if DATASETS[dataset].builder != "recordings":
    return None
  return _read_folder(dataset, manual_dir,
                      tfds_builders.builder_module("recordings").recording_settings,
                      window_seconds, annotation_delay)


def feature_recipe(dataset, manual_dir, modality, recordings=None):
  """The audio feature recipe of `modality` of a dataset prepared from recordings, else None;
  `recordings`: the config's data.recordings (None: the corpus's own settings)."""
  if DATASETS[dataset].builder != "recordings" or modality != "audio":
    return None
  return _read_folder(dataset, manual_dir,
                      tfds_builders.builder_module("recordings").feature_recipe,
                      **_settings(recordings))


def _read_folder(dataset, manual_dir, read, *args, **kwargs):
  """`read`(the --manual_dir folder, *args, **kwargs), a function of a folder dataset's builder
  module; its one-line errors (naming the file and line) become DataErrors naming the dataset."""
  try:
    return read(_clips_dir(manual_dir, dataset), *args, **kwargs)
  except (FileNotFoundError, ValueError) as error:
    raise DataError(f"--dataset={dataset}: {error}") from error


def _settings(recordings):
  """The recordings builder's keyword arguments of a config.Recordings (None: none)."""
  return dataclasses.asdict(recordings) if recordings else {}


def _clips_dir(manual_dir, dataset="clips"):
  if not manual_dir:
    raise DataError(f"--dataset={dataset} needs --manual_dir=DIR: "
                    f"{_FOLDER_BUILDERS[DATASETS[dataset].builder]} (see docs/own_data.md)")
  directory = os.path.expanduser(manual_dir)
  if not os.path.isdir(directory):
    raise DataError(f"--manual_dir={manual_dir} is not a folder")
  return directory


def builder_config_name(spec, label):
  return label if spec.config == "label" else spec.config


def make_builder(dataset, label, data_dir=None, manual_dir=None, download=False,
                 recordings=None):
  """Returns a prepared TFDS builder, preparing it (once; TFDS caches it) if needed;
  `recordings`: the config's data.recordings (--dataset=recordings; None: the corpus's own)."""
  spec = get_spec(dataset, manual_dir)
  builder_cls = tfds_builders.builder_class(spec.builder)
  if spec.builder in _FOLDER_BUILDERS:
    # The config (named by a hash of the folder's files) is prepared once per folder content.
    config = _read_folder(dataset, manual_dir,
                          tfds_builders.builder_module(spec.builder).config_from_dir,
                          **_settings(recordings))
  else:
    config = builder_config_name(spec, label)
  builder = _construct(builder_cls, config, os.path.expanduser(data_dir) if data_dir else None)
  if builder.is_prepared():
    return builder
  if spec.needs_files and not download and spec.builder not in _FOLDER_BUILDERS:
    _check_manual_dir(dataset, spec, builder, manual_dir)
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir) if manual_dir else None,
      try_download_gcs=False)
  try:
    builder.download_and_prepare(download_config=download_config)
  except (FileNotFoundError, ValueError) as error:
    # The builders' own messages name the file, the line and what was expected.
    raise DataError(f"--dataset={dataset}: {error}") from error
  return builder


def _construct(builder_cls, config, data_dir):
  """The builder; a damaged dataset_info.json of its prepared data is named (one line)."""
  try:
    return builder_cls(config=config, data_dir=data_dir)
  except json_format.Error:
    folder = os.path.join(data_dir or tfds.core.constants.DATA_DIR, builder_cls.name,
                          getattr(config, "name", config))
    raise DataError(f"the prepared data in {folder} is damaged (its dataset_info.json cannot be "
                    f"read); delete the folder {folder} and rerun the same command: the dataset "
                    "is prepared again") from None


def _check_manual_dir(dataset, spec, builder, manual_dir):
  """Fails early, before TFDS would fall back to a download, when files are missing."""
  module = tfds_builders.builder_module(spec.builder)
  if not manual_dir:
    raise DataError(
        f"--dataset={dataset} is not prepared in {builder.data_dir} yet. Place its files in a "
        f"folder and pass --manual_dir=FOLDER, or pass --download to fetch them (network).\n"
        f"{module.Builder.MANUAL_DOWNLOAD_INSTRUCTIONS or ''}".rstrip())
  if not os.path.isdir(os.path.expanduser(manual_dir)):
    raise DataError(f"--manual_dir={manual_dir} is not a folder")
  missing = module.missing_files(manual_dir) if hasattr(module, "missing_files") else []
  if missing:
    raise DataError(f"--manual_dir={manual_dir} lacks {len(missing)} file(s) of "
                    f"--dataset={dataset}; put each file where shown (source on the right), or "
                    f"pass --download:\n{module.files_needed(missing, manual_dir)}")


# The batch entry of the frozen teachers' latents, by strong modality (computed once per clip:
# train.StageTrainer).
TEACHER_LATENTS = "teacher_latents"


@dataclasses.dataclass
class Split:
  """One split kept in memory, batched on demand."""
  dataset: tf.data.Dataset  # unbatched examples: {features, labels, length}
  num_examples: int
  modalities: tuple
  batch_size: int

  def batches(self, shuffle_seed=None):
    """Padded batches; `shuffle_seed` (e.g. seed and epoch) fixes the order, None keeps it."""
    ds = self.dataset
    if shuffle_seed is not None:
      ds = ds.shuffle(self.num_examples, seed=shuffle_seed, reshuffle_each_iteration=False)
    ds = ds.padded_batch(self.batch_size)
    ds = ds.map(_add_mask, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

  def with_teacher_latents(self, latents):
    """This split with each clip's [time, dim] latents of every teacher (`latents`: {strong
    modality: one array per clip in the split's order}) as the examples' TEACHER_LATENTS,
    padded in batches like the features.

    The shuffle's order depends only on its seed and the number of examples, so every epoch
    draws the same clips in the same order as without them. The latents are held once, in
    memory (not cached again with the features, which this split's dataset already caches).
    """
    per_clip = tf.data.Dataset.from_tensor_slices({
        modality: tf.RaggedTensor.from_row_lengths(np.concatenate(clips).astype(np.float32),
                                                   [len(clip) for clip in clips])
        for modality, clips in latents.items()})

    def attach(example, clip_latents):
      return {**example, TEACHER_LATENTS: clip_latents}

    dataset = tf.data.Dataset.zip(self.dataset, per_clip).map(attach)
    return dataclasses.replace(self, dataset=dataset)

  def feature_moments(self, modality):
    """Per-dimension mean and variance over all real segments (for input normalisation)."""
    values = np.concatenate([ex["features"][modality]
                             for ex in self.dataset.as_numpy_iterator()])
    return values.mean(axis=0), values.var(axis=0)


def _add_mask(batch):
  time = tf.shape(batch["labels"])[1]
  mask = tf.sequence_mask(batch.pop("length"), maxlen=time)
  return {**batch, "mask": mask}


def load_split(builder, split, modalities, label, batch_size):
  """Loads `split` of a prepared builder with the given modalities and target. It is read once
  here, which fills the in-memory cache that every later pass reads, so that a damaged file of
  the prepared data is named before anything trains."""
  ds = builder.as_dataset(split=split, shuffle_files=False)

  def select(example):
    return {"features": {m: example[m] for m in modalities},
            "labels": example[label],
            "length": tf.shape(example[label])[0]}

  ds = ds.map(select, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
  try:
    _count(ds)
  except tf.errors.OpError as error:
    raise _damaged_file_error(builder, split, error) from None
  return Split(ds, builder.info.splits[split].num_examples, tuple(modalities), batch_size)


def _count(dataset):
  """The number of elements of `dataset`, read to its end."""
  return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _damaged_file_error(builder, split, error):
  """A DataError naming the file of `split` that is missing, unreadable or short of examples,
  and the folder to delete; `error` itself when every file reads whole."""
  remedy = (f"delete the folder {builder.data_dir} and rerun the same command: the dataset is "
            "prepared again")
  for shard in builder.info.splits[split].file_instructions:
    if not tf.io.gfile.exists(shard.filename):
      return DataError(f"prepared data file {shard.filename} is missing; {remedy}")
    try:
      examples = _count(tf.data.TFRecordDataset(shard.filename))
    except tf.errors.OpError:
      return DataError(f"prepared data file {shard.filename} is damaged (truncated or "
                       f"corrupted); {remedy}")
    if examples != shard.examples_in_shard:
      return DataError(f"prepared data file {shard.filename} holds {examples} examples instead "
                       f"of {shard.examples_in_shard} (truncated); {remedy}")
  return error


def batch_signature(modalities, teacher_latent_dims=None):
  """The tf.TensorSpec of a batch, for tf.function input signatures (one trace per stage);
  `teacher_latent_dims` ({strong modality: dim}): the batches carry those TEACHER_LATENTS."""
  signature = {
      "features": {name: tf.TensorSpec([None, None, dim], tf.float32)
                   for name, dim in modalities.items()},
      "labels": tf.TensorSpec([None, None], tf.float32),
      "mask": tf.TensorSpec([None, None], tf.bool),
  }
  if teacher_latent_dims:
    signature[TEACHER_LATENTS] = {modality: tf.TensorSpec([None, None, dim], tf.float32)
                                  for modality, dim in teacher_latent_dims.items()}
  return signature
