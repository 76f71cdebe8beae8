"""Tests of the mosi builder on dummy_data/ (offline)."""

import csv
import pathlib
import re
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stew_tf import tfds_builders

Builder = tfds_builders.builder_class("mosi")
builder_module = tfds_builders.builder_module("mosi")
DUMMY_DATA = pathlib.Path(__file__).resolve().parent / "dummy_data"


class MosiTest(tfds.testing.DatasetBuilderTestCase):
  """Generates every split from dummy_data/ used as the manual dir."""
  DATASET_CLASS = Builder
  SPLITS = {"train": 3, "validation": 2, "test": 2}


def _prepare(manual_dir, data_dir):
  builder = Builder(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _examples(builder, split):
  return {ex["clip_id"].decode(): ex
          for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))}


def _read(path):
  with path.open(newline="") as f:
    return list(csv.reader(f))


def _write(path, rows):
  with path.open("w", newline="") as f:
    csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)


def test_examples_follow_the_files(tmp_path):
  builder = _prepare(DUMMY_DATA, tmp_path)
  train = _examples(builder, "train")
  assert set(train) == {"fake_train-A", "fakeTrainB", "fakeTrainC"}
  assert set(_examples(builder, "validation")) == {"2iD-tVS8NPw", "_dI--eQ6qVU"}
  assert set(_examples(builder, "test")) == {"fake_test-D", "fakeTestE"}
  video = train["fake_train-A"]
  # Numeric utterance order: _2 before _10.
  assert [s.decode() for s in video["segment_ids"]] == [f"fake_train-A_{i}" for i in range(1, 13)]
  assert video["text"].shape == (12, 100) and video["audio"].shape == (12, 73)
  assert video["video"].shape == (12, 100) and video["sentiment"].shape == (12,)
  assert video["sentiment_score"].shape == (12,)
  # Utterance _10 carries the features and label of its own line in every file.
  transcripts = _read(DUMMY_DATA / "transcripts.csv")
  row = next(i for i, cells in enumerate(transcripts) if cells[0] == "fake_train-A_10")
  line = [int(cells[0]) for cells in _read(DUMMY_DATA / "text_train.csv")].index(row)
  for modality in ("text", "audio", "video"):
    cells = _read(DUMMY_DATA / modality / f"{modality}_train0.csv")[line]
    np.testing.assert_allclose(video[modality][9], np.float32(cells[:-1]), rtol=1e-6)
    assert video["sentiment"][9] == float(cells[-1]) == float(transcripts[row][3])
  # Its score is the one the score file gives fake_train-A, utterance 10.
  scores = {(cells[2], cells[3]): float(cells[4])
            for cells in _read(DUMMY_DATA / "labels" / "OpinionLevelSentiment.csv")}
  assert video["sentiment_score"][9] == np.float32(scores[("fake_train-A", "10")])
  for split in ("train", "validation", "test"):
    for ex in _examples(builder, split).values():
      np.testing.assert_array_equal(ex["sentiment"], ex["sentiment_score"] >= 0)


def test_downloads_when_the_manual_dir_is_empty(tmp_path, monkeypatch):
  requested = {}

  def fake_download(self, urls):
    del self
    requested.update(urls)
    return {name: DUMMY_DATA / name for name in urls}

  monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
  (tmp_path / "manual").mkdir()
  builder = _prepare(tmp_path / "manual", tmp_path / "data")
  assert builder.info.splits["test"].num_examples == 2
  assert set(requested) == set(builder_module.FILES)
  # Every URL has its size and sha256 in checksums.tsv.
  assert set(requested.values()) <= set(Builder.url_infos)


def test_failed_download_says_what_to_put_where(tmp_path, monkeypatch):
  def offline(self, urls):
    raise ConnectionError("no network")

  monkeypatch.setattr(tfds.download.DownloadManager, "download", offline)
  with pytest.raises(FileNotFoundError, match="Could not download") as error:
    _prepare(tmp_path / "absent", tmp_path / "data")
  for name, url in builder_module.URLS.items():
    assert f"{name}  <-  {url}" in str(error.value)


def test_incomplete_manual_dir_lists_the_missing_files(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DATA, manual)
  (manual / "audio" / "audio_test0.csv").unlink()
  (manual / "text_train.csv").unlink()
  with pytest.raises(FileNotFoundError) as error:
    _prepare(manual, tmp_path / "data")
  message = str(error.value)
  for name in ("audio/audio_test0.csv", "text_train.csv"):
    assert f"{manual / name}  <-  {builder_module.URLS[name]}" in message
  assert "video_test0.csv" not in message


def test_manual_dir_without_the_score_file_names_it(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DATA, manual)
  (manual / "labels" / "OpinionLevelSentiment.csv").unlink()
  with pytest.raises(FileNotFoundError) as error:
    _prepare(manual, tmp_path / "data")
  assert (f"{manual / 'labels/OpinionLevelSentiment.csv'}  <-  https://raw.githubusercontent.com/"
          "ASA-MOSI/Audio-Sentiment-Analysis/c482dd2d939b1a7835d90e4a88ef7cbc4e73f76d/"
          "OpinionLevelSentiment.csv") in str(error.value)


def _drop_last_cell(rows, line):
  rows[line - 1].pop()


def _set_cell(value, column):
  def corrupt(rows, line):
    rows[line - 1][column - 1] = value
  return corrupt


def _flip_label(rows, line):
  rows[line - 1][-1] = str(1 - int(rows[line - 1][-1]))


def _repeat_line(rows, line):
  rows.append(rows[line - 1])


def _keep_lines(count):
  def corrupt(rows, line):
    del line
    del rows[count:]
  return corrupt


# (file, line, corruption, expected message after "<file>, ").
CORRUPTIONS = {
    "missing_column": ("audio/audio_train0.csv", 3, _drop_last_cell,
                       "line 3: expected 74 cells (73 features, then the label), got 73"),
    "non_numeric": ("video/video_test0.csv", 2, _set_cell("abc", 5),
                    "line 2, column 5: expected a number, got 'abc'"),
    "nan": ("text/text_train0.csv", 4, _set_cell("nan", 7),
            "line 4, column 7: expected a finite float32 number, got nan"),
    "float32_overflow": ("audio/audio_test0.csv", 6, _set_cell("1e39", 1),
                         "line 6, column 1: expected a finite float32 number, got 1e+39"),
    "label_not_binary": ("video/video_train0.csv", 8, _set_cell("2", 101),
                         "line 8, column 101: expected a label, 0 or 1, got '2'"),
    "label_mismatch": ("video/video_train0.csv", 5, _flip_label,
                       "line 5: expected label 1 as on the same line of text/text_train0.csv"),
    "extra_row": ("audio/audio_test0.csv", 9, _repeat_line,
                  "line 10: expected 9 rows, one per line of text_test.csv, got more"),
    "label_mismatch_with_transcript": ("text/text_test0.csv", 1, _flip_label,
                                       "line 1: expected the label of"),
    "fewer_rows": ("audio/audio_test0.csv", 8, _keep_lines(7),
                   "line 8: expected 9 rows, one per line of text_test.csv, but the file ends "
                   "after 7"),
    "index_out_of_range": ("text_test.csv", 2, _set_cell("999", 1),
                           "line 2, column 1: expected a row number of transcripts.csv (0 to 36), "
                           "got '999'"),
    "bad_transcript_key": ("transcripts.csv", 9, _set_cell("nounderscore", 1),
                           "line 9, column 1: expected a key '<video id>_<utterance number>'"),
    # Line 4 of the score file: _dI--eQ6qVU_1, labelled 1, score 0.
    "score_disagrees_with_label": ("labels/OpinionLevelSentiment.csv", 4, _set_cell("-0.2", 5),
                                   "line 4: expected a score that is >= 0 exactly when the binary "
                                   "label is 1, got -0.2 for _dI--eQ6qVU_1, labelled 1"),
    "score_out_of_range": ("labels/OpinionLevelSentiment.csv", 2, _set_cell("3.5", 5),
                           "line 2, column 5: expected a score from -3 to 3, got '3.5'"),
    "score_not_a_number": ("labels/OpinionLevelSentiment.csv", 7, _set_cell("nan", 5),
                           "line 7, column 5: expected a score from -3 to 3, got 'nan'"),
    "score_repeated": ("labels/OpinionLevelSentiment.csv", 3, _repeat_line,
                       "line 38: expected each utterance once, but '2iD-tVS8NPw_3' is also on "
                       "line 3"),
    "score_missing_cell": ("labels/OpinionLevelSentiment.csv", 5, _drop_last_cell,
                           "line 5: expected 5 cells (start, end, video id, utterance number, "
                           "score), got 4"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_malformed_file_names_file_and_line(name, tmp_path):
  relative, line, corrupt, expected = CORRUPTIONS[name]
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DATA, manual)
  rows = _read(manual / relative)
  corrupt(rows, line)
  _write(manual / relative, rows)
  with pytest.raises(ValueError, match=re.escape(f"{manual / relative}, {expected}")):
    _prepare(manual, tmp_path / "data")


def test_utterance_without_a_score_is_named(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DATA, manual)
  path = manual / "labels" / "OpinionLevelSentiment.csv"
  rows = _read(path)
  _write(path, [cells for cells in rows if cells[2:4] != ["fakeTrainB", "2"]])
  with pytest.raises(ValueError, match=re.escape(
      f"{path}: expected a score of every utterance of transcripts.csv, but fakeTrainB_2 (its "
      "line ")):
    _prepare(manual, tmp_path / "data")


def test_file_cut_mid_line_names_the_last_line(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY_DATA, manual)
  path = manual / "video" / "video_test0.csv"
  data = path.read_bytes()
  path.write_bytes(data[:len(data) - 300])  # Cuts into the last of 9 lines.
  with pytest.raises(ValueError, match=re.escape(f"{path}, line 9: expected 101 cells")):
    _prepare(manual, tmp_path / "data")
