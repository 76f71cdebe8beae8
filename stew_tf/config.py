"""stew_tf.main's flags (defined here only, on demand) and the immutable config built from them.

`define_flags(flag_values)` adds the flags to a `FlagValues`; nothing is defined at import, so any
module (and any test) can import this one. `parse(argv)` does both steps on a fresh `FlagValues`.
"""

import dataclasses
import functools
import hashlib
import json
import os

from absl import flags

from stew_tf import data
from stew_tf import methods

# Config fields that do not change what is trained: where things are, and how this process runs.
NOT_RECORDED = ("workdir", "data_dir", "manual_dir", "download", "stop_after_steps",
                "teacher_cache", "overwrite", "inter_op_threads", "strong_ranking")
SELECT_ON = ("validation", "test")
VALIDATION = ("split", "none")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Every choice of one run, defaults resolved; written to results.json."""
  dataset: str
  strong: str | None  # None when the method does not use a strong modality
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
  classifier_dropout: float
  weak_gru_layers: int
  strong_gru_layers: int
  decoder_units: int
  decoder_layers: int
  seed: int
  select_on: str  # the split that picks the epoch: "validation", or "test" (diagnostic only)
  validation: str  # "split": hold out the validation split; "none": train on train+validation
  deterministic: bool
  strategy: str
  mixed_precision: bool
  jit_compile: bool
  intra_op_threads: int  # recorded: it changes how sums are split, hence the last bits
  workdir: str
  data_dir: str | None
  manual_dir: str | None
  download: bool
  stop_after_steps: int
  teacher_cache: str
  overwrite: bool
  inter_op_threads: int | None  # None: TensorFlow's default (one per usable CPU)
  strong_ranking: str | None = None  # the ranking.json that chose --strong=auto's modality

  @functools.cached_property
  def spec(self):
    # Read once: for --dataset=clips it comes from the manual dir's spec.json.
    return data.get_spec(self.dataset, self.manual_dir)

  @property
  def task(self):
    return self.spec.task_of(self.label)

  @property
  def method_info(self):
    return methods.get(self.method)

  def recorded(self):
    """The fields that determine the trained models (the run's identity)."""
    return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_RECORDED}


def _positive(value):
  return value is None or value > 0


def define_flags(flag_values=flags.FLAGS):
  """Defines stew_tf.main's flags and their checks on `flag_values`."""
  _define_experiment_flags(flag_values)
  _define_run_flags(flag_values)
  _register_checks(flag_values)


def _define_experiment_flags(fv):
  """The flags that determine what is trained."""
  flags.DEFINE_enum("dataset", "stew_synthetic", sorted(data.DATASETS),
                    "Dataset (a TFDS builder under datasets/).", flag_values=fv)
  flags.DEFINE_string("strong", "text", "Strong modality (training time only).", flag_values=fv)
  flags.DEFINE_string("weak", "audio", "Weak modality (the one used at test time).",
                      flag_values=fv)
  flags.DEFINE_string("label", None, "Target, for datasets with several (recola: arousal or "
                      "valence). Default: the dataset's first.", flag_values=fv)
  flags.DEFINE_enum("method", "cm_stew", list(methods.METHODS), "; ".join(
      f"{m.name}: {m.description}" for m in methods.METHODS.values()), flag_values=fv)
  flags.DEFINE_float("alpha", 0.1, "Weight of the DCCA alignment loss (-correlation), >= 0. "
                     "Chosen on validation data; see README.", flag_values=fv)
  flags.DEFINE_float("beta", 1.0, "Weight of the MAE translation loss, >= 0. Chosen on "
                     "validation data; see README.", flag_values=fv)
  flags.DEFINE_float("dcca_r1", 1e-3, "DCCA regulariser of the strong covariance, > 0 (paper).",
                     flag_values=fv)
  flags.DEFINE_float("dcca_r2", 1e-3, "DCCA regulariser of the weak covariance, > 0 (paper).",
                     flag_values=fv)
  flags.DEFINE_float("learning_rate", None, "Adam learning rate, in (0, 1]. Default: the "
                     "dataset's (paper: 1e-4 MOSI, 1e-5 RECOLA; 1e-3 for the synthetic data).",
                     flag_values=fv)
  flags.DEFINE_integer("batch_size", 32, "Clips per batch (paper: 32).", lower_bound=2,
                       flag_values=fv)
  flags.DEFINE_integer("epochs", None, "Maximum epochs per stage (exactly this many with "
                       "--validation=none). Default: the dataset's.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("patience", 10, "Early stopping: epochs without a better selection "
                       "metric before a stage stops.", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("dropout", 0.3, "Encoder dropout (Bi-GRU outputs, transformer attention, "
                     "FFN and residuals); paper grid 0.2-0.7.", lower_bound=0.0,
                     upper_bound=0.9, flag_values=fv)
  flags.DEFINE_float("strong_dropout", None, "Strong encoder dropout. Default: --dropout.",
                     lower_bound=0.0, upper_bound=0.9, flag_values=fv)
  flags.DEFINE_float("classifier_dropout", 0.3, "Dropout between the classifiers' two dense "
                     "layers (paper: 0.3).", lower_bound=0.0, upper_bound=0.9, flag_values=fv)
  flags.DEFINE_integer("weak_gru_layers", None, "Bi-GRU layers of the weak encoder. Default: "
                       "the paper's (1 for MOSI text and RECOLA audio, else 2).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("strong_gru_layers", None, "Bi-GRU layers of the strong encoder. "
                       "Default: the paper's.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("decoder_units", None, "Units of each decoder Bi-GRU layer. Default: 500 "
                       "for RECOLA valence with weak audio, else 250 (paper).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("decoder_layers", None, "Decoder Bi-GRU layers. Default: 1 for RECOLA "
                       "valence with weak audio, else 2 (paper).", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed of weights, dropout and batch order.", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_enum("select_on", "validation", list(SELECT_ON), "Split whose metric picks the "
                    "epoch (early stopping). 'test' is a DIAGNOSTIC of how optimistic test-set "
                    "selection is: its results are labelled 'selected on test' everywhere and "
                    "are not results.", flag_values=fv)
  flags.DEFINE_enum("validation", "split", list(VALIDATION), "split: hold out the validation "
                    "split for early stopping; none: train on train+validation for exactly "
                    "--epochs epochs and report the last one (no selection at all).",
                    flag_values=fv)
  flags.DEFINE_bool("deterministic", True, "Use deterministic TF ops.", flag_values=fv)
  flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                    "tf.distribute strategy: default (one device), mirrored (all local GPUs, or "
                    "CPUs set up as logical devices), multi_worker (MultiWorkerMirroredStrategy; "
                    "workers from TF_CONFIG). TPUs: see README.", flag_values=fv)
  flags.DEFINE_bool("mixed_precision", False, "Compute in float16 with float32 variables (GPU); "
                    "losses and DCCA stay float32.", flag_values=fv)
  flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.", flag_values=fv)
  flags.DEFINE_integer("intra_op_threads", None, "Threads that one TensorFlow op may use. "
                       "Default: half the usable CPUs (at least 1), so that the two directions "
                       "of each Bi-GRU run side by side (docs/performance.md). It changes the "
                       "last bits of sums, so it is part of the run's identity.",
                       lower_bound=1, flag_values=fv)


def _define_run_flags(fv):
  """The flags that say where things are and how this process runs."""
  flags.DEFINE_string("workdir", None, "Output folder. Default: runs/<dataset>[-<label>]-"
                      "[<strong>-]<weak>-<method>-seed<seed>[-<hash of the non-default "
                      "settings>].", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Start afresh in a --workdir that holds a run with other "
                    "settings; the old run is moved aside (to <workdir>.replaced-<time>), never "
                    "deleted.", flag_values=fv)
  flags.DEFINE_string("teacher_cache", None, "Folder of trained stage-1 teachers, shared by runs "
                      "that need the same teacher. Default: 'teachers' beside the workdir.",
                      flag_values=fv)
  flags.DEFINE_string("data_dir", None, "TFDS data dir (default ~/tensorflow_datasets).",
                      flag_values=fv)
  flags.DEFINE_string("manual_dir", None, "Folder holding a real dataset's files (TFDS manual "
                      "dir).", flag_values=fv)
  flags.DEFINE_bool("download", False, "Allow downloading a real dataset's public files (the "
                    "only network access stew_tf ever makes).", flag_values=fv)
  flags.DEFINE_integer("inter_op_threads", None, "TensorFlow ops that may run at once. Default: "
                       "TensorFlow's (one per usable CPU).", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("stop_after_steps", 0, "Stop (as if interrupted) after this many training "
                       "steps in this process; 0: never. Rerunning the same command resumes.",
                       lower_bound=0, flag_values=fv)


def _register_checks(fv):
  checks = {
      "learning_rate": (lambda v: v is None or 0 < v <= 1, "expected a number in (0, 1]"),
      "alpha": (lambda v: v >= 0, "expected a number >= 0 (0 turns alignment off)"),
      "beta": (lambda v: v >= 0, "expected a number >= 0 (0 turns translation off)"),
      "dcca_r1": (_positive, "expected a number > 0 (it keeps the covariance invertible)"),
      "dcca_r2": (_positive, "expected a number > 0 (it keeps the covariance invertible)"),
  }
  for name, (check, message) in checks.items():
    flags.register_validator(name, check, message, flag_values=fv)
  for name in ("workdir", "data_dir", "teacher_cache"):
    flags.register_validator(
        name, lambda path: path is None or not os.path.isfile(os.path.expanduser(path)),
        "names a file; expected a folder (existing or to be created)", flag_values=fv)
  flags.register_validator(
      "manual_dir", lambda path: path is None or os.path.isdir(os.path.expanduser(path)),
      "is not a folder; expected the folder holding the dataset's files", flag_values=fv)
  flags.register_multi_flags_validator(
      ["dataset", "strong", "weak", "method", "label", "manual_dir"], _check_modalities,
      flag_values=fv)
  flags.register_multi_flags_validator(
      ["select_on", "validation"],
      lambda v: not (v["select_on"] == "test" and v["validation"] == "none"),
      "--select_on=test selects an epoch, but --validation=none selects none (it reports the "
      "last epoch): use one or the other", flag_values=fv)


def _check_modalities(values):
  try:
    spec = data.get_spec(values["dataset"], values["manual_dir"])
  except data.DataError as error:
    raise flags.ValidationError(str(error)) from None
  valid = ", ".join(spec.modalities)
  method = methods.get(values["method"])
  # Methods without a strong modality ignore --strong; "auto" is resolved by ranking later.
  checked = ["weak"]
  if method.uses_strong and values["strong"] != "auto":
    checked.insert(0, "strong")
  for name in checked:
    if values[name] not in spec.modalities:
      raise flags.ValidationError(
          f"--{name}={values[name]} is not a modality of --dataset={values['dataset']}; "
          f"choose one of: {valid}")
  if method.uses_strong and values["strong"] == values["weak"]:
    raise flags.ValidationError(
        f"--strong and --weak are both {values['weak']}; --method={values['method']} transfers "
        f"from one modality to another, so pick two different ones of: {valid}")
  if values["label"] is not None and values["label"] not in spec.labels:
    raise flags.ValidationError(
        f"--label={values['label']} is not a target of --dataset={values['dataset']}; choose "
        f"one of: {', '.join(spec.labels)}")
  return True


def _paper_gru_layers(spec, modality, label):
  single = (modality, None) in spec.single_gru_layer or (modality, label) in spec.single_gru_layer
  return 1 if single else 2


def usable_cpus():
  """The CPUs this process may run on (all of them where the OS cannot say)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def default_intra_op_threads():
  """Half the usable CPUs, at least 1: measured faster than TensorFlow's default (all of them)
  on 2 CPUs, where each direction of a Bi-GRU then has a CPU to itself."""
  return max(1, usable_cpus() // 2)


def _default(value, fallback):
  return fallback if value is None else value


def resolve(raw):
  """An ExperimentConfig from raw flag values (a dict; None means 'the default')."""
  spec = data.get_spec(raw["dataset"], raw["manual_dir"])
  method = methods.get(raw["method"])
  label = raw["label"] or spec.labels[0]
  strong = raw["strong"] if method.uses_strong else None
  weak = raw["weak"]
  # Paper, Sec. IV-B: a 1-layer, 500-unit decoder for the RECOLA valence audio models.
  valence_audio = raw["dataset"].startswith("recola") and label == "valence" and weak == "audio"
  config = ExperimentConfig(
      dataset=raw["dataset"], strong=strong, weak=weak, label=label, method=method.name,
      alpha=raw["alpha"] if method.alignment else 0.0,
      beta=raw["beta"] if method.translation else 0.0,
      dcca_r1=raw["dcca_r1"], dcca_r2=raw["dcca_r2"],
      learning_rate=_default(raw["learning_rate"], spec.learning_rate),
      batch_size=raw["batch_size"], epochs=_default(raw["epochs"], spec.epochs),
      patience=raw["patience"], dropout=raw["dropout"],
      strong_dropout=_default(raw["strong_dropout"], raw["dropout"]),
      classifier_dropout=raw["classifier_dropout"],
      weak_gru_layers=_default(raw["weak_gru_layers"], _paper_gru_layers(spec, weak, label)),
      strong_gru_layers=(_default(raw["strong_gru_layers"],
                                  _paper_gru_layers(spec, strong, label)) if strong else 0),
      decoder_units=_default(raw["decoder_units"], 500 if valence_audio else 250),
      decoder_layers=_default(raw["decoder_layers"], 1 if valence_audio else 2),
      seed=raw["seed"], select_on=raw["select_on"], validation=raw["validation"],
      deterministic=raw["deterministic"], strategy=raw["strategy"],
      mixed_precision=raw["mixed_precision"], jit_compile=raw["jit_compile"],
      intra_op_threads=_default(raw["intra_op_threads"], default_intra_op_threads()),
      workdir="", data_dir=raw["data_dir"], manual_dir=raw["manual_dir"],
      download=raw["download"], stop_after_steps=raw["stop_after_steps"], teacher_cache="",
      overwrite=raw["overwrite"], inter_op_threads=raw["inter_op_threads"])
  workdir = raw["workdir"] or default_workdir(config, _changed_settings(config, raw))
  teacher_cache = raw["teacher_cache"] or os.path.join(
      os.path.dirname(os.path.normpath(workdir)), "teachers")
  return dataclasses.replace(config, workdir=workdir, teacher_cache=teacher_cache)


def _changed_settings(config, raw):
  """The recorded settings in which `config` differs from the defaults of its experiment."""
  named = ("dataset", "label", "strong", "weak", "method", "seed", "manual_dir")
  defaults = {**_DEFAULT_RAW, **{k: raw[k] for k in named}, "workdir": "-"}
  baseline = resolve(defaults).recorded()
  return {k: v for k, v in config.recorded().items() if baseline[k] != v}


def default_workdir(config, changed=None):
  """runs/<dataset>[-<label>]-[<strong>-]<weak>-<method>-seed<seed>[-<hash>].

  The hash (of the settings that differ from the experiment's defaults) keeps runs that differ
  in anything that changes the model apart.
  """
  parts = [config.dataset.replace("/", "_")]
  if len(config.spec.labels) > 1:
    parts.append(config.label)
  if config.strong:
    parts.append(config.strong)
  parts += [config.weak, config.method, f"seed{config.seed}"]
  if changed:
    parts.append(settings_hash(changed))
  return os.path.join("runs", "-".join(parts))


def settings_hash(settings, length=8):
  text = json.dumps(settings, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:length]


def _default_raw():
  fv = flags.FlagValues()
  define_flags(fv)
  return {name: fv[name].default for name in fv}


_DEFAULT_RAW = _default_raw()


def from_flag_values(flag_values, strong=None, strong_ranking=None):
  """The config of parsed `flag_values`; `strong` replaces --strong=auto with the modality that
  the ranking in `strong_ranking` chose."""
  raw = {name: flag_values[name].value for name in _DEFAULT_RAW}
  if strong is not None:
    raw["strong"] = strong
  return dataclasses.replace(resolve(raw), strong_ranking=strong_ranking)


def parse(argv):
  """Parses `argv` (argv[0] is the program) on fresh flags; returns the ExperimentConfig.

  Raises flags.Error (e.g. flags.IllegalFlagValueError) with the one-line message of a bad flag.
  """
  fv = flags.FlagValues()
  define_flags(fv)
  fv(argv)
  return from_flag_values(fv)
