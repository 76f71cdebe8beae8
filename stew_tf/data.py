"""Dataset name → TFDS builder → padded tf.data batches.

Each batch is a dict: `features` ({modality: float32 [B, T, D]}), `mask` (bool [B, T], True on
real segments, always right-padded so that the GRUs can take the cuDNN path) and `labels`
(float32 [B, T]).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from stew_tf import builders


class DataError(Exception):
  """Data cannot be found or prepared; the message says what the user should do."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What stew_tf needs to know about one dataset beyond its TFDS features."""
  builder: str  # folder under datasets/
  config: str | None  # TFDS builder config; None: the config is named after --label
  modalities: dict  # name -> feature dimension
  labels: tuple  # target names; the first is the default --label
  task: str  # "classification" or "regression"
  needs_files: bool  # real data: placed in --manual_dir or fetched with --download
  learning_rate: float  # default --learning_rate (the paper's for real data)
  epochs: int  # default --epochs
  single_gru_layer: tuple = ()  # (modality, label or None) pairs whose encoder has 1 Bi-GRU layer
  # Per-label exceptions to `task`, and the value range of regression labels (default [-1, 1]).
  label_tasks: tuple = ()  # (label, task) pairs
  label_ranges: tuple = ()  # (label, (low, high)) pairs

  def task_of(self, label):
    """"classification" or "regression" for `label`."""
    return dict(self.label_tasks).get(label, self.task)

  def label_range(self, label):
    """(low, high) of a regression label; None for classification."""
    if self.task_of(label) != "regression":
      return None
    return tuple(dict(self.label_ranges).get(label, (-1.0, 1.0)))


DATASETS = {
    "stew_synthetic": DatasetSpec(
        builder="stew_synthetic", config="mosi_like",
        modalities={"text": 100, "audio": 73, "video": 100},
        labels=("sentiment",), task="classification", needs_files=False,
        learning_rate=1e-3, epochs=25, single_gru_layer=(("text", None),)),
    "stew_synthetic/recola_like": DatasetSpec(
        builder="stew_synthetic", config="recola_like",
        modalities={"audio": 88, "video_appearance": 168, "video_geometric": 632},
        labels=("arousal", "valence"), task="regression", needs_files=False,
        learning_rate=1e-3, epochs=25, single_gru_layer=(("audio", None),)),
    # Paper, Sec. IV-B: one Bi-GRU layer for the MOSI text model and the RECOLA audio models.
    # sentiment: binary (score >= 0); sentiment_score: the annotators' mean score in [-3, 3].
    "mosi": DatasetSpec(
        builder="mosi", config=None,
        modalities={"text": 100, "audio": 73, "video": 100},
        labels=("sentiment", "sentiment_score"), task="classification", needs_files=True,
        learning_rate=1e-4, epochs=100, single_gru_layer=(("text", None),),
        label_tasks=(("sentiment_score", "regression"),),
        label_ranges=(("sentiment_score", (-3.0, 3.0)),)),
    "recola": DatasetSpec(
        builder="recola", config="label",
        modalities={"audio": 88, "video_appearance": 168, "video_geometric": 632},
        labels=("arousal", "valence"), task="regression", needs_files=True,
        learning_rate=1e-5, epochs=100, single_gru_layer=(("audio", None),)),
    # Your own clips (datasets/clips, docs/own_data.md): a placeholder; get_spec reads the real
    # modalities, task and label range from --manual_dir/spec.json. Defaults (our choice): the
    # learning rate and epochs that train the small synthetic data; early stopping ends sooner.
    "clips": DatasetSpec(
        builder="clips", config=None, modalities={}, labels=("label",), task="classification",
        needs_files=True, learning_rate=1e-3, epochs=50),
}


def get_spec(dataset, manual_dir=None):
  """The DatasetSpec of `dataset`; for "clips", read from `manual_dir`/spec.json."""
  if dataset not in DATASETS:
    raise DataError(f"--dataset={dataset} is not a dataset; choose one of: "
                    f"{', '.join(sorted(DATASETS))}")
  spec = DATASETS[dataset]
  if spec.builder != "clips":
    return spec
  module = builders.builder_module("clips")
  try:
    clips = module.read_spec(_clips_dir(manual_dir))
  except (FileNotFoundError, ValueError) as error:
    raise DataError(f"--dataset=clips: {error}") from error
  label_ranges = ((module.LABEL, clips.label_range),) if clips.label_range else ()
  return dataclasses.replace(spec, modalities=dict(clips.modalities), labels=(module.LABEL,),
                             task=clips.task, label_ranges=label_ranges)


def _clips_dir(manual_dir):
  if not manual_dir:
    raise DataError("--dataset=clips needs --manual_dir=DIR: a folder holding spec.json, "
                    "train.npz, validation.npz and test.npz (see docs/own_data.md)")
  directory = os.path.expanduser(manual_dir)
  if not os.path.isdir(directory):
    raise DataError(f"--manual_dir={manual_dir} is not a folder")
  return directory


def builder_config_name(spec, label):
  return label if spec.config == "label" else spec.config


def make_builder(dataset, label, data_dir=None, manual_dir=None, download=False):
  """Returns a prepared TFDS builder, preparing it (once; TFDS caches it) if needed."""
  spec = get_spec(dataset, manual_dir)
  builder_cls = builders.builder_class(spec.builder)
  if spec.builder == "clips":
    # The config (named by a hash of the folder's files) is prepared once per folder content.
    try:
      config = builders.builder_module("clips").config_from_dir(_clips_dir(manual_dir))
    except (FileNotFoundError, ValueError) as error:
      raise DataError(f"--dataset=clips: {error}") from error
  else:
    config = builder_config_name(spec, label)
  builder = builder_cls(config=config, data_dir=os.path.expanduser(data_dir) if data_dir else None)
  if builder.is_prepared():
    return builder
  if spec.needs_files and not download and spec.builder != "clips":
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


def _check_manual_dir(dataset, spec, builder, manual_dir):
  """Fails early, before TFDS would fall back to a download, when files are missing."""
  module = builders.builder_module(spec.builder)
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
  """Loads `split` of a prepared builder with the given modalities and target."""
  ds = builder.as_dataset(split=split, shuffle_files=False)

  def select(example):
    return {"features": {m: example[m] for m in modalities},
            "labels": example[label],
            "length": tf.shape(example[label])[0]}

  ds = ds.map(select, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
  return Split(ds, builder.info.splits[split].num_examples, tuple(modalities), batch_size)


def batch_signature(modalities):
  """The tf.TensorSpec of a batch, for tf.function input signatures (one trace per stage)."""
  return {
      "features": {name: tf.TensorSpec([None, None, dim], tf.float32)
                   for name, dim in modalities.items()},
      "labels": tf.TensorSpec([None, None], tf.float32),
      "mask": tf.TensorSpec([None, None], tf.bool),
  }
