"""stew_tf.main's flags (defined here only, on demand) and how they map onto the config tree.

`define_flags(flag_values)` adds the flags to a `FlagValues`; nothing is defined at import, so any
module (and any test) can import this one. `resolve(raw)` is the one place where flag values
become a config.Experiment, with every default resolved (the paper's from paper.py); `parse(argv)`
does it all on a fresh `FlagValues`.
"""

import dataclasses
import functools
import os

from absl import flags

from stew_tf import config as config_lib
from stew_tf import data
from stew_tf import flagfiles
from stew_tf import methods
from stew_tf import paper
from stew_tf import recording_flags
from stew_tf import records
from stew_tf import splits
from stew_tf import strong_flags
from stew_tf import tasks


def _positive(value):
  return value is None or value > 0


def define_flags(flag_values=flags.FLAGS):
  """Defines stew_tf.main's flags and their checks on `flag_values`."""
  _define_experiment_flags(flag_values)
  recording_flags.define(flag_values)
  strong_flags.define_per_teacher_flags(flag_values)
  _define_teacher_trainer_flags(flag_values)
  _define_numerics_flags(flag_values)
  _define_run_flags(flag_values)
  _register_checks(flag_values)


def _define_experiment_flags(fv):
  """The flags that determine what is trained."""
  flags.DEFINE_enum("dataset", "stew_synthetic", sorted(data.DATASETS),
                    "Dataset (a TFDS builder under datasets/).", flag_values=fv)
  flags.DEFINE_string("strong", "text", "Strong modality (training time only); several, "
                      "comma-separated, train one teacher each (docs/several_teachers.md); "
                      f"'{strong_flags.ALL}': every modality but --weak; 'auto': the "
                      "best-ranked one.", flag_values=fv)
  flags.DEFINE_string("weak", "audio", "Weak modality (the one used at test time).",
                      flag_values=fv)
  flags.DEFINE_string("label", None, "Target, for datasets with several (recola: arousal or "
                      "valence). Default: the dataset's first.", flag_values=fv)
  flags.DEFINE_enum("method", "cm_stew", list(methods.METHODS), "; ".join(
      f"{m.name}: {m.description}" for m in methods.METHODS.values()), flag_values=fv)
  flags.DEFINE_float("dcca_r1", paper.DCCA_R, "DCCA regulariser of the strong covariance, > 0 "
                     "(paper).", flag_values=fv)
  flags.DEFINE_float("dcca_r2", paper.DCCA_R, "DCCA regulariser of the weak covariance, > 0 "
                     "(paper).", flag_values=fv)
  flags.DEFINE_float("learning_rate", None, "Adam learning rate, in (0, 1]. Default: the "
                     "dataset's (paper: 1e-4 MOSI, 1e-5 RECOLA; 3e-3 for the default synthetic "
                     "data).",
                     flag_values=fv)
  flags.DEFINE_integer("batch_size", paper.BATCH_SIZE, "Clips per batch (paper: 32).",
                       lower_bound=2, flag_values=fv)
  flags.DEFINE_integer("epochs", None, "Maximum epochs per stage (exactly this many with "
                       "--validation=none). Default: the dataset's.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("patience", 10, "Early stopping: epochs without a better selection "
                       "metric before a stage stops.", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("dropout", 0.3, "Encoder dropout (Bi-GRU outputs, transformer attention, "
                     "FFN and residuals); paper grid 0.2-0.7.", lower_bound=0.0,
                     upper_bound=0.9, flag_values=fv)
  flags.DEFINE_float("classifier_dropout", paper.CLASSIFIER_DROPOUT, "Dropout between the "
                     "classifiers' two dense layers (paper: 0.3).", lower_bound=0.0,
                     upper_bound=0.9, flag_values=fv)
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
  flags.DEFINE_enum("select_on", splits.VALIDATION, list(splits.SELECT_ON), "Split whose metric "
                    "picks the "
                    "epoch (early stopping). 'test' is a DIAGNOSTIC of how optimistic test-set "
                    "selection is: its results are labelled 'selected on test' everywhere and "
                    "are not results.", flag_values=fv)
  flags.DEFINE_enum("validation", "split", list(splits.VALIDATION_PROTOCOLS), "split: hold out "
                    "the validation "
                    "split for early stopping; none: train on train+validation for exactly "
                    "--epochs epochs and report the last one (no selection at all).",
                    flag_values=fv)


def _define_numerics_flags(fv):
  """The flags that decide how sums are computed (part of the identity, like the experiment's)."""
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


def _define_teacher_trainer_flags(fv):
  """The teacher's own training settings; each defaults to the student's (the learning rate,
  which may differ per teacher, is a per-teacher flag)."""
  for name, kind, lower_bound in (("batch_size", flags.DEFINE_integer, 2),
                                  ("epochs", flags.DEFINE_integer, 1),
                                  ("patience", flags.DEFINE_integer, 1)):
    kind(f"strong_{name}", None, f"The teacher's (stage 1) --{name}. Default: --{name}.",
         lower_bound=lower_bound, flag_values=fv)


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
      "strong_learning_rate": (lambda v: v is None or all(0 < x <= 1 for x in v),
                               "expected a number in (0, 1]"),
      "strong_dropout": (lambda v: v is None or all(0 <= x <= 0.9 for x in v),
                         "expected a number in [0, 0.9]"),
      "alpha": (lambda v: min(v) >= 0, "expected a number >= 0 (0 turns alignment off)"),
      "beta": (lambda v: min(v) >= 0, "expected a number >= 0 (0 turns translation off)"),
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
      ["dataset", "strong", "weak", "method", "label", "manual_dir",
       *strong_flags.PER_TEACHER],
      _check_modalities,
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
  if values["weak"] not in spec.modalities:
    raise flags.ValidationError(
        f"--weak={values['weak']} is not a modality of --dataset={values['dataset']}; "
        f"choose one of: {valid}")
  # Methods without a strong modality ignore --strong; "auto" is resolved by ranking later.
  if method.uses_strong and values["strong"] != "auto":
    strong_flags.check(values, spec, method)
  if values["label"] is not None and values["label"] not in spec.labels:
    raise flags.ValidationError(
        f"--label={values['label']} is not a target of --dataset={values['dataset']}; choose "
        f"one of: {', '.join(spec.labels)}")
  return True


def _data(raw, spec, label):
  """The data branch; a corpus of recordings adds its resolved window and annotation delay."""
  settings = data.recording_settings(raw["dataset"], raw["manual_dir"],
                                     *(raw[name] for name in recording_flags.NAMES))
  return config_lib.Data(raw["dataset"], label, spec.task_of(label),
                         config_lib.Recordings(*settings) if settings else None)


def _default(value, fallback):
  return fallback if value is None else value


def _trainer(raw, spec, task, prefix="", teacher=0):
  """The trainer settings of the student (prefix "") or of teacher number `teacher` (prefix
  "strong_": each falls back to the student's)."""
  def value(name, fallback=None):
    own = raw.get(prefix + name)
    if prefix + name in strong_flags.PER_TEACHER:
      own = strong_flags.for_teacher(own, teacher)
    return _default(own, _default(raw[name], fallback))

  return config_lib.Trainer(
      learning_rate=value("learning_rate", spec.learning_rate),
      batch_size=value("batch_size"), epochs=value("epochs", spec.epochs),
      patience=value("patience"), monitor=tasks.get(task).monitor, select_on=raw["select_on"],
      validation=raw["validation"], seed=raw["seed"])


def _models(raw, spec, method, label):
  """The teacher(s), the student and the objective of `method`: per strong modality one
  teacher, alignment and translation, a tuple of them with several."""
  weak = raw["weak"]
  strong = strong_flags.modalities(raw["strong"], weak, spec)

  def gru_layers(side, modality):
    return _default(raw[f"{side}_gru_layers"],
                    paper.encoder_gru_layers(spec.paper_dataset, modality))

  def per_strong(make):
    made = tuple(make(index, modality) for index, modality in enumerate(strong))
    return made[0] if len(made) == 1 else made

  teacher = alignment = translation = None
  if method.trains_teacher:
    teacher = per_strong(lambda index, modality: config_lib.Teacher(
        modality=modality,
        encoder=config_lib.Encoder(
            gru_layers("strong", modality),
            _default(strong_flags.for_teacher(raw["strong_dropout"], index), raw["dropout"])),
        classifier_dropout=raw["classifier_dropout"],
        trainer=_trainer(raw, spec, spec.task_of(label), prefix="strong_", teacher=index)))
  student = config_lib.Student(
      modality=weak, classifier_dropout=raw["classifier_dropout"],
      encoder=(None if method.identity_encoder
               else config_lib.Encoder(gru_layers("weak", weak), raw["dropout"])))
  if method.alignment:
    alignment = per_strong(lambda index, _: config_lib.Alignment(
        strong_flags.for_teacher(raw["alpha"], index), raw["dcca_r1"], raw["dcca_r2"]))
  if method.translation:
    units, layers = paper.decoder_size(raw["dataset"], label, weak)
    translation = per_strong(lambda index, modality: config_lib.Translation(
        target=modality, beta=strong_flags.for_teacher(raw["beta"], index),
        decoder_units=_default(raw["decoder_units"], units),
        decoder_layers=_default(raw["decoder_layers"], layers)))
  objective = config_lib.Objective(alignment, translation) if alignment or translation else None
  return teacher, student, objective


def resolve(raw, strong_ranking=None):
  """A config.Experiment from raw flag values (a dict; None means 'the default')."""
  spec = data.get_spec(raw["dataset"], raw["manual_dir"])
  method = methods.get(raw["method"])
  label = raw["label"] or spec.labels[0]
  teacher, student, objective = _models(raw, spec, method, label)
  config = config_lib.Experiment(
      method=method.name, data=_data(raw, spec, label),
      teacher=teacher, student=student, objective=objective,
      trainer=_trainer(raw, spec, spec.task_of(label)),
      numerics=config_lib.Numerics(
          deterministic=raw["deterministic"], strategy=raw["strategy"],
          mixed_precision=raw["mixed_precision"], jit_compile=raw["jit_compile"],
          intra_op_threads=_default(raw["intra_op_threads"],
                                    config_lib.default_intra_op_threads())),
      runtime=config_lib.Runtime(
          workdir="", teacher_cache="", data_dir=raw["data_dir"], manual_dir=raw["manual_dir"],
          download=raw["download"], overwrite=raw["overwrite"],
          stop_after_steps=raw["stop_after_steps"], inter_op_threads=raw["inter_op_threads"],
          strong_ranking=strong_ranking))
  workdir = raw["workdir"] or config_lib.default_workdir(config, _changed_settings(config, raw))
  teacher_cache = raw["teacher_cache"] or os.path.join(
      os.path.dirname(os.path.normpath(workdir)), "teachers")
  runtime = dataclasses.replace(config.runtime, workdir=workdir, teacher_cache=teacher_cache)
  return dataclasses.replace(config, runtime=runtime)


def _changed_settings(config, raw):
  """The settings (leaves of the tree but runtime) in which `config` differs from the defaults
  of its experiment (dataset, label, modalities, method and seed)."""
  named = ("dataset", "label", "strong", "weak", "method", "seed", "manual_dir")
  defaults = {**_defaults(), **{k: raw[k] for k in named}, "workdir": "-"}
  baseline = records.flatten(resolve(defaults).identity({}))
  return {k: v for k, v in records.flatten(config.identity({})).items() if baseline.get(k) != v}


@functools.cache
def _defaults():
  fv = flags.FlagValues()
  define_flags(fv)
  return {name: fv[name].default for name in fv}


def default_values():
  """{flag name: default value} of every stew_tf.main flag (None: resolved by `resolve`)."""
  return dict(_defaults())


def from_flag_values(flag_values, strong=None, strong_ranking=None):
  """The config of parsed `flag_values`; `strong` replaces --strong=auto with the modality that
  the ranking in `strong_ranking` chose."""
  raw = {name: flag_values[name].value for name in _defaults()}
  if strong is not None:
    raw["strong"] = strong
  return resolve(raw, strong_ranking)


def parse(argv):
  """Parses `argv` (argv[0] is the program; flagfiles may include others, relative to
  themselves) on fresh flags; returns the config.Experiment.

  Raises flags.Error (e.g. flags.IllegalFlagValueError) with the one-line message of a bad flag.
  """
  fv = flags.FlagValues()
  define_flags(fv)
  fv(flagfiles.expand_argv(argv))
  return from_flag_values(fv)
