"""CMU-MOSI: utterance-level text, audio and video features with sentiment, one video each.

The features are those of Poria et al. (ACL 2017), published in declare-lab/multimodal-deep-learning
(bc-LSTM/data): line i of `text_<split>.csv` and of every `<modality>/<modality>_<split>0.csv` is
the same utterance; the first cell of each line of `text_<split>.csv` is its row in
`transcripts.csv`, whose key `<video id>_<utterance number>` groups utterances into videos. The
files are checked before use (cell counts, numbers, finiteness, labels agreeing across files), and
any defect is a `ValueError` naming the file and the 1-based line. The continuous sentiment score
of each utterance (mean of 5 annotators, in [-3, 3]) comes from the CMU-MOSI release's
`OpinionLevelSentiment.csv`, joined on the transcript key; the binary label must be score >= 0.
"""

import collections
import dataclasses
import re

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from stew_tf import clip_files

from . import csv_io
from . import sentiment_scores

_URL_ROOT = ("https://raw.githubusercontent.com/declare-lab/multimodal-deep-learning/"
             "c633012a3d9e53e037e450609678bb1b0169cf05/bc-LSTM/data/")
TRANSCRIPTS = "transcripts.csv"
SCORES = "labels/OpinionLevelSentiment.csv"
_SCORES_URL = ("https://raw.githubusercontent.com/ASA-MOSI/Audio-Sentiment-Analysis/"
               "c482dd2d939b1a7835d90e4a88ef7cbc4e73f76d/OpinionLevelSentiment.csv")
MODALITY_DIMS = {"text": 100, "audio": 73, "video": 100}


def modality_dims(config_name=None):
  """{modality: feature dimension} (stew_tf reads them from here); one set for every config."""
  del config_name
  return dict(MODALITY_DIMS)
# The source's own speaker-independent split: 62 train videos, 31 test videos.
SOURCE_SPLITS = ("train", "test")


def index_file(split):
  return f"text_{split}.csv"


def modality_file(modality, split):
  return f"{modality}/{modality}_{split}0.csv"


# Every file the builder reads, as a path relative to the manual dir (the layout of bc-LSTM/data).
FILES = (TRANSCRIPTS, *(index_file(split) for split in SOURCE_SPLITS),
         *(modality_file(m, split) for m in MODALITY_DIMS for split in SOURCE_SPLITS), SCORES)
URLS = {**{name: _URL_ROOT + name for name in FILES if name != SCORES}, SCORES: _SCORES_URL}

# The paper's 10 validation videos are not public. These 10 of the 62 train videos were chosen
# once by this rule: the first seed s = 0, 1, 2, ... for which
# `np.random.default_rng(s).choice(sorted(train_video_ids), 10, replace=False)` picks videos that
# hold 296 utterances in all, the paper's validation size (s = 692). They are written out so that
# the split never depends on numpy's generator.
VALIDATION_VIDEOS = frozenset({
    "2iD-tVS8NPw", "73jzhE8R1TQ", "8qrpnFRGt2A", "9qR7uwkblbs", "BvYR0L6f2Ig",
    "VbQk4H8hgr0", "_dI--eQ6qVU", "aiEXnCPZubE", "etzxEpPuc6I", "wMbj6ajWbic",
})
VALIDATION_SEED = 692


def missing_files(directory):
  """The entries of FILES that are not under `directory`."""
  directory = epath.Path(directory)
  return [name for name in FILES if not (directory / name).exists()]


def files_needed(names, directory="<manual dir>"):
  """Lines saying where each file must go and where it comes from."""
  return "\n".join(f"  {epath.Path(directory) / name}  <-  {URLS[name]}" for name in names)


@dataclasses.dataclass(frozen=True)
class _Utterance:
  key: str
  video: str
  number: int
  label: float
  line: int


def _parse_label(file, line, column, cell):
  try:
    value = float(cell)
  except ValueError:
    value = None
  if value not in (0.0, 1.0):
    raise csv_io.error(file, line, f"expected a label, 0 or 1, got {cell!r}", column)
  return value


def _read_transcripts(file):
  """The utterances of `transcripts.csv`, by row (0-based, as `text_*.csv` refers to them)."""
  utterances = []
  lines_of_keys = {}
  for line, cells in csv_io.csv_rows(file):
    if len(cells) != 4:
      raise csv_io.error(file, line, "expected 4 cells (key, transcript, video number, label), "
                         f"got {len(cells)}")
    key = cells[0]
    match = re.fullmatch(r"(.+)_(\d+)", key)
    if not match:
      raise csv_io.error(file, line,
                         f"expected a key '<video id>_<utterance number>', got {key!r}", 1)
    if key in lines_of_keys:
      raise csv_io.error(file, line, f"expected each key once, but {key!r} is also on line "
                         f"{lines_of_keys[key]}")
    lines_of_keys[key] = line
    label = _parse_label(file, line, 4, cells[3])
    utterances.append(_Utterance(key, match[1], int(match[2]), label, line))
  return utterances


def _read_index(file, transcripts):
  """The first column of `text_<split>.csv`: one row number of `transcripts.csv` per line."""
  rows = []
  lines_of_rows = {}
  for line, cells in csv_io.csv_rows(file):
    cell = cells[0] if cells else ""
    if not re.fullmatch(r"\d+", cell) or int(cell) >= len(transcripts):
      raise csv_io.error(file, line, f"expected a row number of {TRANSCRIPTS} "
                         f"(0 to {len(transcripts) - 1}), got {cell!r}", 1)
    row = int(cell)
    if row in lines_of_rows:
      raise csv_io.error(file, line, f"expected each utterance once, but row {row} of "
                         f"{TRANSCRIPTS} ({transcripts[row].key}) is also on line "
                         f"{lines_of_rows[row]}")
    lines_of_rows[row] = line
    rows.append((line, row))
  return rows


def _read_features(file, dim, index_name, num_rows):
  """(features [num_rows, dim] float32, labels [num_rows], lines) of one modality file."""
  lines = []
  values = []
  for line, cells in csv_io.csv_rows(file):
    if len(lines) == num_rows:
      raise csv_io.error(file, line,
                         f"expected {num_rows} rows, one per line of {index_name}, got more")
    if len(cells) != dim + 1:
      raise csv_io.error(file, line, f"expected {dim + 1} cells ({dim} features, then the label), "
                         f"got {len(cells)}")
    try:
      row = [float(cell) for cell in cells[:dim]]
    except ValueError:
      column, cell = next((column, cell) for column, cell in enumerate(cells[:dim], start=1)
                          if not clip_files.is_number(cell))
      raise csv_io.error(file, line, f"expected a number, got {cell!r}", column) from None
    row.append(_parse_label(file, line, dim + 1, cells[dim]))
    lines.append(line)
    values.append(row)
  if len(lines) < num_rows:
    raise csv_io.error(file, (lines[-1] if lines else 0) + 1,
                       f"expected {num_rows} rows, one per line of {index_name}, but the file ends "
                       f"after {len(lines)}")
  values = np.asarray(values, dtype=np.float64).reshape(num_rows, dim + 1)
  with np.errstate(over="ignore"):  # Overflow to inf is reported below.
    values32 = values.astype(np.float32)
  bad = np.argwhere(~np.isfinite(values32))
  if len(bad):
    row, column = bad[0]
    raise csv_io.error(file, lines[row],
                       f"expected a finite float32 number, got {values[row, column]:g}",
                       column + 1)
  return values32[:, :dim], values32[:, dim], lines


def _read_split(files, split, transcripts, scores):
  """The examples of one source split: {video id: example}."""
  index = files[index_file(split)]
  index_rows = _read_index(index, transcripts)
  features, labels, lines = {}, {}, {}
  for modality, dim in MODALITY_DIMS.items():
    features[modality], labels[modality], lines[modality] = _read_features(
        files[modality_file(modality, split)], dim, index.name, len(index_rows))
  # The text file against transcripts.csv, the other modality files against the text file.
  text = files[modality_file("text", split)]
  for (index_line, row), label, line in zip(index_rows, labels["text"], lines["text"]):
    utterance = transcripts[row]
    if label != utterance.label:
      raise csv_io.error(text, line, f"expected the label of {utterance.key} ({utterance.label:g}, "
                         f"{TRANSCRIPTS} line {utterance.line}, named on line {index_line} of "
                         f"{index.name}), got {label:g}")
  for modality in MODALITY_DIMS:
    for label, expected, line in zip(labels[modality], labels["text"], lines[modality]):
      if label != expected:
        raise csv_io.error(files[modality_file(modality, split)], line,
                           f"expected label {expected:g} as on the same line of {text.name} "
                           "(every modality file holds the same utterance on the same line), got "
                           f"{label:g}")
  videos = collections.defaultdict(list)
  for position, (_, row) in enumerate(index_rows):
    videos[transcripts[row].video].append((transcripts[row].number, row, position))
  examples = {}
  for video, members in videos.items():
    members.sort()  # By utterance number: "_2" before "_10".
    positions = [position for _, _, position in members]
    examples[video] = {
        "clip_id": video,
        "segment_ids": np.array([transcripts[row].key for _, row, _ in members], dtype=object),
        **{modality: values[positions] for modality, values in features.items()},
        "sentiment": labels["text"][positions],
        "sentiment_score": np.array([scores[transcripts[row].key] for _, row, _ in members],
                                    dtype=np.float32),
    }
  return examples


class Builder(tfds.core.GeneratorBasedBuilder):
  """CMU-MOSI utterance features; one example per video, utterances in spoken order."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: 52/10/31 train/validation/test videos (1151/296/752 utterances).",
      "1.1.0": "sentiment_score, the continuous score in [-3, 3] (OpinionLevelSentiment.csv).",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put these files of github.com/declare-lab/multimodal-deep-learning (bc-LSTM/data, commit "
      "c633012), and the CMU-MOSI score file (from ASA-MOSI/Audio-Sentiment-Analysis, commit "
      "c482dd2), in this layout, under the manual dir:\n" + files_needed(FILES) +
      "\nWithout them in the manual dir, the builder downloads them from those URLs.")

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "clip_id": tfds.features.Text(),
            "segment_ids": tfds.features.Tensor(shape=(None,), dtype=np.object_),  # tf.string
            **{modality: tfds.features.Tensor(shape=(None, dim), dtype=np.float32)
               for modality, dim in MODALITY_DIMS.items()},
            "sentiment": tfds.features.Tensor(shape=(None,), dtype=np.float32),
            "sentiment_score": tfds.features.Tensor(shape=(None,), dtype=np.float32),
        }),
        homepage="https://github.com/declare-lab/multimodal-deep-learning",
        license="MIT (features); MOSI terms of use (videos and labels)",
    )

  def _split_generators(self, dl_manager):
    files = {name: csv_io.File(name, epath.Path(path))
             for name, path in _locate(dl_manager).items()}
    transcripts = _read_transcripts(files[TRANSCRIPTS])
    scores = sentiment_scores.read_scores(files[SCORES], transcripts, TRANSCRIPTS)
    train = _read_split(files, "train", transcripts, scores)
    test = _read_split(files, "test", transcripts, scores)
    shared = sorted(set(train) & set(test))
    if shared:
      raise ValueError(f"{files[index_file('train')]} and {files[index_file('test')]}: expected "
                       f"disjoint train and test videos, got {len(shared)} in both: {shared[:5]}")
    used = {key for split in (train, test) for ex in split.values() for key in ex["segment_ids"]}
    for utterance in transcripts:
      if utterance.key not in used:
        raise csv_io.error(files[TRANSCRIPTS], utterance.line,
                           f"expected every utterance in {index_file('train')} or "
                           f"{index_file('test')}, got {utterance.key} in neither")
    return {
        "train": self._generate_examples(
            {v: ex for v, ex in train.items() if v not in VALIDATION_VIDEOS}),
        "validation": self._generate_examples(
            {v: ex for v, ex in train.items() if v in VALIDATION_VIDEOS}),
        "test": self._generate_examples(test),
    }

  def _generate_examples(self, videos):
    yield from videos.items()


def _locate(dl_manager):
  """{name: path} of FILES: from the manual dir when it holds any of them, else downloaded."""
  try:
    manual_dir = dl_manager.manual_dir
  except AssertionError:  # TFDS's way of saying the manual dir is absent or empty.
    manual_dir = None
  if manual_dir is not None:
    missing = missing_files(manual_dir)
    if len(missing) < len(FILES):
      if missing:
        raise FileNotFoundError(
            f"The manual dir {manual_dir} holds only some of the CMU-MOSI files. Add these "
            f"(path  <-  where it comes from):\n{files_needed(missing, manual_dir)}")
      return {name: manual_dir / name for name in FILES}
  try:
    return dl_manager.download(URLS)
  except Exception as err:  # Offline, proxy, checksum: the remedy is the same.
    raise FileNotFoundError(
        f"Could not download the CMU-MOSI files ({type(err).__name__}: {err}). Download them "
        "yourself and put them under the manual dir (DownloadConfig(manual_dir=...); by default "
        "<data_dir>/downloads/manual) in this layout (path  <-  where it comes from):\n"
        f"{files_needed(FILES)}") from err
