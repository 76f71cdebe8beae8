"""stew_tf.predict: input formats, error messages, and scores equal to the in-memory model's."""

import json
import shutil

import numpy as np
import pytest

from stew_tf import clip_files
from stew_tf import predict
from tests.helpers import export_random_predictor
from tests.helpers import run_main

DIM = 5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """A randomly initialised weak predictor and its export base folder (W/export)."""
  base = tmp_path_factory.mktemp("work") / "export"
  predictor, _ = export_random_predictor(base, DIM, seed=0)
  return predictor, base


@pytest.fixture(scope="module")
def model(exported):
  return predict.load_model(str(exported[1]))


def _in_memory(predictor, arrays):
  """The predictor's scores of each clip's segments, the clips zero-padded into one batch."""
  clips = clip_files.pad_clips([str(i) for i in range(len(arrays))],
                            [np.asarray(a, np.float32) for a in arrays])
  scores = predictor([clips.features, clips.mask], training=False).numpy()
  return [row[:len(a)] for row, a in zip(scores, arrays)]


def _assert_scores_equal(actual, expected):
  assert len(actual) == len(expected)
  for got, want in zip(actual, expected):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _clip(length, seed):
  return np.random.default_rng(seed).normal(size=(length, DIM))


# --- export folder ----------------------------------------------------------------------------
def test_the_base_folder_resolves_to_its_highest_version(exported, tmp_path):
  _, base = exported
  copy = tmp_path / "export"
  shutil.copytree(base / "1", copy / "2")
  shutil.copytree(base / "1", copy / "10")
  (copy / "11").mkdir()  # a version folder without a model is skipped, as TF Serving does
  (copy / "notes").mkdir()
  assert predict.resolve_export_dir(str(copy)) == str(copy / "10")
  assert predict.resolve_export_dir(str(copy / "2")) == str(copy / "2")


def test_the_model_reports_the_feature_dimension_of_its_signature(exported, model):
  assert model.feature_dim == DIM
  assert model.path == str(exported[1] / "1")


@pytest.mark.parametrize("damage", ["truncated", "variables_missing", "garbage"])
def test_every_load_failure_is_one_line_and_exit_2(exported, tmp_path, damage):
  copy = tmp_path / "export"
  shutil.copytree(exported[1], copy)
  version = copy / "1"
  if damage == "truncated":
    data = (version / "saved_model.pb").read_bytes()
    (version / "saved_model.pb").write_bytes(data[:len(data) // 3])
  elif damage == "variables_missing":
    shutil.rmtree(version / "variables")
  else:
    (version / "saved_model.pb").write_bytes(b"not a protocol buffer at all")
  np.save(tmp_path / "clip.npy", np.zeros((4, DIM), np.float32))
  result = run_main(f"--export_dir={copy}", f"--input={tmp_path / 'clip.npy'}",
                    module="stew_tf.predict", timeout=120)
  assert result.returncode == 2, result.stderr[-2000:]
  # TensorFlow's own start-up log lines may come first; ours is the one error line.
  lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1 and lines[0].startswith(f"error: {version}: cannot be loaded as a "
                                                 "SavedModel ("), result.stderr[-2000:]
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_folder_without_a_saved_model_is_named(tmp_path, make):
  folder = tmp_path / "export"
  if make == "empty":
    (folder / "1").mkdir(parents=True)
  with pytest.raises(predict.InputError) as error:
    predict.load_model(str(folder))
  message = str(error.value)
  assert message.startswith(f"{folder}: ")
  assert ("no such folder" if make == "missing" else "expected saved_model.pb") in message


# --- input formats ----------------------------------------------------------------------------
def test_npy_one_clip(exported, model, tmp_path):
  clip = _clip(7, seed=1)
  np.save(tmp_path / "clip.npy", clip)
  clips = clip_files.load_clips(str(tmp_path / "clip.npy"), DIM)
  assert clips.ids == ["0"]
  _assert_scores_equal(predict.score_clips(model, clips), _in_memory(exported[0], [clip]))


def test_npy_clips_of_equal_length_are_batched_in_order(exported, model, tmp_path):
  batch = np.random.default_rng(2).integers(-3, 4, size=(3, 6, DIM))  # ints are fine
  np.save(tmp_path / "clips.npy", batch)
  clips = clip_files.load_clips(str(tmp_path / "clips.npy"), DIM)
  assert clips.ids == ["0", "1", "2"]
  _assert_scores_equal(predict.score_clips(model, clips, batch_size=2),
                       _in_memory(exported[0], list(batch)))


def test_npz_padded_features_and_mask_ignore_the_padding(exported, model, tmp_path):
  lengths = [8, 3, 5]
  rng = np.random.default_rng(3)
  features = rng.normal(size=(3, 8, DIM))  # random values past each clip's end too
  mask = np.arange(8) < np.array(lengths)[:, None]
  features[1, 6] = np.nan  # in the padding: ignored
  np.savez(tmp_path / "padded.npz", features=features, mask=mask)
  clips = clip_files.load_clips(str(tmp_path / "padded.npz"), DIM)
  assert clips.ids == ["0", "1", "2"]
  assert clips.lengths.tolist() == lengths
  scores = predict.score_clips(model, clips, batch_size=2)
  _assert_scores_equal(scores, _in_memory(exported[0], [f[:n] for f, n in zip(features, lengths)]))
  # The in-memory model on the file's own padded batch (garbage in the padding) agrees too.
  garbage = np.nan_to_num(features).astype(np.float32)
  direct = exported[0]([garbage, mask], training=False).numpy()
  _assert_scores_equal(scores, [row[:n] for row, n in zip(direct, lengths)])


def test_npz_without_mask_is_all_real_segments(exported, model, tmp_path):
  features = np.random.default_rng(4).normal(size=(2, 4, DIM)).astype(np.float32)
  np.savez(tmp_path / "features.npz", features=features)
  clips = clip_files.load_clips(str(tmp_path / "features.npz"), DIM)
  assert clips.mask.all()
  _assert_scores_equal(predict.score_clips(model, clips), _in_memory(exported[0], list(features)))


def test_npz_ragged_clips_are_padded_and_named(exported, model, tmp_path):
  arrays = {"interview_b": _clip(9, seed=5), "interview_a": _clip(2, seed=6),
            "interview_c": np.arange(4 * DIM).reshape(4, DIM) % 3}
  np.savez(tmp_path / "ragged.npz", **arrays)
  clips = clip_files.load_clips(str(tmp_path / "ragged.npz"), DIM)
  assert clips.ids == list(arrays)  # the archive's order
  assert clips.features.shape == (3, 9, DIM)
  assert clips.lengths.tolist() == [9, 2, 4]
  assert not clips.features[1, 2:].any()  # zero padding
  _assert_scores_equal(predict.score_clips(model, clips, batch_size=2),
                       _in_memory(exported[0], list(arrays.values())))


def _write_csv(path, rows, header=None):
  lines = ([",".join(header)] if header else []) + [",".join(map(str, row)) for row in rows]
  path.write_text("\n".join(lines) + "\n")


def test_csv_clip_id_groups_rows_in_order_of_appearance(exported, model, tmp_path):
  b, a = _clip(3, seed=7), _clip(2, seed=8)
  rows = [["b", *b[0]], ["a", *a[0]], ["b", *b[1]], ["a", *a[1]], ["b", *b[2]]]
  _write_csv(tmp_path / "clips.csv", rows, header=["clip_id"] + [f"f{i}" for i in range(DIM)])
  clips = clip_files.load_clips(str(tmp_path / "clips.csv"), DIM)
  assert clips.ids == ["b", "a"]
  _assert_scores_equal(predict.score_clips(model, clips), _in_memory(exported[0], [b, a]))


@pytest.mark.parametrize("header", [None, [f"mfcc{i}" for i in range(DIM)]])
def test_csv_without_clip_id_is_one_clip(exported, model, tmp_path, header):
  clip = _clip(4, seed=9)
  _write_csv(tmp_path / "clip.csv", clip.tolist(), header=header)
  clips = clip_files.load_clips(str(tmp_path / "clip.csv"), DIM)
  assert clips.ids == ["0"]
  _assert_scores_equal(predict.score_clips(model, clips), _in_memory(exported[0], [clip]))


@pytest.mark.parametrize("extension", [".csv", ".npy", ".json"])
def test_write_scores(tmp_path, extension):
  scores = [np.array([0.25, 0.5], np.float32), np.array([0.75], np.float32)]
  path = tmp_path / f"scores{extension}"
  clip_files.write_scores(str(path), ["a", "b"], scores)
  if extension == ".csv":
    assert path.read_text().splitlines() == [
        "clip_id,segment,score", "a,0,0.25", "a,1,0.5", "b,0,0.75"]
  elif extension == ".npy":
    np.testing.assert_array_equal(np.load(path), [[0.25, 0.5], [0.75, np.nan]])
  else:
    assert json.loads(path.read_text()) == [{"clip_id": "a", "scores": [0.25, 0.5]},
                                            {"clip_id": "b", "scores": [0.75]}]


# --- errors -----------------------------------------------------------------------------------
def _npy(array, **kwargs):
  return lambda path: np.save(path, array, **kwargs)


def _npz(**arrays):
  return lambda path: np.savez(path, **arrays)


def _text(text):
  return lambda path: path.write_text(text)


_NAN = _clip(5, seed=10)
_NAN[3, 2] = np.nan
_INF = _clip(4, seed=11)
_INF[1, 0] = np.inf
_LEFT_PADDED = np.array([[True, True, True], [False, True, True]])
_ONE_EMPTY = np.array([[True, True, False], [False, False, False]])
ERRORS = {
    # name: (file name, writer, expected words in the message)
    "npy_dimension": ("x.npy", _npy(np.zeros((3, 4))), "wrong feature dimension: got 4, "
                      f"model expects {DIM}"),
    "npz_dimension": ("x.npz", _npz(a=np.zeros((3, DIM)), b=np.zeros((2, 7))),
                      f"clip 'b': wrong feature dimension: got 7, model expects {DIM}"),
    "csv_dimension": ("x.csv", _text("1,2,3\n"), f"got 3 columns, model expects {DIM}"),
    "csv_extra_column": ("x.csv", _text("a," + ",".join(["1"] * DIM) + "\n"),
                         "header whose first column is clip_id"),
    "npy_rank": ("x.npy", _npy(np.zeros(DIM)), f"expected [time, {DIM}] (one clip)"),
    "complex": ("x.npy", _npy(np.zeros((3, DIM), complex)), "dtype complex128; expected"),
    "strings": ("x.npy", _npy(np.full((3, DIM), "a")), "dtype <U1; expected"),
    "bools": ("x.npy", _npy(np.ones((3, DIM), bool)), "dtype bool; expected"),
    "objects": ("x.npy", _npy(np.array([[1, None]] * 3, object), allow_pickle=True),
                "expected int or float arrays"),
    "csv_text": ("x.csv", _text(f"clip_id{',f' * DIM}\na,1,2,abc,4,5\n"),
                 f"line 2 holds 'abc'; expected {DIM} real numbers"),
    "csv_complex": ("x.csv", _text("1,2,3,4,1+2j\n"), "holds '1+2j'; expected"),
    "csv_empty": ("x.csv", _text("\n\n"), "no data rows; expected one row per segment"),
    "csv_header_only": ("x.csv", _text(f"clip_id{',f' * DIM}\n"), "only a header row"),
    "npy_no_segments": ("x.npy", _npy(np.zeros((0, DIM))), "clip '0' has zero segments"),
    "npy_no_clips": ("x.npy", _npy(np.zeros((0, 4, DIM))), "holds zero clips; expected"),
    "npz_no_arrays": ("x.npz", _npz(), "holds zero clips; expected"),
    "npz_empty_clip": ("x.npz", _npz(features=np.zeros((2, 3, DIM)), mask=_ONE_EMPTY),
                       "clip '1' has zero segments"),
    "npz_left_padded": ("x.npz", _npz(features=np.zeros((2, 3, DIM)), mask=_LEFT_PADDED),
                        "'mask' of clip 1 is not right-padded; expected True on the real"),
    "npz_mask_shape": ("x.npz", _npz(features=np.zeros((2, 3, DIM)), mask=np.ones((2, 4), bool)),
                       "expected bool (2, 3)"),
    "npz_mask_alone": ("x.npz", _npz(mask=np.ones((2, 4), bool)), "no 'features' array"),
    "npy_nan": ("x.npy", _npy(_NAN), "clip '0' row 3 column 2 is nan (as float32); expected "
                "finite numbers"),
    "npz_inf": ("x.npz", _npz(a=_clip(2, 0), b=_INF), "clip 'b' row 1 column 0 is inf"),
    "float32_overflow": ("x.npy", _npy(np.full((2, DIM), 1e300)), "row 0 column 0 is inf"),
    "csv_nan": ("x.csv", _text(f"clip_id{',f' * DIM}\na,1,2,3,4,5\nb,1,2,3,4,5\nb,1,nan,3,4,5\n"),
                "clip 'b' row 1 (line 4) column 1 is nan"),
    "missing": ("x.npy", None, "no such file; expected a .npy, .npz or .csv file"),
    "extension": ("x.txt", _text("1,2,3,4,5\n"), "unknown input format '.txt'; expected"),
    "not_numpy": ("x.npy", _text("1,2,3,4,5\n"), "expected int or float arrays"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_input_names_the_file_and_the_expectation(tmp_path, case):
  name, write, expected = ERRORS[case]
  path = tmp_path / name
  if write:
    write(path)
  with pytest.raises(predict.InputError) as error:
    clip_files.load_clips(str(path), DIM)
  message = str(error.value)
  assert message.startswith(f"{path}: "), message
  assert expected in message, message
  assert "\n" not in message


# --- the command ------------------------------------------------------------------------------
def _command(*args):
  return run_main(*args, module="stew_tf.predict", timeout=300)


def test_command_prints_one_line_per_clip(exported, tmp_path):
  predictor, base = exported
  arrays = {"a": _clip(3, seed=12), "b": _clip(5, seed=13)}
  np.savez(tmp_path / "clips.npz", **arrays)
  result = _command(f"--export_dir={base}", f"--input={tmp_path / 'clips.npz'}")
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert [line.split("\t")[0] for line in lines] == ["a", "b"]
  printed = [np.array(line.split("\t")[1].split(), float) for line in lines]
  for got, want in zip(printed, _in_memory(predictor, list(arrays.values()))):
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_command_writes_json(exported, tmp_path):
  predictor, base = exported
  clip = _clip(4, seed=14)
  _write_csv(tmp_path / "clip.csv", clip.tolist())
  output = tmp_path / "scores.json"
  result = _command(f"--export_dir={base / '1'}", f"--input={tmp_path / 'clip.csv'}",
                    f"--output={output}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == ""
  written = json.loads(output.read_text())
  assert [entry["clip_id"] for entry in written] == ["0"]
  np.testing.assert_allclose(written[0]["scores"], _in_memory(predictor, [clip])[0], atol=1e-6)


@pytest.mark.parametrize("case", ["dimension", "missing_input", "no_saved_model", "output"])
def test_command_errors_are_one_line_without_traceback(exported, tmp_path, case):
  _, base = exported
  export_dir, input_path, extra = base, tmp_path / "x.npy", []
  np.save(input_path, np.zeros((3, DIM + 1)))
  expected = f"{input_path}: clip '0': wrong feature dimension: got {DIM + 1}"
  if case == "missing_input":
    input_path = tmp_path / "missing.npy"
    expected = f"{input_path}: no such file"
  elif case == "no_saved_model":
    export_dir = tmp_path
    expected = f"{tmp_path}: no SavedModel found; expected saved_model.pb"
  elif case == "output":
    extra = [f"--output={tmp_path / 'scores.txt'}"]
    expected = f"{tmp_path / 'scores.txt'}: unknown output format '.txt'"
  result = _command(f"--export_dir={export_dir}", f"--input={input_path}", *extra)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and expected in errors[0], result.stderr[-3000:]
  assert result.stderr.rstrip().endswith(errors[0])
