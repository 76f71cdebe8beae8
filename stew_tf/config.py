"""The experiment config: a tree whose structure is the identity of what a run trains.

  Experiment
    method     a row of methods.py
    data       dataset, label and its task; for recordings of continuous labels, how their audio
               becomes features and labels (window, annotation delay)
    teacher    the strong modality's encoder, classifier and own trainer settings (None: no
               teacher); with several strong modalities a tuple of them, in --strong's order
    student    the weak modality's encoder and classifier (the deployed model)
    objective  alignment (alpha, r1, r2) and translation (target, beta, decoder), each None when
               off (a tuple, one per strong modality, with several); None for the labels-only
               methods
    trainer    the student's training: learning rate, batch size, epochs, patience, the monitored
               metric, the split and protocol that select the epoch, the seed
    numerics   how sums are computed: determinism, threads per op, strategy, precision, XLA
    runtime    where things are and how this process runs: nothing here changes a number

A run's identity is everything but `runtime`, plus the prepared data's fingerprint and the stew_tf
version; a teacher's identity is the data, the teacher (with its trainer) and the numerics, plus
the same two: the same with or without other teachers in the run. One strong modality keeps the
single branches (records and HParams names as they were); the tuple accessors (`teachers`,
`alignments`, `translations`, `strong_modalities`) read either shape. No list of field names
decides what belongs where: the tree does.
`cli_flags.py` maps stew_tf.main's flags onto this tree.
"""

import dataclasses
import functools
import hashlib
import json
import os

import stew_tf
from stew_tf import data as data_lib
from stew_tf import methods


@dataclasses.dataclass(frozen=True)
class Recordings:
  """--dataset=recordings with continuous labels (--recording_window, --annotation_delay, else
  the corpus's spec.json, else the defaults): both change the prepared data."""
  window_seconds: float  # audio over which each 40 ms frame's eGeMAPS functionals are computed
  annotation_delay: float  # seconds; frame t gets the label rated at t + delay


@dataclasses.dataclass(frozen=True)
class Data:
  dataset: str
  label: str
  task: str  # a row of tasks.py, set by the dataset and label
  # None for every other dataset and for segment labels; then left out of the tree (as_dict), so
  # that those runs' identities and teacher cache entries stay what they were.
  recordings: Recordings | None = None


@dataclasses.dataclass(frozen=True)
class Encoder:
  """Bi-GRU layers and a transformer encoder (models.build_encoder)."""
  gru_layers: int
  dropout: float  # Bi-GRU outputs, attention weights, FFN and residuals


@dataclasses.dataclass(frozen=True)
class Trainer:
  learning_rate: float
  batch_size: int
  epochs: int  # at most (exactly, with validation "none")
  patience: int  # epochs without a better monitored metric before a stage stops
  monitor: str  # the metric that picks the epoch (the task's)
  select_on: str  # the split whose metric picks the epoch: splits.SELECT_ON
  validation: str  # "split": hold out the validation split; "none": train on train+validation
  seed: int


@dataclasses.dataclass(frozen=True)
class Teacher:
  """The strong model of stage 1, trained with its own settings and frozen for stage 2."""
  modality: str
  encoder: Encoder
  classifier_dropout: float
  trainer: Trainer


@dataclasses.dataclass(frozen=True)
class Student:
  """The weak model; `encoder` None: the classifier sees the normalised features (cls_only)."""
  modality: str
  encoder: Encoder | None
  classifier_dropout: float


@dataclasses.dataclass(frozen=True)
class Alignment:
  """alpha * (-DCCA correlation) between the teacher's and the student's latents (eq. 5-7)."""
  alpha: float
  r1: float  # regulariser of the teacher's covariance
  r2: float  # regulariser of the student's covariance


@dataclasses.dataclass(frozen=True)
class Translation:
  """beta * MAE of a decoder from the student's latents to the target's normalised features."""
  target: str  # the strong modality whose features are decoded
  beta: float
  decoder_units: int
  decoder_layers: int


@dataclasses.dataclass(frozen=True)
class Objective:
  """Per strong modality (a tuple with several, in --strong's order): its alignment and
  translation terms."""
  alignment: Alignment | tuple[Alignment, ...] | None
  translation: Translation | tuple[Translation, ...] | None


@dataclasses.dataclass(frozen=True)
class Numerics:
  deterministic: bool
  strategy: str  # tf.distribute: "default", "mirrored", "multi_worker"
  mixed_precision: bool
  jit_compile: bool
  intra_op_threads: int  # how sums are split across threads, hence their last bits


@dataclasses.dataclass(frozen=True)
class Runtime:
  workdir: str
  teacher_cache: str
  data_dir: str | None
  manual_dir: str | None
  download: bool
  overwrite: bool
  stop_after_steps: int
  inter_op_threads: int | None  # None: TensorFlow's default (one per usable CPU)
  strong_ranking: str | None = None  # the ranking.json that chose --strong=auto's modality


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Every choice of one run, defaults resolved; written to run.json and results.json."""
  method: str
  data: Data
  teacher: Teacher | tuple[Teacher, ...] | None  # a tuple: several strong modalities
  student: Student
  objective: Objective | None
  trainer: Trainer
  numerics: Numerics
  runtime: Runtime

  @functools.cached_property
  def spec(self):
    # Read once: for --dataset=clips it comes from the manual dir's spec.json.
    return data_lib.get_spec(self.data.dataset, self.runtime.manual_dir)

  @property
  def method_info(self):
    return methods.get(self.method)

  @property
  def alignment(self):
    return self.objective and self.objective.alignment

  @property
  def translation(self):
    return self.objective and self.objective.translation

  @property
  def teachers(self):
    """The teachers, one per strong modality (none without alignment)."""
    return _as_tuple(self.teacher)

  @property
  def alignments(self):
    return _as_tuple(self.alignment)

  @property
  def translations(self):
    return _as_tuple(self.translation)

  @property
  def strong_modalities(self):
    """The strong modalities (the teachers', or the translations' targets), in --strong's order."""
    return (tuple(t.modality for t in self.teachers)
            or tuple(t.target for t in self.translations))

  @property
  def strong(self):
    """The strong modality, "text+video" for several, or None (names runs and table rows)."""
    return "+".join(self.strong_modalities) or None

  @property
  def modalities(self):
    """The modalities that training reads: the strong ones (if any) first."""
    return (*self.strong_modalities, self.student.modality)

  def as_dict(self):
    """The whole tree, runtime included (results.json); several teachers as lists."""
    tree = _lists(dataclasses.asdict(self))
    if self.data.recordings is None:
      del tree["data"]["recordings"]
    return tree

  def identity(self, data_record):
    """What determines the trained models: every branch but runtime, the prepared data's
    record (data.data_record) and the stew_tf version (run.json)."""
    tree = {k: v for k, v in self.as_dict().items() if k != "runtime"}
    return {**tree, "prepared_data": data_record, "stew_tf_version": stew_tf.__version__}

  def teacher_identity(self, data_record, teacher=None):
    """What determines `teacher` (None: the only one): the data, the teacher with its trainer,
    the numerics, the prepared data and the version; nothing of the student, the objective or
    the other teachers."""
    (teacher,) = (teacher,) if teacher else self.teachers
    tree = self.as_dict()
    return {"data": tree["data"], "teacher": dataclasses.asdict(teacher),
            "numerics": tree["numerics"], "prepared_data": data_record,
            "stew_tf_version": stew_tf.__version__}


def _as_tuple(branch):
  """A branch that is one item, a tuple of them (several strong modalities), or None."""
  if branch is None:
    return ()
  return branch if isinstance(branch, tuple) else (branch,)


def _lists(value):
  """`value` with its tuples as lists, as they read back from JSON."""
  if isinstance(value, dict):
    return {key: _lists(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [_lists(item) for item in value]
  return value


def settings_hash(settings, length=8):
  text = json.dumps(settings, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:length]


def default_workdir(config, changed=None):
  """runs/<dataset>[-<label>]-[<strong>-]<weak>-<method>-seed<seed>[-<hash>] (<strong>: e.g.
  text+video for several strong modalities).

  The hash (of the settings that differ from the experiment's defaults) keeps runs that differ
  in anything that changes the model apart.
  """
  parts = [config.data.dataset.replace("/", "_")]
  if len(config.spec.labels) > 1:
    parts.append(config.data.label)
  if config.strong:
    parts.append(config.strong)
  parts += [config.student.modality, config.method, f"seed{config.trainer.seed}"]
  if changed:
    parts.append(settings_hash(changed))
  return os.path.join("runs", "-".join(parts))


def usable_cpus():
  """The CPUs this process may run on (all of them where the OS cannot say)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def default_intra_op_threads():
  """Half the usable CPUs, at least 1: measured faster than TensorFlow's default (all of them)
  on 2 CPUs, where each direction of a Bi-GRU then has a CPU to itself."""
  return max(1, usable_cpus() // 2)
