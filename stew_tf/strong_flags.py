"""--strong with several modalities (one teacher each) and the per-teacher weights --alpha and
--beta: their values and their one-line checks (cli_flags.py defines the flags)."""

from absl import flags

ALL = "all"  # --strong=all: every modality of the dataset but the weak one


class Weights(tuple):
  """--alpha or --beta: one weight for every teacher, or one per teacher ("0.1,0.2")."""

  def __str__(self):
    return ",".join(map(str, self))


class WeightsParser(flags.ArgumentParser):
  syntactic_help = "a number, or one per strong modality, comma-separated"

  def parse(self, argument):
    if isinstance(argument, (tuple, list)):
      return Weights(float(value) for value in argument)
    try:
      return Weights(float(value) for value in str(argument).split(","))
    except ValueError:
      raise ValueError(f"expected {self.syntactic_help}") from None

  def flag_type(self):
    return "float list"


def modalities(strong, weak, spec):
  """The modalities that --strong names (--strong=all: every one of `spec`'s but `weak`)."""
  if strong == ALL:
    return tuple(m for m in spec.modalities if m != weak)
  return tuple(m.strip() for m in strong.split(","))


def check(values, spec, method):
  """--strong names modalities of the dataset, each once, not the weak one; --alpha and --beta
  give one weight, or one per strong modality."""
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
  for name, used in (("alpha", method.alignment), ("beta", method.translation)):
    if used and len(values[name]) not in (1, len(chosen)):
      raise flags.ValidationError(
          f"--{name}={values[name]}: expected one weight for every teacher, or one per strong "
          f"modality of --strong={strong} ({len(chosen)}: {', '.join(chosen)})")
