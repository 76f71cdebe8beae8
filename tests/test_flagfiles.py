"""flags/ and stew_tf.flagfiles: every experiment flagfile (a base plus its own flags) resolves to
exactly the config its flat predecessor gave (tests/golden/flagfile_configs.json, written by the
code before the rewrite), states nothing that a default already says, and its includes are found
relative to the including file, from any working directory."""

import json
import os

from absl import flags
import pytest

from stew_tf import cli_flags
from stew_tf import flagfiles
from stew_tf import methods
from stew_tf import paper
from tests.helpers import REPO_ROOT
from tests.helpers import run_main

GOLDEN = json.loads((REPO_ROOT / "tests" / "golden" / "flagfile_configs.json").read_text())
EXPERIMENTS = [e for table in paper.TABLES for e in flagfiles.find_experiments(table)]
# Flags that name an experiment: written out even where they equal a default.
NAMING_FLAGS = ("dataset", "label", "strong", "weak", "method")


def resolved(*args):
  """The golden file's flat form of the config tree that stew_tf.main's flags `args` resolve
  to: the old flag names of the settings present in the tree (a method without a teacher, an
  objective term or an encoder has none of theirs), less intra_op_threads (its default depends
  on the machine's CPUs)."""
  config = cli_flags.parse(["main", *args])
  trainer, numerics, student = config.trainer, config.numerics, config.student
  flat = {"dataset": config.data.dataset, "label": config.data.label, "method": config.method,
          "strong": config.strong, "weak": student.modality,
          "classifier_dropout": student.classifier_dropout,
          "learning_rate": trainer.learning_rate, "batch_size": trainer.batch_size,
          "epochs": trainer.epochs, "patience": trainer.patience, "seed": trainer.seed,
          "select_on": trainer.select_on, "validation": trainer.validation,
          "deterministic": numerics.deterministic, "strategy": numerics.strategy,
          "mixed_precision": numerics.mixed_precision, "jit_compile": numerics.jit_compile}
  if student.encoder:
    flat.update(weak_gru_layers=student.encoder.gru_layers, dropout=student.encoder.dropout)
  for teacher in config.teachers:
    # The flat config had one set of training settings and one classifier dropout for both.
    assert teacher.trainer == trainer
    assert teacher.classifier_dropout == student.classifier_dropout
  # One value per setting; with several strong modalities, a list of one per modality.
  flat.update(_each(config.teachers, strong_gru_layers=lambda t: t.encoder.gru_layers,
                    strong_dropout=lambda t: t.encoder.dropout))
  flat.update(_each(config.alignments, alpha=lambda a: a.alpha, dcca_r1=lambda a: a.r1,
                    dcca_r2=lambda a: a.r2))
  flat.update(_each(config.translations, beta=lambda t: t.beta,
                    decoder_units=lambda t: t.decoder_units,
                    decoder_layers=lambda t: t.decoder_layers))
  return flat


def _each(branches, **settings):
  """{name: the setting of the one branch, or a list of each branch's}; {} without branches."""
  if not branches:
    return {}
  values = {name: [get(branch) for branch in branches] for name, get in settings.items()}
  return {name: found[0] if len(found) == 1 else found for name, found in values.items()}


def golden(name, **changed):
  """GOLDEN[name] less the settings its method has no part for (the flat config recorded them
  all: alpha 0 without alignment, the unused encoder's layers, ...), with `changed` applied to
  those it has."""
  method = methods.get(GOLDEN[name]["method"])
  unused = set()
  if not method.trains_teacher:
    unused |= {"strong_gru_layers", "strong_dropout"}
  if not method.alignment:
    unused |= {"alpha", "dcca_r1", "dcca_r2"}
  if not method.translation:
    unused |= {"beta", "decoder_units", "decoder_layers"}
  if method.identity_encoder:
    unused |= {"weak_gru_layers", "dropout"}
  kept = {k: v for k, v in GOLDEN[name].items() if k not in unused}
  return {**kept, **{k: v for k, v in changed.items() if k in kept}}


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda e: e.name)
def test_experiment_resolves_to_its_golden_config(experiment):
  flagfile = f"--flagfile={experiment.flagfile}"
  assert resolved(flagfile) == golden(experiment.name)
  # A study (stew_tf.tune) appends --dropout: the teacher's dropout stays as it was.
  assert resolved(flagfile, "--dropout=0.5") == golden(experiment.name, dropout=0.5)


def test_the_experiments_are_those_of_the_golden_file():
  assert sorted(e.name for e in EXPERIMENTS) == sorted(GOLDEN)
  # Every top-level flagfile belongs to a table; the bases (flags/base/) are no experiment.
  assert sorted(p.stem for p in flagfiles.FLAGFILE_DIR.glob("*.cfg")) == sorted(GOLDEN)


def test_no_flag_line_repeats_a_default():
  """Each flag beyond the naming ones changes what some experiment that reads it resolves to, as
  is or under the --dropout that a study (stew_tf.tune) appends."""
  needed = {}
  for experiment in EXPERIMENTS:
    argv = flagfiles.expand_argv(["main", f"--flagfile={experiment.flagfile}"])[1:]
    for i, arg in enumerate(argv):
      if arg.removeprefix("--").partition("=")[0] in NAMING_FLAGS or needed.get(arg):
        continue
      without = argv[:i] + argv[i + 1:]
      needed[arg] = any(resolved(*argv, *extra) != resolved(*without, *extra)
                        for extra in ((), ("--dropout=0.5",)))
  assert [arg for arg, matters in needed.items() if not matters] == []


def test_every_flag_line_is_explained():
  for path in sorted(flagfiles.FLAGFILE_DIR.rglob("*.cfg")):
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
      if line.startswith("--"):
        assert i and lines[i - 1].startswith("#"), f"{path.name}: no comment above {line}"


def test_an_experiment_reads_its_dataset_and_label_from_its_base():
  (valence,) = flagfiles.find_experiments("recola", "valence_audio_cls_only")
  assert "--dataset" not in valence.flagfile.read_text()
  assert (valence.flag("dataset"), valence.flag("label")) == ("recola", "valence")
  # mosi_score's base includes the binary one and overrides its label.
  (score,) = flagfiles.find_experiments("mosi_score", "text_to_video_cm_stew")
  assert (score.flag("dataset"), score.flag("label")) == ("mosi", "sentiment_score")


def test_a_flagfile_resolves_from_another_working_directory(tmp_path, monkeypatch):
  name = "recola_valence_video_geometric_to_audio_cm_stew"
  monkeypatch.chdir(tmp_path)
  relative = os.path.relpath(flagfiles.FLAGFILE_DIR / f"{name}.cfg")
  assert resolved(f"--flagfile={relative}") == golden(name)


def test_main_reads_flagfiles_from_another_working_directory(tmp_path):
  flagfile = os.path.relpath(flagfiles.FLAGFILE_DIR / "mosi_score_text_to_audio_cm_stew.cfg",
                             tmp_path)
  result = run_main(f"--flagfile={flagfile}", "--only_check_args", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  (tmp_path / "broken.cfg").write_text("# An include that is not there.\n--flagfile=nope.cfg\n")
  result = run_main("--flagfile=broken.cfg", "--only_check_args", cwd=tmp_path)
  assert result.returncode != 0
  assert "broken.cfg:2: --flagfile=nope.cfg: cannot read nope.cfg" in result.stderr
  assert "Traceback" not in result.stderr, result.stderr[-2000:]


def _write(root, files):
  for name, text in files.items():
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


def test_expand_argv_follows_includes_relative_to_the_including_file(tmp_path, monkeypatch):
  _write(tmp_path, {"exp/a.cfg": "# comment\n--flagfile=../base/b.cfg\n\n--x=2\n",
                    "base/b.cfg": "// comment\n--flagfile=c.cfg\n  --x=1\n--y=1\n",
                    "base/c.cfg": "--z=0\n"})
  monkeypatch.chdir(tmp_path)
  expanded = ["prog", "--w=0", "--z=0", "--x=1", "--y=1", "--x=2", "--x=3"]
  assert flagfiles.expand_argv(["prog", "--w=0", "--flagfile=exp/a.cfg", "--x=3"]) == expanded
  assert flagfiles.expand_argv(["prog", "--w=0", "--flagfile", "exp/a.cfg", "--x=3"]) == expanded
  assert flagfiles.expand_argv(["prog", "--", "--flagfile=exp/a.cfg"]) == [
      "prog", "--", "--flagfile=exp/a.cfg"]
  assert flagfiles.read_flagfile(tmp_path / "exp" / "a.cfg") == (
      ("z", "0"), ("x", "1"), ("y", "1"), ("x", "2"))


@pytest.mark.parametrize("files, argv, message", [
    ({"exp/a.cfg": "# c\n--flagfile=../base/nope.cfg\n"}, ["--flagfile=exp/a.cfg"],
     "exp/a.cfg:2: --flagfile=../base/nope.cfg: cannot read base/nope.cfg: No such file or "
     "directory"),
    ({"a.cfg": "--flagfile=b.cfg\n", "b.cfg": "--x=1\n--flagfile=a.cfg\n"}, ["--flagfile=a.cfg"],
     "b.cfg:2: --flagfile=a.cfg: include cycle: a.cfg -> b.cfg -> a.cfg"),
    ({"a.cfg": "--flagfile\n"}, ["--flagfile=a.cfg"],
     "a.cfg:1: --flagfile: expected --flagfile=PATH (PATH relative to this file)"),
    ({}, ["--flagfile=nope.cfg"], "--flagfile=nope.cfg: cannot read nope.cfg: No such file or "
     "directory"),
    ({}, ["--x=1", "--flagfile"], "--flagfile with no file name"),
], ids=["missing include", "cycle", "include without a path", "missing flagfile", "no path"])
def test_expand_argv_errors_name_the_file_and_line(tmp_path, monkeypatch, files, argv, message):
  _write(tmp_path, files)
  monkeypatch.chdir(tmp_path)
  with pytest.raises(flags.Error) as error:  # what absl's callers already handle
    flagfiles.expand_argv(["prog", *argv])
  assert isinstance(error.value, flagfiles.FlagfileError) and str(error.value) == message
