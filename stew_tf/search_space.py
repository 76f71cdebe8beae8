"""What `python -m stew_tf.tune` searches: the one table of dimensions, and which of them apply.

Each dimension is a stew_tf.main flag with its range and the leaf of the config tree it sets.
Which dimensions apply to a run is read from its resolved config (a student without an encoder
has no dropout, an objective without alignment no alpha), never from the method's name.
"""

import dataclasses
from typing import Callable

from absl import flags
import optuna

from stew_tf import cli_flags
from stew_tf import paper


class SearchSpaceError(Exception):
  """`--search` asks for something that cannot be searched; one line naming it."""


@dataclasses.dataclass(frozen=True)
class Dimension:
  """One searched stew_tf.main flag.

  Attributes:
    name: the flag (and the `--search` name).
    leaf: its leaf in the flattened config tree (records.flatten of Experiment.as_dict()).
    applies: f(config.Experiment) -> whether the run has the part this flag sets.
    choices: the values of a categorical dimension, or None.
    low, high: the range of a continuous dimension (log-uniform when `log`).
  """
  name: str
  leaf: str
  applies: Callable
  choices: tuple | None = None
  low: float | None = None
  high: float | None = None
  log: bool = False

  def distribution(self):
    if self.choices is not None:
      return optuna.distributions.CategoricalDistribution(self.choices)
    return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

  def describe(self):
    """The dimension as a record (study_settings.json)."""
    if self.choices is not None:
      return {"choices": list(self.choices)}
    return {"low": self.low, "high": self.high, "log": self.log}


DIMENSIONS = {d.name: d for d in (
    Dimension("dropout", "student.encoder.dropout", choices=paper.DROPOUT_GRID,
              applies=lambda config: config.student.encoder is not None),
    Dimension("learning_rate", "trainer.learning_rate", low=1e-5, high=1e-2, log=True,
              applies=lambda config: True),
    Dimension("alpha", "objective.alignment.alpha", low=1e-3, high=1.0, log=True,
              applies=lambda config: config.alignment is not None),
    Dimension("beta", "objective.translation.beta", low=1e-2, high=10.0, log=True,
              applies=lambda config: config.translation is not None),
)}


def applicable(config):
  """The names of the dimensions that apply to `config`, in table order."""
  return [name for name, dimension in DIMENSIONS.items() if dimension.applies(config)]


def is_valid_value(flag, value):
  """Whether stew_tf.main accepts `--flag=value` (its bounds and checks)."""
  flag_values = flags.FlagValues()
  cli_flags.define_flags(flag_values)
  try:
    flag_values(["stew_tf.main", f"--{flag}={value!r}"])
  except flags.Error:
    return False
  return True


def _narrowed(dimension, low, high, item):
  """`dimension` restricted to [low, high], checked against the flag's valid values."""
  def fail(expected):
    raise SearchSpaceError(f"--search={item}: expected {expected}")
  try:
    low, high = float(low), float(high)
  except ValueError:
    fail(f"{dimension.name}:LOW:HIGH with two numbers")
  if not low < high:
    fail("LOW < HIGH")
  for bound in (low, high):
    if not is_valid_value(dimension.name, bound) or (dimension.log and bound <= 0):
      fail(f"a range of valid --{dimension.name} values ({bound:g} is not one; log-uniform "
           "ranges need LOW > 0)")
  if dimension.choices is not None:
    kept = tuple(c for c in dimension.choices if low <= c <= high)
    if not kept:
      fail(f"a range holding one of {', '.join(map(str, dimension.choices))}")
    return dataclasses.replace(dimension, choices=kept)
  return dataclasses.replace(dimension, low=low, high=high)


def choose(config, search, fixed):
  """The dimensions to search for `config`.

  Args:
    config: the resolved base config.Experiment.
    search: None (every dimension that applies and is not fixed) or the `--search` value, e.g.
      "dropout,alpha:0.01:1" (NAME or NAME:LOW:HIGH, comma-separated).
    fixed: the flags given on the command line or in a flagfile: never searched.
  Raises SearchSpaceError naming what cannot be searched and what can.
  """
  open_names = [name for name in applicable(config) if name not in fixed]
  searchable = ", ".join(open_names) or "none"
  if search is None:
    chosen = [DIMENSIONS[name] for name in open_names]
  else:
    chosen = []
    for item in filter(None, (part.strip() for part in search.split(","))):
      name, *bounds = item.split(":")
      if name not in DIMENSIONS:
        raise SearchSpaceError(f"--search={search}: unknown dimension {name!r}; expected some "
                               f"of: {', '.join(DIMENSIONS)}")
      if name not in applicable(config):
        raise SearchSpaceError(f"--search={search}: --method={config.method} has no {name}; "
                               f"searchable here: {searchable}")
      if name in fixed:
        raise SearchSpaceError(f"--search={search}: --{name} is given (fixed); drop one or "
                               "the other")
      if bounds and len(bounds) != 2:
        raise SearchSpaceError(f"--search={item}: expected NAME or NAME:LOW:HIGH")
      chosen.append(_narrowed(DIMENSIONS[name], *bounds, item) if bounds else DIMENSIONS[name])
  if not chosen:
    raise SearchSpaceError(f"--search: nothing to search (searchable here: {searchable}; flags "
                           "given on the command line or in the flagfile stay fixed)")
  return chosen
