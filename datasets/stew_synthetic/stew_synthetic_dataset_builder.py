"""stew_synthetic: the embedded default dataset, generated offline in seconds.

Clips are made from a hidden affect factor z_t (a few dimensions, smooth in time, with a per-clip
offset, like the mood of a speaker). The label is a function of z_t. Every modality sees z_t, but
differently:
- the strong modality (`text`) is a near-linear, low-noise view of z_t, so an encoder-classifier
  predicts the label well from it;
- the weak modalities see z_t through a random non-linear mixing, scaled down and buried under a
  larger, temporally smooth nuisance factor plus white noise, so that a model trained on the labels
  alone learns them poorly.
Because all modalities share z_t, aligning a weak encoder with the strong encoder's latents (DCCA)
and translating weak to strong features (decoder) gives the weak model a dense, per-segment teacher
signal: that is the effect CM-StEW relies on, and this dataset makes it measurable offline.

Configs:
- `noisy_labels` (default): MOSI-shaped (text 100-d, audio 73-d, video 100-d, 12-40 segments per
  clip, binary `sentiment` per segment) where an annotator flipped each train and validation
  segment's label with probability `label_flip_rate`, independently of everything else (its own
  random stream: the clips are the same whatever the noise); test labels are the clean rule's.
  The text view still follows z_t, so its features (and a teacher trained on them) carry what the
  flipped labels lose. Its fourth modality, `label_echo` (16-d), is the negative control's teacher
  view: each segment's stored label (train and validation: the flipped one; test: the clean one)
  as a fixed random 16-d code per label value plus white noise of standard deviation 1, and nothing
  else: a teacher on it knows the training labels and no more.
- `mosi_like`: the default of stew_tf 0.5.0 and before, unchanged (clean labels, no label_echo).
- `recola_like`: 75-frame clips, `arousal` and `valence` in [-1, 1].
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

_LATENT_DIM = 4
LABEL_ECHO = "label_echo"  # the negative control's modality
# The modality whose teacher is a control: it knows the stored labels and nothing else, so a
# transfer row taught by it gets the method's training signal without a teacher's knowledge.
# stew_tf.table_rows pairs each row with a real teacher against it.
CONTROL_MODALITY = LABEL_ECHO
# Fixed so that every user gets the same dataset; the training seed is separate (--seed).
_DATA_SEED = 20211108


@dataclasses.dataclass(frozen=True)
class _Modality:
  dim: int
  signal_scale: float  # weight of the shared factor z_t
  nuisance_scale: float  # weight of a modality-private smooth factor
  noise_scale: float  # white noise
  nonlinear: bool  # mix z_t through a random tanh layer instead of a linear map


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  modalities: dict = dataclasses.field(default_factory=dict)
  labels: tuple = ()
  task: str = "classification"
  min_len: int = 12
  max_len: int = 40
  split_sizes: tuple = (("train", 160), ("validation", 40), ("test", 120))
  # Fraction of the train and validation segments whose binary label is flipped (test: none).
  label_flip_rate: float = 0.0
  label_echo_dim: int = 0  # > 0: a `label_echo` modality made from the observed label alone


_MOSI_LIKE = SyntheticConfig(
    name="mosi_like",
    description="MOSI-shaped: text 100-d (strong), audio 73-d and video 100-d (weak), "
    "12-40 segments per clip, binary sentiment per segment.",
    modalities={
        "text": _Modality(100, 1.0, 0.3, 0.2, False),
        "audio": _Modality(73, 0.15, 1.0, 0.6, True),
        "video": _Modality(100, 0.15, 1.0, 0.6, True),
    },
    labels=("sentiment",),
    task="classification",
)

_NOISY_LABELS = SyntheticConfig(
    name="noisy_labels",
    description="MOSI-shaped with noisy labels: text 100-d (strong), audio 73-d and video 100-d "
    "(weak), 12-40 segments per clip, binary sentiment per segment, 40 % of the train and "
    "validation labels flipped (test labels clean); label_echo 16-d: the stored label only.",
    modalities={
        "text": _Modality(100, 1.0, 0.3, 0.2, False),
        "audio": _Modality(73, 0.4, 1.0, 0.6, True),
        "video": _Modality(100, 0.4, 1.0, 0.6, True),
    },
    labels=("sentiment",),
    task="classification",
    # A large validation split: its flipped labels leave early stopping a fifth of the signal.
    split_sizes=(("train", 160), ("validation", 160), ("test", 120)),
    label_flip_rate=0.4,
    label_echo_dim=16,
)

_RECOLA_LIKE = SyntheticConfig(
    name="recola_like",
    description="RECOLA-shaped: audio 88-d, video_appearance 168-d, video_geometric 632-d, "
    "75-frame clips, arousal and valence in [-1, 1].",
    modalities={
        "audio": _Modality(88, 0.6, 0.8, 0.5, True),
        "video_appearance": _Modality(168, 0.35, 1.0, 0.6, True),
        "video_geometric": _Modality(632, 0.35, 1.0, 0.6, True),
    },
    labels=("arousal", "valence"),
    task="regression",
    min_len=75,
    max_len=75,
    split_sizes=(("train", 96), ("validation", 24), ("test", 48)),
)


def modality_dims(config_name):
  """{modality: feature dimension} of a config (stew_tf reads them from here)."""
  config = next(c for c in Builder.BUILDER_CONFIGS if c.name == config_name)
  return _feature_dims(config)


def _feature_dims(config):
  dims = {name: modality.dim for name, modality in config.modalities.items()}
  if config.label_echo_dim:
    dims[LABEL_ECHO] = config.label_echo_dim
  return dims


class Builder(tfds.core.GeneratorBasedBuilder):
  """Deterministic synthetic multi-modal affect clips (no files, no network)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [_NOISY_LABELS, _MOSI_LIKE, _RECOLA_LIKE]
  DEFAULT_CONFIG_NAME = "noisy_labels"

  def _info(self):
    features = {"clip_id": tfds.features.Text()}
    for name, dim in _feature_dims(self.builder_config).items():
      features[name] = tfds.features.Tensor(shape=(None, dim), dtype=np.float32)
    for label in self.builder_config.labels:
      features[label] = tfds.features.Tensor(shape=(None,), dtype=np.float32)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage="https://github.com/stew-tf/stew_tf",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    world = _World(self.builder_config)
    return {split: self._generate_examples(world, split, index, count)
            for index, (split, count) in enumerate(self.builder_config.split_sizes)}

  def _generate_examples(self, world, split, split_index, count):
    rng = np.random.default_rng([_DATA_SEED, split_index])
    # The annotator draws from its own stream: the clips are the same whatever the label noise.
    annotator_rng = np.random.default_rng([_DATA_SEED, split_index, 1])
    for clip in range(count):
      clip_id = f"{split}_{clip:04d}"
      example = world.annotate(world.clip(rng), annotator_rng, flip=split != "test")
      yield clip_id, {"clip_id": clip_id, **example}


class _World:
  """The fixed random maps from the hidden factor to labels and features."""

  def __init__(self, config):
    self.config = config
    rng = np.random.default_rng(_DATA_SEED)
    self.label_weights = rng.normal(size=(len(config.labels), _LATENT_DIM))
    self.label_weights /= np.linalg.norm(self.label_weights, axis=1, keepdims=True)
    self.maps = {}
    for name, modality in config.modalities.items():
      hidden = 32 if modality.nonlinear else _LATENT_DIM
      self.maps[name] = {
          "mix": rng.normal(size=(_LATENT_DIM, hidden)) / np.sqrt(_LATENT_DIM),
          "signal": rng.normal(size=(hidden, modality.dim)) / np.sqrt(hidden),
          "nuisance": rng.normal(size=(8, modality.dim)) / np.sqrt(8),
      }
    if config.label_echo_dim:
      self.echo_codes = rng.normal(size=(2, config.label_echo_dim))  # one code per label value

  def clip(self, rng):
    """One clip's features and its labels by the clean rule."""
    config = self.config
    length = int(rng.integers(config.min_len, config.max_len + 1))
    latent = _smooth_factor(rng, length, _LATENT_DIM, offset_scale=0.8, step_scale=0.7)
    example = {}
    for name, modality in config.modalities.items():
      maps = self.maps[name]
      mixed = latent @ maps["mix"]
      if modality.nonlinear:
        mixed = np.tanh(mixed)
      nuisance = _smooth_factor(rng, length, 8, offset_scale=1.0, step_scale=0.5)
      features = (modality.signal_scale * mixed @ maps["signal"]
                  + modality.nuisance_scale * nuisance @ maps["nuisance"]
                  + modality.noise_scale * rng.normal(size=(length, modality.dim)))
      example[name] = features.astype(np.float32)
    scores = latent @ self.label_weights.T  # [length, num_labels]
    for index, label in enumerate(config.labels):
      if config.task == "classification":
        example[label] = (scores[:, index] > 0).astype(np.float32)
      else:
        example[label] = np.tanh(0.8 * scores[:, index]).astype(np.float32)
    return example

  def annotate(self, example, rng, flip):
    """`example` with the labels an annotator gives (`flip`: each segment's binary label flipped
    with probability config.label_flip_rate, independently of everything else) and, if the config
    has one, the label_echo view of those labels."""
    config = self.config
    length = len(example[config.labels[0]])
    if flip and config.label_flip_rate:
      for label in config.labels:
        flipped = rng.random(length) < config.label_flip_rate
        example[label] = np.where(flipped, 1 - example[label], example[label])
    if config.label_echo_dim:
      # The stored label's fixed code plus white noise: it knows that label and nothing else.
      codes = self.echo_codes[example[config.labels[0]].astype(int)]
      noise = rng.normal(size=(length, config.label_echo_dim))
      example[LABEL_ECHO] = (codes + noise).astype(np.float32)
    return example


def _smooth_factor(rng, length, dim, offset_scale, step_scale):
  """A per-clip offset plus an AR(1) process: segments of a clip share context."""
  offset = offset_scale * rng.normal(size=dim)
  values = np.empty((length, dim))
  state = rng.normal(size=dim)
  for t in range(length):
    state = 0.7 * state + np.sqrt(1 - 0.7**2) * rng.normal(size=dim)
    values[t] = offset + step_scale * state
  return values
