"""stew_tf.paper is the single source of the paper's numbers: the flagfiles (settings and
headers) and the README's paper column agree with it."""

import re

import pytest

from stew_tf import cli_flags
from stew_tf import config as config_lib
from stew_tf import flagfiles
from stew_tf import paper
from stew_tf import records
from tests.helpers import REPO_ROOT

# The paper's experiments (not tables of ours such as mosi_score, nor rows with several teachers:
# the paper's future work).
FLAGFILES = [experiment.flagfile for table in ("mosi", "recola")
             for experiment in flagfiles.find_experiments(table)
             if "," not in experiment.flag("strong", "")]

_TRANSFERS = {("mosi", "sentiment"): [("text", "audio"), ("text", "video")],
              ("recola", "arousal"): [("audio", "video_appearance"), ("audio", "video_geometric")],
              ("recola", "valence"): [("video_appearance", "audio"), ("video_geometric", "audio")]}
_MODALITIES = {"mosi": ("text", "audio", "video"),
               "recola": ("audio", "video_appearance", "video_geometric")}


def _paper_experiments():
  """(dataset, label, method, strong, weak) of every experiment in Tables II-V."""
  experiments = set()
  for (dataset, label), transfers in _TRANSFERS.items():
    for weak in _MODALITIES[dataset]:
      experiments |= {(dataset, label, method, None, weak) for method in ("cls_only", "enc_cls")}
    for strong, weak in transfers:
      experiments |= {(dataset, label, method, strong, weak)
                      for method in ("cm_stew", "no_lfa", "no_decoder")}
  return experiments


def _config_of(flagfile):
  return cli_flags.parse(["prog", f"--flagfile={flagfile}"])


def _name(dataset, label, method, strong, weak):
  modalities = f"{strong}_to_{weak}" if strong else weak
  return "_".join([dataset] + ([label] if dataset == "recola" else []) + [modalities, method])


def test_the_flagfiles_are_the_papers_experiments():
  experiments = _paper_experiments()
  assert len(experiments) == 36
  assert {path.stem for path in FLAGFILES} == {_name(*e) for e in experiments}
  assert set(paper.PAPER) == experiments


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=lambda path: path.stem)
def test_flagfile_parses_with_the_papers_settings(flagfile):
  # The paper's settings are the defaults that resolve computes (tests/test_flagfiles.py pins
  # them against a golden file); here, against the paper.
  config = _config_of(flagfile)
  dataset, label = config.data.dataset, config.data.label
  key = (dataset, label, config.method, config.strong, config.student.modality)
  assert flagfile.stem == _name(*key)
  for trainer in filter(None, (config.trainer, config.teacher and config.teacher.trainer)):
    assert trainer.learning_rate == {"mosi": 1e-4, "recola": 1e-5}[dataset]
    assert trainer.batch_size == 32 and trainer.seed == 0
  assert config.runtime.manual_dir is None
  assert config.runtime.workdir.startswith("runs/")  # the default: the runner passes --workdir
  single = {("mosi", "text"), ("recola", "audio")}  # paper, Sec. IV-B: 1 Bi-GRU layer
  if config.student.encoder:
    assert config.student.encoder.gru_layers == (
        1 if (dataset, config.student.modality) in single else 2)
  if config.teacher:
    assert config.teacher.encoder.gru_layers == (1 if (dataset, config.strong) in single else 2)
  if config.translation:
    valence_audio = dataset == "recola" and label == "valence"
    assert (config.translation.decoder_units, config.translation.decoder_layers) == (
        (500, 1) if valence_audio else (250, 2))
  if config.alignment:
    assert (config.alignment.r1, config.alignment.r2) == (1e-3, 1e-3)
  assert bool(config.alignment) == config.method_info.alignment
  assert bool(config.translation) == config.method_info.translation


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=lambda path: path.stem)
def test_flagfile_explains_every_value(flagfile):
  lines = flagfile.read_text().splitlines()
  flag_lines = [i for i, line in enumerate(lines) if line.startswith("--")]
  names = [lines[i][2:].split("=", 1)[0] for i in flag_lines]
  assert not {"manual_dir", "seed", "workdir", "data_dir", "download"} & set(names)
  assert len(names) == len(set(names))
  for i in flag_lines:
    comment = _comment_above(lines, i)
    assert comment, f"no comment above {lines[i]}"
    if lines[i].startswith(("--alpha=", "--beta=")):
      assert "chosen on validation, see README" in comment


def _comment_above(lines, index):
  """The text of the `#` lines right above lines[index], joined by spaces."""
  start = index
  while start > 0 and lines[start - 1].startswith("#"):
    start -= 1
  return " ".join(line.lstrip("# ") for line in lines[start:index])


# ---------------------------------------------------------------------------------------------
# The paper's numbers quoted elsewhere.

_NUMBER = r"(\d+(?:\.\d+)?)"
_QUOTED = {"accuracy": _NUMBER + " % accuracy", "f1_weighted": _NUMBER + " % weighted F1",
           "ccc": "CCC " + _NUMBER}


def _header(flagfile):
  """The flagfile's leading comment block, joined into one line."""
  lines = []
  for line in flagfile.read_text().splitlines():
    if not line.startswith("#"):
      break
    lines.append(line.lstrip("# "))
  return " ".join(lines)


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=lambda path: path.stem)
def test_flagfile_header_quotes_the_papers_numbers(flagfile):
  values = dict(flagfiles.read_flagfile(flagfile))
  key = tuple(values.get(name) for name in ("dataset", "label", "method", "strong", "weak"))
  cell = paper.PAPER[key]
  claim = re.search(r"Paper: Table (\w+),(.*?)(?:Run:|$)", _header(flagfile))
  assert claim, f"{flagfile.name}: no 'Paper: Table ...' line in the header"
  table, text = claim.groups()
  numbers = {metric: float(match.group(1)) for metric, pattern in _QUOTED.items()
             if (match := re.search(pattern, text))}
  assert (table, numbers) == (cell["table"], {k: v for k, v in cell.items() if k != "table"})


def _readme_key(name):
  """(dataset, label, method, strong, weak) of a row name of the README's MOSI table, or None."""
  name = name.replace("`", "").lower()
  transfer = re.search(r"cm-stew(?:\s*[-−–]\s*(lfa|decoder))?\s+(\w+)\s*(?:→|->|to)\s*(\w+)",
                       name)
  if transfer:
    ablation, strong, weak = transfer.groups()
    method = {"lfa": "no_lfa", "decoder": "no_decoder", None: "cm_stew"}[ablation]
    return "mosi", "sentiment", method, strong, weak
  uni_modal = re.search(r"(text|audio|video)\s+(encoder \+ classifier|enc_cls|classifier|"
                        r"cls_only)", name)
  if uni_modal:
    weak, model = uni_modal.groups()
    method = "enc_cls" if model in ("encoder + classifier", "enc_cls") else "cls_only"
    return "mosi", "sentiment", method, None, weak
  return None


def test_readme_paper_column_agrees_with_paper_module():
  text = (REPO_ROOT / "README.md").read_text()
  assert "## The paper's tables" in text
  section = text.split("## The paper's tables", 1)[1].split("\n## ", 1)[0]
  lines = [line for line in section.splitlines() if line.startswith("|")]
  header = [cell.strip().lower() for cell in lines[0].strip("|").split("|")]
  column = next(i for i, name in enumerate(header) if name.startswith("paper"))
  checked = 0
  for line in lines[2:]:
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    number = re.search(_NUMBER, cells[column])
    if not number:
      continue
    key = _readme_key(cells[0])
    assert key in paper.PAPER, f"README.md: the row {cells[0]!r} quotes the paper but names no "
    assert float(number.group()) == paper.PAPER[key]["accuracy"], line
    checked += 1
  assert checked >= 3


SCORE_FLAGFILES = [e.flagfile for e in flagfiles.find_experiments("mosi_score")]


@pytest.mark.parametrize("flagfile", SCORE_FLAGFILES, ids=lambda path: path.stem)
def test_mosi_score_flagfiles_are_the_binary_tables_experiments_as_regression(flagfile):
  config = _config_of(flagfile)
  binary = _config_of(REPO_ROOT / "flags" / flagfile.name.replace("mosi_score_", "mosi_"))
  assert config.data == config_lib.Data("mosi", "sentiment_score", "regression")
  # The same tree but for the target, its task and the metric that picks the epoch.
  differing = records.differences(binary.identity({}), config.identity({}))
  assert {line.split(":")[0] for line in differing} <= {
      "data.label", "data.task", "trainer.monitor", "teacher.trainer.monitor"}
  assert "data.label: was 'sentiment', now 'sentiment_score'" in differing
  assert "Not in the paper: it reports no CMU-MOSI regression numbers" in _header(flagfile)
