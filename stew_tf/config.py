"""Command-line flags (defined here only) and the immutable experiment config built from them."""

import dataclasses
import os

from absl import flags

from stew_tf import data

METHODS = ("cm_stew", "no_lfa", "no_decoder", "enc_cls", "cls_only")
# Methods that train a strong model first and transfer from it.
TRANSFER_METHODS = ("cm_stew", "no_lfa", "no_decoder")

_DATASET = flags.DEFINE_enum("dataset", "stew_synthetic", sorted(data.DATASETS),
                             "Dataset (a TFDS builder under datasets/).")
_STRONG = flags.DEFINE_string("strong", "text", "Strong modality (training time only).")
_WEAK = flags.DEFINE_string("weak", "audio", "Weak modality (the one used at test time).")
_LABEL = flags.DEFINE_string("label", None, "Target, for datasets with several "
                             "(recola: arousal or valence). Default: the dataset's first.")
_METHOD = flags.DEFINE_enum(
    "method", "cm_stew", METHODS,
    "cm_stew: full method; no_lfa: alpha=0; no_decoder: beta=0 and no decoder; enc_cls: weak "
    "encoder + classifier alone (no stage 1); cls_only: classifier on raw weak features.")
_ALPHA = flags.DEFINE_float("alpha", 0.1, "Weight of the DCCA alignment loss (-correlation). "
                            "Chosen on validation data; see README.")
_BETA = flags.DEFINE_float("beta", 1.0, "Weight of the MAE translation loss. "
                           "Chosen on validation data; see README.")
_R1 = flags.DEFINE_float("dcca_r1", 1e-3, "DCCA regulariser of the strong covariance (paper).")
_R2 = flags.DEFINE_float("dcca_r2", 1e-3, "DCCA regulariser of the weak covariance (paper).")
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Adam learning rate. Default: the dataset's (paper: 1e-4 MOSI, "
    "1e-5 RECOLA; 1e-3 for the small synthetic data).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Clips per batch (paper: 32).", lower_bound=2)
_EPOCHS = flags.DEFINE_integer("epochs", None, "Maximum epochs per stage. Default: the dataset's.",
                               lower_bound=1)
_PATIENCE = flags.DEFINE_integer("patience", 10, "Early stopping: epochs without a better "
                                 "validation metric before a stage stops.", lower_bound=1)
_DROPOUT = flags.DEFINE_float("dropout", 0.3, "Encoder dropout (Bi-GRU outputs, transformer "
                              "attention, FFN and residuals); paper grid 0.2-0.7.",
                              lower_bound=0.0, upper_bound=0.9)
_STRONG_DROPOUT = flags.DEFINE_float("strong_dropout", None, "Strong encoder dropout. "
                                     "Default: --dropout.", lower_bound=0.0, upper_bound=0.9)
_GRU_LAYERS = flags.DEFINE_integer(
    "weak_gru_layers", None, "Bi-GRU layers of the weak encoder. Default: the paper's "
    "(1 for MOSI text and RECOLA audio, else 2).", lower_bound=1)
_STRONG_GRU_LAYERS = flags.DEFINE_integer("strong_gru_layers", None, "Bi-GRU layers of the strong "
                                          "encoder. Default: the paper's.", lower_bound=1)
_DECODER_UNITS = flags.DEFINE_integer(
    "decoder_units", None, "Units of each decoder Bi-GRU layer. Default: 500 for RECOLA valence "
    "with weak audio, else 250 (paper).", lower_bound=1)
_DECODER_LAYERS = flags.DEFINE_integer(
    "decoder_layers", None, "Decoder Bi-GRU layers. Default: 1 for RECOLA valence with weak "
    "audio, else 2 (paper).", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of weights, dropout and batch order.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder. Default: "
                               "runs/<dataset>[-<label>]-<strong>-<weak>-<method>-seed<seed>.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder holding a real dataset's files "
                                  "(TFDS manual dir).")
_DOWNLOAD = flags.DEFINE_bool("download", False, "Allow downloading a real dataset's public files "
                              "(the only network access stew_tf ever makes).")
_STOP_AFTER_STEPS = flags.DEFINE_integer(
    "stop_after_steps", 0, "Stop (as if interrupted) after this many training steps in this "
    "process; 0: never. Rerunning the same command resumes.", lower_bound=0)
_DETERMINISTIC = flags.DEFINE_bool("deterministic", True, "Use deterministic TF ops.")
_STRATEGY = flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored", "multi_worker"],
    "tf.distribute strategy: default (one device), mirrored (all local GPUs, or CPUs set up as "
    "logical devices), multi_worker (MultiWorkerMirroredStrategy; workers from TF_CONFIG). "
    "TPUs: see README.")
_MIXED_PRECISION = flags.DEFINE_bool("mixed_precision", False, "Compute in float16 with float32 "
                                     "variables (GPU); losses and DCCA stay float32.")
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Every choice of one run, defaults resolved; written to results.json."""
  dataset: str
  strong: str | None  # None for the uni-modal baselines
  weak: str
  label: str
  method: str
  alpha: float
  beta: float
  dcca_r1: float
  dcca_r2: float
  learning_rate: float
  batch_size: int
  epochs: int
  patience: int
  dropout: float
  strong_dropout: float
  weak_gru_layers: int
  strong_gru_layers: int
  decoder_units: int
  decoder_layers: int
  seed: int
  workdir: str
  data_dir: str | None
  manual_dir: str | None
  download: bool
  stop_after_steps: int
  deterministic: bool
  strategy: str
  mixed_precision: bool
  jit_compile: bool

  @property
  def spec(self):
    return data.DATASETS[self.dataset]

  @property
  def transfer(self):
    return self.method in TRANSFER_METHODS

  @property
  def uses_alignment(self):
    return self.method in ("cm_stew", "no_decoder")

  @property
  def uses_decoder(self):
    return self.method in ("cm_stew", "no_lfa")


def _check_modalities(values):
  spec = data.DATASETS[values["dataset"]]
  valid = ", ".join(spec.modalities)
  # The uni-modal baselines ignore --strong, so only the transfer methods check it.
  checked = ("strong", "weak") if values["method"] in TRANSFER_METHODS else ("weak",)
  for name in checked:
    if values[name] not in spec.modalities:
      raise flags.ValidationError(
          f"--{name}={values[name]} is not a modality of --dataset={values['dataset']}; "
          f"choose one of: {valid}")
  if values["method"] in TRANSFER_METHODS and values["strong"] == values["weak"]:
    raise flags.ValidationError(
        f"--strong and --weak are both {values['weak']}; --method={values['method']} transfers "
        f"from one modality to another, so pick two different ones of: {valid}")
  if values["label"] is not None and values["label"] not in spec.labels:
    raise flags.ValidationError(
        f"--label={values['label']} is not a target of --dataset={values['dataset']}; choose "
        f"one of: {', '.join(spec.labels)}")
  return True


flags.register_multi_flags_validator(["dataset", "strong", "weak", "method", "label"],
                                     _check_modalities)


def _paper_gru_layers(spec, modality, label):
  single = (modality, None) in spec.single_gru_layer or (modality, label) in spec.single_gru_layer
  return 1 if single else 2


def from_flags():
  """Builds the ExperimentConfig from parsed flags, filling in the paper's defaults."""
  dataset = _DATASET.value
  spec = data.DATASETS[dataset]
  method = _METHOD.value
  label = _LABEL.value or spec.labels[0]
  strong = _STRONG.value if method in TRANSFER_METHODS else None
  weak = _WEAK.value
  # Paper, Sec. IV-B: a 1-layer, 500-unit decoder for the RECOLA valence audio models.
  valence_audio = dataset.startswith("recola") and label == "valence" and weak == "audio"
  workdir = _WORKDIR.value or default_workdir(dataset, label, strong, weak, method, _SEED.value)
  return ExperimentConfig(
      dataset=dataset, strong=strong, weak=weak, label=label, method=method,
      alpha=_ALPHA.value if method in ("cm_stew", "no_decoder") else 0.0,
      beta=_BETA.value if method in ("cm_stew", "no_lfa") else 0.0,
      dcca_r1=_R1.value, dcca_r2=_R2.value,
      learning_rate=_LEARNING_RATE.value or spec.learning_rate,
      batch_size=_BATCH_SIZE.value,
      epochs=_EPOCHS.value or spec.epochs,
      patience=_PATIENCE.value,
      dropout=_DROPOUT.value,
      strong_dropout=_DROPOUT.value if _STRONG_DROPOUT.value is None else _STRONG_DROPOUT.value,
      weak_gru_layers=_GRU_LAYERS.value or _paper_gru_layers(spec, weak, label),
      strong_gru_layers=(_STRONG_GRU_LAYERS.value
                         or (_paper_gru_layers(spec, strong, label) if strong else 0)),
      decoder_units=_DECODER_UNITS.value or (500 if valence_audio else 250),
      decoder_layers=_DECODER_LAYERS.value or (1 if valence_audio else 2),
      seed=_SEED.value, workdir=workdir, data_dir=_DATA_DIR.value,
      manual_dir=_MANUAL_DIR.value, download=_DOWNLOAD.value,
      stop_after_steps=_STOP_AFTER_STEPS.value, deterministic=_DETERMINISTIC.value,
      strategy=_STRATEGY.value, mixed_precision=_MIXED_PRECISION.value,
      jit_compile=_JIT_COMPILE.value)


def default_workdir(dataset, label, strong, weak, method, seed):
  spec = data.DATASETS[dataset]
  parts = [dataset.replace("/", "_")]
  if len(spec.labels) > 1:
    parts.append(label)
  if strong:
    parts.append(strong)
  parts += [weak, method, f"seed{seed}"]
  return os.path.join("runs", "-".join(parts))
