"""Tests of the recordings builder on dummy_data/ (TFDS's checks) and of its clips and labels."""

import importlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from stew_tf import audio_features
from stew_tf import tfds_builders

Builder = tfds_builders.builder_class("recordings")
recordings = tfds_builders.builder_module("recordings")
make_example_corpus = importlib.import_module("stew_datasets.recordings.make_example_corpus")


class DummyCorpusTest(tfds.testing.DatasetBuilderTestCase):
  """dummy_data/: three 4 s recordings (101 frames): train clips 0-75, 25-100 and 26-101."""
  DATASET_CLASS = Builder
  SPLITS = {"train": 3, "validation": 1, "test": 1}
  EXAMPLE_DIR = str(make_example_corpus.DUMMY_DATA)

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.BUILDER_CONFIG_NAMES_TO_TEST = [recordings.config_from_dir(cls.EXAMPLE_DIR)]

  def _make_builder(self, config=None):
    return super()._make_builder(config=config or self.BUILDER_CONFIG_NAMES_TO_TEST[0])


def _prepare(root, data_dir, **settings):
  builder = Builder(config=recordings.config_from_dir(root, **settings), data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  return builder


def _examples(builder, split):
  return sorted(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)),
                key=lambda example: example["clip_id"])


def test_labels_and_tables_are_resampled_onto_frames_and_shifted(tmp_path):
  root = tmp_path / "corpus"
  make_example_corpus.write_corpus(root, {"a": "train", "b": "validation", "c": "test"},
                                   seconds=4.0, spec_extra={"window_seconds": 2.0,
                                                            "annotation_delay": 1.0})
  # A face table and labels that are the time itself: resampled values are the frame times.
  for name in "abc":
    times = np.arange(0, 4.0001, 1 / 30)
    (root / "face" / f"{name}.csv").write_text(
        "time,a,b\n" + "".join(f"{t:.6f},{t:.6f},{2 * t:.6f}\n" for t in times))
    (root / "labels" / f"{name}.csv").write_text(
        "time,arousal\n" + "".join(f"{t:.1f},{t / 10:.3f}\n" for t in np.arange(0, 4.01, 0.1)))
  # The delay given (stew_tf.main's --annotation_delay) wins over spec.json's 1 s.
  builder = _prepare(root, tmp_path / "tfds", annotation_delay=0.4)
  (test_clip,) = _examples(builder, "test")
  frames = np.arange(101) * audio_features.FRAME_SECONDS
  np.testing.assert_allclose(test_clip["face"][:, 0], frames, atol=1e-5)
  np.testing.assert_allclose(test_clip["face"][:, 1], 2 * frames, atol=1e-5)
  # Frame t gets the label of t + 0.4 s; past the last rating (4 s) the last one holds.
  np.testing.assert_allclose(test_clip["arousal"], np.minimum(frames + 0.4, 4.0) / 10, atol=1e-5)
  assert test_clip["audio"].shape == (101, 88) and np.isfinite(test_clip["audio"]).all()
  train = _examples(builder, "train")
  assert [ex["clip_id"].decode() for ex in train] == ["a/0000", "a/0001", "a/0002"]
  np.testing.assert_allclose(train[2]["face"][:, 0], frames[26:], atol=1e-5)


def test_segment_labels_give_one_clip_of_segments(tmp_path):
  root = tmp_path / "corpus"
  make_example_corpus.write_corpus(root, {"a": "train", "b": "validation", "c": "test"},
                                   seconds=8.0, segment_seconds=2.0,
                                   spec_extra={"task": "classification"})
  builder = _prepare(root, tmp_path / "tfds")
  (clip,) = _examples(builder, "validation")
  assert clip["audio"].shape == (4, 88) and clip["face"].shape == (4, 6)
  assert set(np.unique(clip["arousal"])) <= {0.0, 1.0}
  assert recordings.config_from_dir(root).recipe.mode == audio_features.SEGMENTS


def test_a_setting_given_wins_over_spec_json_which_wins_over_the_default(tmp_path):
  root = tmp_path / "corpus"
  splits = {"a": "train", "b": "validation", "c": "test"}
  make_example_corpus.write_corpus(root, splits, seconds=1.0)
  assert recordings.recording_settings(root) == (4.0, 0.0)  # AVEC 2016's for arousal
  make_example_corpus.write_corpus(root, splits, seconds=1.0,
                                   spec_extra={"window_seconds": 2.0, "annotation_delay": 1.0})
  assert recordings.recording_settings(root) == (2.0, 1.0)
  assert recordings.recording_settings(root, 2.4, 0.4) == (2.4, 0.4)
  assert recordings.recording_settings(root, None, 0.0) == (2.0, 0.0)  # 0 given is given


@pytest.mark.parametrize("label, seconds", [("arousal", 4.0), ("Arousal", 4.0),
                                            ("valence", 6.0), ("engagement", 6.0)])
def test_the_default_window_is_avec_2016s_for_the_label(tmp_path, label, seconds):
  root = tmp_path / "corpus"
  make_example_corpus.write_corpus(root, {"a": "train", "b": "validation", "c": "test"},
                                   seconds=1.0, label=label)
  assert recordings.recording_settings(root) == (seconds, 0.0)


@pytest.mark.parametrize("spec_extra, settings, expected", [
    ({}, {"window_seconds": 4.0}, "--recording_window=4: the corpus's labels are per segment"),
    ({"annotation_delay": 2.8}, {}, "spec.json: key 'annotation_delay': the corpus's labels are "
                                    "per segment"),
])
def test_window_and_delay_do_not_apply_to_segment_labels(tmp_path, spec_extra, settings,
                                                         expected):
  root = tmp_path / "corpus"
  make_example_corpus.write_corpus(root, {"a": "train", "b": "validation", "c": "test"},
                                   seconds=4.0, segment_seconds=2.0, spec_extra=spec_extra)
  with pytest.raises(ValueError) as error:
    recordings.recording_settings(root, **settings)
  assert expected in str(error.value)
  assert str(error.value).endswith("expected it with time-continuous labels (time,<label>) only")
