"""absl flagfiles whose includes are relative to the including file, and the experiments of the
paper's tables (one flagfile each: flags/<table>_*.cfg, built on a base in flags/base/).

absl resolves a `--flagfile=` line inside a flagfile against the working directory, so an include
would break when stew_tf.main runs from another folder. `expand_argv` replaces each `--flagfile=`
argument by the flags its file holds, following includes relative to the including file; absl
then parses the result like any command line (later flags still override earlier ones).
"""

import dataclasses
import os
import pathlib

from absl import flags

from stew_tf import paper

FLAGFILE_DIR = pathlib.Path(__file__).resolve().parent.parent / "flags"
_DIRECTIVES = ("--flagfile", "-flagfile")  # the spellings absl accepts


class FlagfileError(flags.Error):
  """A flagfile cannot be read, or no experiment matches; one line naming the file (and line)."""


def expand_argv(argv):
  """`argv` (argv[0] is the program) with each `--flagfile=PATH` or `--flagfile PATH` replaced,
  in place, by the flags of PATH (relative to the working directory), whose own `--flagfile=`
  lines are expanded relative to the file that holds them. Arguments after `--` are kept as they
  are. Raises FlagfileError for a file that cannot be read or an include cycle."""
  expanded, rest = list(argv[:1]), list(argv[1:])
  while rest:
    arg = rest.pop(0)
    name, has_value, path = arg.partition("=")
    if arg == "--":
      return expanded + [arg] + rest
    if name not in _DIRECTIVES:
      expanded.append(arg)
      continue
    if not has_value:
      if not rest:
        raise FlagfileError(f"{arg} with no file name")
      path = rest.pop(0)
    expanded += _flags_of(os.path.expanduser(path), f"--flagfile={path}", ())
  return expanded


def _flags_of(path, asked_by, including):
  """The flag lines of the flagfile `path`, its includes expanded. `asked_by` names the argument
  or `file:line` that asked for it; `including`: the files that include it, outermost first."""
  if os.path.realpath(path) in map(os.path.realpath, including):
    cycle = " -> ".join([*including, path])
    raise FlagfileError(f"{asked_by}: include cycle: {cycle}")
  try:
    text = pathlib.Path(path).read_text()
  except OSError as error:
    raise FlagfileError(f"{asked_by}: cannot read {path}: {error.strerror or error}") from None
  lines = []
  for number, line in enumerate(text.splitlines(), 1):
    line = line.strip()
    if not line or line.startswith(("#", "//")):
      continue
    name, has_value, included = line.partition("=")
    if name not in _DIRECTIVES:
      lines.append(line)
    elif not has_value:
      raise FlagfileError(f"{path}:{number}: {line}: expected --flagfile=PATH (PATH relative "
                          "to this file)")
    else:
      included = os.path.join(os.path.dirname(path), os.path.expanduser(included))
      lines += _flags_of(os.path.normpath(included), f"{path}:{number}: {line}",
                         (*including, path))
  return lines


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One flagfile: its name (the file's stem) and its `--name=value` lines, includes followed."""
  name: str
  flagfile: pathlib.Path
  flags: tuple  # (name, value) pairs in the order absl reads them: a later pair overrides

  def flag(self, name, default=None):
    return dict(self.flags).get(name, default)


def read_flagfile(path):
  """The (name, value) pairs of an absl flagfile and of the files it includes, in the order absl
  reads them; comments and blank lines left out."""
  pairs = []
  for line in _flags_of(str(path), f"--flagfile={path}", ()):
    name, _, value = line.removeprefix("--").partition("=")
    pairs.append((name, value))
  return tuple(pairs)


def _table_of(stem):
  """The table a flagfile belongs to: the longest table name that prefixes `<table>_`."""
  owners = [table for table in paper.TABLES if stem.startswith(f"{table}_")]
  return max(owners, key=len) if owners else None


def find_experiments(table, only=None, flagfile_dir=FLAGFILE_DIR):
  """The experiments of a table (`<table>_*.cfg`, not those of a longer table name such as
  mosi_score for mosi), those whose name contains one of `only`'s comma-separated parts if
  given."""
  paths = [p for p in sorted(pathlib.Path(flagfile_dir).glob(f"{table}_*.cfg"))
           if _table_of(p.stem) == table]
  if not paths:
    raise FlagfileError(f"No flagfile {table}_*.cfg in {flagfile_dir}.")
  parts = only.split(",") if only else None
  chosen = [Experiment(p.stem, p.resolve(), read_flagfile(p)) for p in paths
            if not parts or any(part in p.stem for part in parts)]
  if not chosen:
    raise FlagfileError(f"--only={only} matches no experiment of --table={table}; the "
                        f"experiments are: {', '.join(p.stem for p in paths)}")
  return chosen
