"""Equal-budget tuning of a table's rows (`python -m stew_tf.reproduce --tune=N`).

Every row of the table gets one stew_tf.tune study (`<out>/<experiment>/study/`) of the same N
trials, the same sampler seed and the same trial seed, TUNING_SEED, which no table seed reaches:
- first the labels-only rows (enc_cls, cls_only), among them each strong modality's enc_cls,
  whose chosen settings become that teacher's (--strong_dropout, --strong_learning_rate: one
  value per teacher when a row has several);
- then the transfer rows (cm_stew, no_lfa, no_decoder), their teachers pinned to those settings
  and shared by every trial through `<out>/teachers`.
A study that has its trials is not run again; a killed one resumes. The chosen settings (the best
trial's, on validation) are returned for the table's seeds to train with.
"""

from stew_tf import flagfiles
from stew_tf import records
from stew_tf import runner as runner_lib
from stew_tf import search_space
from stew_tf import strong_flags
from stew_tf import tune

TUNING_SEED = 1000  # trials and sampler; the table's seeds are 0..N-1, far below
CHOICES_FILE = "tuned_settings.json"
TRANSFER_METHODS = ("cm_stew", "no_lfa", "no_decoder")
# A labels-only row's chosen setting -> the flag that gives it to the teacher of a transfer row.
TEACHER_FLAGS = {"dropout": "strong_dropout", "learning_rate": "strong_learning_rate"}


def is_transfer(experiment):
  return experiment.flag("method") in TRANSFER_METHODS


def strong_modalities(experiment):
  """The transfer row's teachers' modalities, in --strong's order."""
  strong = experiment.flag("strong") or ""
  if strong == strong_flags.ALL:
    raise runner_lib.ReproduceError(
        f"{experiment.flagfile}: --strong={strong_flags.ALL}; --tune needs the strong "
        "modalities named (e.g. --strong=text,video) to tune each teacher on its enc_cls row")
  return strong_flags.modalities(strong, experiment.flag("weak"), spec=None)


def _key(experiment, modality):
  return experiment.flag("dataset"), experiment.flag("label"), modality


def with_teachers(experiments, table):
  """`experiments` plus the enc_cls row of each transfer row's strong modalities (the
  teachers, tuned first), labels-only rows first."""
  enc_cls = {_key(e, e.flag("weak")): e for e in flagfiles.find_experiments(table)
             if e.flag("method") == "enc_cls"}
  needed = list(experiments)
  for experiment in filter(is_transfer, experiments):
    for modality in strong_modalities(experiment):
      teacher = enc_cls.get(_key(experiment, modality))
      if teacher is None:
        raise runner_lib.ReproduceError(
            f"{experiment.flagfile}: no flags/{table}_{modality}_enc_cls.cfg to tune its "
            f"{modality} teacher on; --tune needs each strong modality's enc_cls experiment")
      if teacher not in needed:
        needed.append(teacher)
  return sorted(needed, key=is_transfer)


class TableTuner:
  """Runs the studies of a table's rows, in order, and keeps their choices."""

  def __init__(self, trials, out, jobs=1, main_args=(), command=runner_lib.MAIN_COMMAND,
               log=print):
    self.trials, self.out, self.jobs, self.log = trials, out, jobs, log
    self.main_args, self.command = list(main_args), command
    self.choices = {}
    self.enc_cls = {}  # (dataset, label, modality) -> its enc_cls row's choice: its teacher's

  def teacher_args(self, experiment):
    """The teachers' tuned settings as flags, one value per teacher when they differ (none for
    a labels-only row)."""
    if not is_transfer(experiment):
      return []
    teachers = [self.enc_cls[_key(experiment, m)] for m in strong_modalities(experiment)]
    return [f"--{flag}={strong_flags.flag_value([t[name] for t in teachers])}"
            for name, flag in TEACHER_FLAGS.items() if all(name in t for t in teachers)]

  def study(self, experiment):
    """Runs (or resumes, or reads) the experiment's study; returns its choice record."""
    study_dir = self.out / experiment.name / "study"
    argv = ["stew_tf.tune", f"--flagfile={experiment.flagfile}", f"--trials={self.trials}",
            f"--study={study_dir}", f"--jobs={self.jobs}", "--best_seeds=0",
            f"--seed={TUNING_SEED}", *self.teacher_args(experiment), *self.main_args]
    try:
      request = tune.Request(argv)
      request.teacher_cache = self.out / "teachers"
      self.log(f"{experiment.name}: a study of {self.trials} trials over "
               f"{', '.join(d.name for d in request.dimensions)} (run, resumed or read: "
               f"{study_dir})")
      tuner = tune.Tuner(request, tune.load_study(request), self.command,
                         lambda line: self.log(f"{experiment.name} {line}"))
      record = tuner.run()
    except (tune.TuneError, records.RecordError, search_space.SearchSpaceError) as error:
      raise runner_lib.ReproduceError(f"{experiment.name}: {error}") from None
    if record["best"] is None:
      raise runner_lib.ReproduceError(f"{experiment.name}: no trial of {study_dir} finished "
                                      "(see study.md there)")
    completed = [t for t in record["trials"] if t["state"] == "COMPLETE"]
    return {"key": list(_key(experiment, experiment.flag("weak"))),
            "settings": record["best"]["settings"], "validation": record["best"]["validation"],
            "objective": record["objective"], "trial": record["best"]["number"],
            "trials": len(record["trials"]), "completed": len(completed),
            "trial_seconds": sum(t["wall_seconds"] or 0.0 for t in record["trials"]),
            "teacher": dict(arg[2:].split("=", 1) for arg in self.teacher_args(experiment)),
            "sampler_seed": TUNING_SEED, "study": str(study_dir)}

  def tune(self, experiments):
    """Tunes every experiment (labels-only rows first); returns {name: choice}."""
    for experiment in experiments:
      choice = self.choices[experiment.name] = self.study(experiment)
      if experiment.flag("method") == "enc_cls":
        self.enc_cls[tuple(choice["key"])] = choice["settings"]
    return self.choices


def seed_settings(choice):
  """A row's chosen settings and its teachers', as (flag, value) pairs for its seed runs (a
  number, or the text of one number per teacher)."""
  teacher = [(flag, value if "," in value else float(value))
             for flag, value in choice["teacher"].items()]
  return tuple(sorted(choice["settings"].items())) + tuple(teacher)
