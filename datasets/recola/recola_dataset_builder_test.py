"""Tests of the recola builder on dummy_data/ and on synthetic AVEC 2016 trees."""

import importlib
import logging

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stew_tf import tfds_builders

Builder = tfds_builders.builder_class("recola")
recola = tfds_builders.builder_module("recola")
arff_io = importlib.import_module("stew_datasets.recola.arff_io")
benchmark_arff = importlib.import_module("stew_datasets.recola.benchmark_arff")
make_dummy_data = importlib.import_module("stew_datasets.recola.make_dummy_data")

_SMALL_TREE = {"num_frames": 100, "recordings": (1, 9)}  # train_1, train_9, dev_1, dev_9


class ArousalTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["arousal"]
  # 80 frames: train_1 gives clips 0-75 and 5-80; train_9 and dev_1 one 80-frame clip each.
  SPLITS = {"train": 2, "validation": 1, "test": 1}


class ValenceTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["valence"]
  SPLITS = {"train": 2, "validation": 1, "test": 1}


def _prepare(tmp_path, manual_dir, config="arousal"):
  builder = Builder(config=config, data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _examples(builder, split):
  examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
  return sorted(examples, key=lambda ex: ex["clip_id"])


def _frame_index_features(recording, modality, labels):
  """Every feature of frame t is t, so a clip's first feature row gives its frames."""
  del recording
  return np.repeat(np.arange(len(labels))[:, None], make_dummy_data.FEATURE_DIMS[modality], 1)


def test_clip_counts_of_a_full_recording():
  train = recola.sliding_clips(7501, 75, 25)
  assert len(train) == 299  # The paper's count per training recording.
  assert all(end - start == 75 for start, end in train)
  assert train[-2] == (7425, 7500) and train[-1] == (7426, 7501)
  evaluation = recola.consecutive_clips(7501, 75)
  assert len(evaluation) == 100 and evaluation[-1] == (7425, 7501)
  assert [end for _, end in evaluation[:-1]] == [start for start, _ in evaluation[1:]]
  assert recola.sliding_clips(7500, 75, 25)[-1] == (7425, 7500)  # No extra clip when it fits.
  assert recola.sliding_clips(60, 75, 25) == [(0, 60)]
  assert recola.consecutive_clips(60, 75) == [(0, 60)]


def test_shift_labels_repeats_the_last_label():
  labels = np.arange(10, dtype=np.float32)
  np.testing.assert_array_equal(recola.shift_labels(labels, 3), [3, 4, 5, 6, 7, 8, 9, 9, 9, 9])
  np.testing.assert_array_equal(recola.shift_labels(labels, 0), labels)
  np.testing.assert_array_equal(recola.shift_labels(labels, 20), np.full(10, 9))


def test_shift_and_clips_on_a_tree(tmp_path):
  make_dummy_data.write_avec2016_tree(
      tmp_path / "manual", num_frames=210, recordings=(1, 9), targets=("arousal",),
      label_fn=lambda recording, frames: frames / 1000, feature_fn=_frame_index_features)
  builder = _prepare(tmp_path, tmp_path / "manual")
  expected_labels = np.minimum(np.arange(210) + 70, 209) / 1000  # 2.8 s shift, last label kept
  train = _examples(builder, "train")
  # Starts every 25 frames up to 125, then one clip ending at frame 210.
  assert [ex["arousal"].shape[0] for ex in train] == [75] * 7
  for ex, start in zip(train, (0, 25, 50, 75, 100, 125, 135)):
    frames = np.arange(start, start + 75)
    np.testing.assert_array_equal(ex["audio"][:, 0], frames)
    np.testing.assert_array_equal(ex["video_geometric"][:, -1], frames)
    np.testing.assert_allclose(ex["arousal"], expected_labels[frames], atol=1e-6)
  assert [ex["clip_id"].decode() for ex in train] == [f"train_1/{i:04d}" for i in range(7)]
  for split, recordings in (("validation", ("train_9",)), ("test", ("dev_1", "dev_9"))):
    examples = _examples(builder, split)
    assert [ex["clip_id"].decode() for ex in examples] == [
        f"{recording}/{i:04d}" for recording in recordings for i in range(2)]
    # 210 frames: clips 0-75 and 75-210 (the 60-frame tail joins the last clip).
    np.testing.assert_array_equal(examples[1]["video_appearance"][:, 0], np.arange(75, 210))
    np.testing.assert_allclose(examples[1]["arousal"], expected_labels[75:], atol=1e-6)


def test_config_fields_change_shift_and_validation(tmp_path):
  make_dummy_data.write_avec2016_tree(
      tmp_path / "manual", num_frames=100, recordings=(1,), targets=("valence",),
      label_fn=lambda recording, frames: -frames / 1000)
  config = recola.RecolaConfig(name="valence_unshifted", target="valence", shift_frames=0,
                               validation_recordings=())
  builder = _prepare(tmp_path, tmp_path / "manual", config=config)
  assert set(builder.info.splits) == {"train", "test"}
  (clip, _) = _examples(builder, "train")
  np.testing.assert_allclose(clip["valence"], -np.arange(75) / 1000, atol=1e-6)


def test_header_variants_and_line_endings(tmp_path):
  path = tmp_path / "variants.arff"
  path.write_bytes(
      b"% AVEC 2016\r\n@RELATION 'gold standard'\r\n\r\n@ATTRIBUTE 'Instance name' STRING\r\n"
      b"% time in seconds\r\n@Attribute \"frame Time\" REAL\r\n@attribute GoldStandard numeric"
      b"\r\n@DATA\r\n% first frame\r\n'train_1';0.00;0.5\r\n\r\n'train_1' ; 0.04 ; ?\r\n")
  table = arff_io.read(path)
  assert table.header.relation == "gold standard"
  assert [a.name for a in table.header.attributes] == ["Instance name", "frame Time",
                                                       "GoldStandard"]
  np.testing.assert_array_equal(table.values, [[0, 0.5], [0.04, np.nan]])
  np.testing.assert_array_equal(table.lines, [10, 12])
  assert arff_io.read_header(path) == table.header


def test_arff_values_match_liac_arff(tmp_path):
  """liac-arff, an independent ARFF reader, is the reference for the values arff_io returns."""
  rng = np.random.default_rng(0)
  make_dummy_data.write_avec2016_tree(
      tmp_path, num_frames=50, recordings=(1,), targets=("valence",), partitions=("dev",),
      feature_fn=lambda _, modality, labels: rng.normal(
          size=(len(labels), make_dummy_data.FEATURE_DIMS[modality])))
  paths = [tmp_path / make_dummy_data.feature_dir(m) / "valence" / "dev_1.arff"
           for m in make_dummy_data.FEATURE_DIMS]
  paths.append(tmp_path / make_dummy_data.GOLD_STANDARD_DIR / "valence" / "dev_1.arff")
  for path in paths:
    names, values = benchmark_arff.read_with_liac_arff(path)
    table = arff_io.read(path)
    assert list(table.header.numeric_names) == names, path
    np.testing.assert_array_equal(table.values, values, err_msg=str(path))


def test_crlf_and_semicolon_files_give_the_same_dataset(tmp_path):
  for name, options in (("lf", {}), ("crlf", {"newline": "\r\n", "gold_delimiter": ";"})):
    make_dummy_data.write_avec2016_tree(tmp_path / name, targets=("arousal",), **_SMALL_TREE,
                                        **options)
  lf, crlf = (_examples(_prepare(tmp_path / name, tmp_path / name), "test")
              for name in ("lf", "crlf"))
  assert len(lf) == len(crlf) == 2
  for a, b in zip(lf, crlf):
    for key in ("arousal", "audio", "video_appearance", "video_geometric"):
      np.testing.assert_array_equal(a[key], b[key])


def test_missing_feature_values_become_zero_and_are_logged(tmp_path, caplog):
  def features(recording, modality, labels):
    values = np.ones((len(labels), make_dummy_data.FEATURE_DIMS[modality]))
    if modality == "video_geometric" and recording == "dev_1":
      values[80:, :] = np.nan  # The face tracker lost the face for the last 20 frames.
    return values
  make_dummy_data.write_avec2016_tree(tmp_path / "manual", targets=("arousal",),
                                      feature_fn=features, **_SMALL_TREE)
  with caplog.at_level(logging.INFO):
    builder = _prepare(tmp_path, tmp_path / "manual")
  (clip, _) = _examples(builder, "test")
  assert clip["clip_id"] == b"dev_1/0000"
  np.testing.assert_array_equal(clip["video_geometric"][:80], 1)
  np.testing.assert_array_equal(clip["video_geometric"][80:], 0)
  assert "20 of 100 frames have missing values" in caplog.text


def _write_small_tree(tmp_path):
  return make_dummy_data.write_avec2016_tree(tmp_path / "manual", targets=("arousal",),
                                             **_SMALL_TREE)


def _data_line(path):
  """1-based line number of the first data row."""
  return path.read_text().split("\n").index("@data") + 2


def _edit_line(path, number, edit):
  lines = path.read_text().split("\n")
  lines[number - 1] = edit(lines[number - 1])
  path.write_text("\n".join(lines))


def _prepare_error(tmp_path):
  with pytest.raises(ValueError) as error:
    _prepare(tmp_path, tmp_path / "manual")
  return str(error.value)


def test_missing_data_line_names_file_and_line(tmp_path):
  path = _write_small_tree(tmp_path) / "features_audio/arousal/train_1.arff"
  first_row = _data_line(path)
  path.write_text(path.read_text().replace("@data\n", "\n"))
  message = _prepare_error(tmp_path)
  assert f"{path}, line {first_row}: expected @relation, @attribute or @data" in message
  # A header with no rows after it either.
  path.write_text("@relation GOLDSTANDARD\n@attribute frameTime numeric\n% end\n")
  with pytest.raises(ValueError, match=f"{path}, line 3: the file ends without an @data line"):
    arff_io.read(path)


def test_wrong_column_count_names_file_and_line(tmp_path):
  path = _write_small_tree(tmp_path) / "features_video_appearance/arousal/train_9.arff"
  line = _data_line(path) + 41
  _edit_line(path, line, lambda text: text.rsplit(",", 1)[0])
  message = _prepare_error(tmp_path)
  assert f"{path}, line {line}: 169 ','-separated values, expected 170" in message


def test_non_numeric_value_names_file_and_line(tmp_path):
  path = _write_small_tree(tmp_path) / "ratings_gold_standard/arousal/dev_9.arff"
  line = _data_line(path) + 7
  _edit_line(path, line, lambda text: text.rsplit(",", 1)[0] + ",high")
  message = _prepare_error(tmp_path)
  assert f"{path}, line {line}: value 'high' in column 3 (attribute 'GoldStandard')" in message


def test_feature_file_shorter_than_gold_standard(tmp_path):
  root = _write_small_tree(tmp_path)
  path = root / "features_video_geometric/arousal/train_1.arff"
  path.write_text(path.read_text().rsplit("\n", 2)[0] + "\n")  # Drops the last row.
  message = _prepare_error(tmp_path)
  last_row = _data_line(path) + 98
  gold = root / "ratings_gold_standard/arousal/train_1.arff"
  assert f"{path}, line {last_row}: the feature file ends after 99 frames" in message
  assert f"gold standard {gold} has 100 (to line {_data_line(gold) + 99})" in message


def test_frame_time_mismatch_names_both_files(tmp_path):
  root = _write_small_tree(tmp_path)
  path = root / "features_audio/arousal/dev_1.arff"
  line = _data_line(path) + 50
  _edit_line(path, line, lambda text: text.replace(",2.00,", ",2.08,"))
  message = _prepare_error(tmp_path)
  gold = root / "ratings_gold_standard/arousal/dev_1.arff"
  assert (f"{path}, line {line}: frameTime 2.08 does not match 2.0 at line {_data_line(gold) + 50}"
          f" of the gold standard {gold}") in message


def test_missing_file_names_the_expected_path(tmp_path):
  path = _write_small_tree(tmp_path) / "features_video_geometric/arousal/dev_9.arff"
  path.unlink()
  assert f"Missing file {path}" in _prepare_error(tmp_path)


def test_manual_dir_without_recordings_names_an_expected_path(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "recola.zip").write_text("not extracted")
  expected = tmp_path / "manual/ratings_gold_standard/arousal/train_1.arff"
  assert f"expected e.g. {expected}" in _prepare_error(tmp_path)


@pytest.mark.parametrize("edit, expected", [
    (lambda text: text.rsplit(",", 1)[0] + ",1.5", "rating 1.5 is not in [-1, 1]"),
    (lambda text: text.rsplit(",", 1)[0] + ",?", "rating nan is not in [-1, 1]"),
    (lambda text: text.replace(",0.40,", ",0.44,"), "frameTime jumps from 0.36 to 0.44"),
])
def test_bad_gold_standard_names_file_and_line(tmp_path, edit, expected):
  path = _write_small_tree(tmp_path) / "ratings_gold_standard/arousal/train_1.arff"
  line = _data_line(path) + 10
  _edit_line(path, line, edit)
  assert f"{path}, line {line}: {expected}" in _prepare_error(tmp_path)
