"""--strong with several modalities (one teacher each) and the per-teacher flags --alpha,
--beta, --strong_dropout and --strong_learning_rate: the latter's definitions, and the values and
one-line checks of both (cli_flags.py defines --strong)."""

from absl import flags

ALL = "all"  # --strong=all: every modality of the dataset but the weak one


# The flags that take one value for every teacher or one per teacher, and the method's part they
# set (a method without it ignores them).
PER_TEACHER = {"alpha": "alignment", "beta": "translation", "strong_dropout": "trains_teacher",
               "strong_learning_rate": "trains_teacher"}


class PerTeacher(tuple):
  """One value for every teacher, or one per teacher ("0.1,0.2")."""

  def __str__(self):
    return ",".join(map(str, self))


class PerTeacherParser(flags.ArgumentParser):
  syntactic_help = "a number, or one per strong modality, comma-separated"

  def parse(self, argument):
    if isinstance(argument, (tuple, list)):
      return PerTeacher(float(value) for value in argument)
    try:
      return PerTeacher(float(value) for value in str(argument).split(","))
    except ValueError:
      raise ValueError(f"expected {self.syntactic_help}") from None

  def flag_type(self):
    return "float list"


def define_per_teacher_flags(fv):
  """The flags that take one value for every teacher, or one per strong modality."""
  each = "one for every strong modality, or one per strong modality (comma-separated)"
  for name, default, text in (
      ("alpha", "0.1", "Weight of the DCCA alignment loss (-correlation), >= 0; "
       f"{each}. Chosen on validation data; see README."),
      ("beta", "1.0", "Weight of the MAE translation loss, >= 0; "
       f"{each}. Chosen on validation data; see README."),
      ("strong_dropout", None, f"Strong encoder dropout, in [0, 0.9]; {each}. Default: "
       "--dropout."),
      ("strong_learning_rate", None, f"The teacher's Adam learning rate, in (0, 1]; {each}. "
       "Default: --learning_rate.")):
    flags.DEFINE(PerTeacherParser(), name, default, text, flag_values=fv,
                 serializer=flags.CsvListSerializer(","))


def flag_value(values):
  """A per-teacher flag's text for teachers' `values`: the one value (every digit) if all are
  equal, else each, comma-separated."""
  distinct = list(dict.fromkeys(values))
  return repr(distinct[0]) if len(distinct) == 1 else ",".join(map(repr, values))


def modalities(strong, weak, spec):
  """The modalities that --strong names (--strong=all: every one of `spec`'s but `weak`)."""
  if strong == ALL:
    return tuple(m for m in spec.modalities if m != weak)
  return tuple(m.strip() for m in strong.split(","))


def check(values, spec, method):
  """--strong names modalities of the dataset, each once, not the weak one; the PER_TEACHER
  flags give one value, or one per strong modality."""
  strong, weak, dataset = values["strong"], values["weak"], values["dataset"]
  valid = ", ".join(spec.modalities)
  chosen = modalities(strong, weak, spec)
  if strong == ALL and not chosen:
    raise flags.ValidationError(f"--strong={ALL}: --dataset={dataset} has no modality "
                                f"but --weak={weak}; expected a dataset with two or more")
  if "" in chosen:
    raise flags.ValidationError(f"--strong={strong}: expected one modality or several, "
                                f"comma-separated, of: {valid} (or {ALL})")
  for modality in chosen:
    if modality not in spec.modalities:
      raise flags.ValidationError(
          f"--strong={strong}: {modality} is not a modality of --dataset={dataset}; choose "
          f"one or several (comma-separated) of: {valid}")
    if chosen.count(modality) > 1:
      raise flags.ValidationError(f"--strong={strong} names {modality} twice; name each strong "
                                  "modality once")
  if weak in chosen:
    raise flags.ValidationError(
        f"--strong and --weak are both {weak}; --method={values['method']} transfers from one "
        f"modality to another, so pick two different ones of: {valid}" if len(chosen) == 1 else
        f"--strong={strong} holds the weak modality {weak} (--weak); expected others of: {valid}")
  for name, part in PER_TEACHER.items():
    given = values[name]
    if getattr(method, part) and given is not None and len(given) not in (1, len(chosen)):
      raise flags.ValidationError(
          f"--{name}={given}: expected one value for every teacher, or one per strong "
          f"modality of --strong={strong} ({len(chosen)}: {', '.join(chosen)})")


def for_teacher(values, index):
  """The value of a PER_TEACHER flag's `values` for teacher `index` (None stays None)."""
  if values is None:
    return None
  return values[index] if len(values) > 1 else values[0]
