"""Several teachers at once (--strong=text,video or all): the flags and their one-line errors, the
loss as the sum of each teacher's terms, each teacher built as a run of its own builds it, and the
real command: teachers shared through the cache, exact resume, records and a weak-only export."""

import dataclasses
import json
import shutil
import signal
import time

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from stew_tf import cli_flags
from stew_tf import config as config_lib
from stew_tf import data
from stew_tf import experiment
from stew_tf import models
from stew_tf import stage_state
from stew_tf import train_step
from tests.helpers import read_until
from tests.helpers import run_in_background
from tests.helpers import run_main
from tests.helpers import start_main
from tests.test_losses import _reference_total_correlation

DIMS = {"text": 6, "video": 4, "audio": 5}


def _parse(*args):
  return cli_flags.parse(["prog", *args])


def test_all_teaches_with_every_other_modality_and_names_the_run():
  # The old default data: text, audio and video (the default adds label_echo, a control view).
  config = _parse("--dataset=stew_synthetic/mosi_like", "--strong=all", "--weak=audio",
                  "--alpha=0.1,0.3")
  assert config.strong_modalities == ("text", "video") and config.strong == "text+video"
  assert [a.alpha for a in config.alignments] == [0.1, 0.3]
  assert [t.beta for t in config.translations] == [1.0, 1.0]  # one value for every teacher
  assert [t.encoder.gru_layers for t in config.teachers] == [1, 2]  # each modality's own
  assert config.runtime.workdir.startswith(
      "runs/stew_synthetic_mosi_like-text+video-audio-cm_stew-seed0-")
  assert config.modalities == ("text", "video", "audio")


def test_a_teacher_has_the_identity_it_has_in_a_run_of_its_own():
  record = {"data_fingerprint": "f"}
  two = _parse("--strong=text,video", "--alpha=0.5")
  for teacher in two.teachers:
    alone = _parse(f"--strong={teacher.modality}")
    assert isinstance(alone.teacher, config_lib.Teacher)  # one teacher: the single branch
    assert two.teacher_identity(record, teacher) == alone.teacher_identity(record)


def test_each_teacher_takes_its_own_dropout_and_learning_rate():
  record = {"data_fingerprint": "f"}
  two = _parse("--strong=text,video", "--strong_dropout=0.2,0.5", "--strong_learning_rate=1e-3",
               "--dropout=0.4", "--learning_rate=2e-3")
  assert [t.encoder.dropout for t in two.teachers] == [0.2, 0.5]
  assert [t.trainer.learning_rate for t in two.teachers] == [1e-3, 1e-3]  # one for both
  assert two.student.encoder.dropout == 0.4 and two.trainer.learning_rate == 2e-3
  # Each teacher is the one a run of its own with its settings trains: the cache shares it.
  for teacher, dropout in zip(two.teachers, ("0.2", "0.5")):
    alone = _parse(f"--strong={teacher.modality}", f"--strong_dropout={dropout}",
                   "--strong_learning_rate=1e-3")
    assert two.teacher_identity(record, teacher) == alone.teacher_identity(record)
  # Unset, they fall back to the student's, as with one teacher.
  plain = _parse("--strong=text,video", "--dropout=0.4", "--learning_rate=2e-3")
  assert [(t.encoder.dropout, t.trainer.learning_rate) for t in plain.teachers] == [
      (0.4, 2e-3), (0.4, 2e-3)]


@pytest.mark.parametrize("args, expected", [
    (["--strong=text,text"], "--strong=text,text names text twice; name each strong modality "
                             "once"),
    (["--strong=text,audio"], "--strong=text,audio holds the weak modality audio (--weak); "
                              "expected others of: text, audio, video"),
    (["--strong=text,smell"], "--strong=text,smell: smell is not a modality of "
                              "--dataset=stew_synthetic; choose one or several (comma-separated) "
                              "of: text, audio, video"),
    (["--strong="], "--strong=: expected one modality or several, comma-separated, of: text, "
                    "audio, video, label_echo (or all)"),
    (["--strong=text,video", "--alpha=0.1,0.2,0.3"],
     "--alpha=0.1,0.2,0.3: expected one value for every teacher, or one per strong modality of "
     "--strong=text,video (2: text, video)"),
    (["--strong=text", "--beta=1,2"], "--beta=1.0,2.0: expected one value for every teacher, "
                                      "or one per strong modality of --strong=text (1: text)"),
    (["--strong=text,video", "--strong_dropout=0.2,0.5,0.7"],
     "--strong_dropout=0.2,0.5,0.7: expected one value for every teacher, or one per strong "
     "modality of --strong=text,video (2: text, video)"),
    (["--strong_dropout=0.2,1.5"], "flag --strong_dropout=0.2,1.5: expected a number in "
                                   "[0, 0.9]"),
    (["--strong_learning_rate=0.1,0"], "flag --strong_learning_rate=0.1,0.0: expected a number "
                                       "in (0, 1]"),
    (["--alpha=0.1,x"], "flag --alpha=0.1,x: expected a number, or one per strong modality, "
                        "comma-separated"),
    (["--alpha=0.1,-1"], "flag --alpha=0.1,-1.0: expected a number >= 0"),
])
def test_bad_lists_give_one_line_naming_the_flag_and_what_is_allowed(args, expected):
  with pytest.raises(flags.Error) as error:
    _parse(*args)
  assert expected in str(error.value) and "\n" not in str(error.value)


def test_all_on_a_dataset_without_another_modality_gives_one_line(monkeypatch):
  alone = dataclasses.replace(data.get_spec("stew_synthetic"), modalities={"audio": 5})
  monkeypatch.setattr(data, "get_spec", lambda *args: alone)
  with pytest.raises(flags.Error) as error:
    _parse("--strong=all", "--weak=audio")
  assert ("--strong=all: --dataset=stew_synthetic has no modality but --weak=audio; expected a "
          "dataset with two or more") in str(error.value)


def test_the_command_names_the_bad_list_in_one_line():
  result = run_main("--strong=video,video", "--only_check_args", timeout=120)
  assert result.returncode != 0
  assert "--strong=video,video names video twice" in result.stderr
  assert "Traceback" not in result.stderr


def _batch(rng, lengths=(40, 35, 30, 38)):
  """A batch of random features and labels with both teachers' latents, as training has it."""
  mask = np.arange(max(lengths))[None] < np.array(lengths)[:, None]
  return {"features": {m: tf.constant(rng.normal(size=(*mask.shape, d)), tf.float32)
                       for m, d in DIMS.items()},
          "labels": tf.constant((rng.uniform(size=mask.shape) > 0.5).astype(np.float32)),
          "mask": tf.constant(mask),
          data.TEACHER_LATENTS: {m: tf.constant(rng.normal(size=(*mask.shape, 100)), tf.float32)
                                 for m in ("text", "video")}}


def _strong_terms(rng, modality, alpha, beta):
  mean, variance = rng.normal(size=DIMS[modality]), rng.uniform(0.5, 2, size=DIMS[modality])
  normalizer = models.build_normalizer(mean, variance, f"strong_{modality}")
  normalizer.build((None, None, DIMS[modality]))
  return train_step.StrongTerms(
      modality, decoder=models.build_decoder(models.LATENT_DIM, DIMS[modality], 8, 1,
                                             f"weak_{modality}"),
      normalizer=normalizer, alpha=alpha, beta=beta), (mean, variance)


def test_the_loss_is_the_prediction_plus_each_teachers_weighted_terms():
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  batch = _batch(rng)
  encoder = models.build_encoder(DIMS["audio"], 1, 0.0, np.zeros(5), np.ones(5), "weak")
  classifier = models.build_classifier(models.LATENT_DIM, "classification", "weak", 0.0)
  strong = {m: _strong_terms(rng, m, alpha, beta)
            for m, alpha, beta in (("text", 0.1, 1.0), ("video", 0.3, 0.5))}

  def terms_of(modalities):
    stage = train_step.Stage("stage2", "audio", encoder, classifier, "classification",
                             alignment=True, translation=True,
                             strong=tuple(strong[m][0] for m in modalities))
    steps = train_step.StepFunctions(stage, DIMS, keras.optimizers.SGD())
    return {name: float(value) for name, value in steps.loss_terms(batch, False)[0].items()}

  both = terms_of(("text", "video"))
  assert list(both) == ["prediction", "dcca/text", "dcca/video", "mae/text", "mae/video",
                        "total"]
  # Numpy, from the models' outputs.
  mask = batch["mask"].numpy()
  latents = encoder([batch["features"]["audio"], batch["mask"]]).numpy()
  scores = np.clip(classifier(latents).numpy()[mask], 1e-7, 1 - 1e-7)
  labels = batch["labels"].numpy()[mask]
  expected = {"prediction": -np.mean(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))}
  total = expected["prediction"]
  for modality, (terms, (mean, variance)) in strong.items():
    teacher = batch[data.TEACHER_LATENTS][modality].numpy()
    expected[f"dcca/{modality}"] = -_reference_total_correlation(teacher[mask], latents[mask])
    target = (batch["features"][modality].numpy() - mean) / np.sqrt(variance)
    decoded = terms.decoder([tf.constant(latents), batch["mask"]]).numpy()
    expected[f"mae/{modality}"] = np.abs(target - decoded)[mask].mean()
    total += terms.alpha * expected[f"dcca/{modality}"] + terms.beta * expected[f"mae/{modality}"]
  expected["total"] = total
  for name, value in expected.items():
    assert both[name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
  # Each teacher's terms are those of a stage with that teacher alone.
  for modality in strong:
    alone = terms_of((modality,))
    assert alone["prediction"] == both["prediction"]
    assert alone["dcca"] == both[f"dcca/{modality}"] and alone["mae"] == both[f"mae/{modality}"]


def test_each_teacher_starts_as_in_a_run_of_its_own(tfds_dir):
  builder = data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))
  split = data.load_split(builder, "train", ["text", "video", "audio"], "sentiment", 32)

  def teacher_state(config, name):
    keras.utils.set_random_seed(0)  # as experiment.run_experiment seeds before build_stages
    stage = next(s for s in experiment.build_stages(config, split) if s.name == name)
    models_ = [stage.encoder, stage.classifier]
    return ([w for m in models_ for w in m.get_weights()],
            [v.numpy() for v in stage_state.random_generator_states(models_)])

  for modality in ("text", "video"):
    together = teacher_state(_parse("--strong=text,video"), f"stage1/{modality}")
    alone = teacher_state(_parse(f"--strong={modality}"), "stage1")
    for found, expected in zip(together, alone):
      assert len(found) == len(expected) > 0
      for a, b in zip(found, expected):
        np.testing.assert_array_equal(a, b)


ARGS = ["--weak=audio", "--epochs=2", "--strong_epochs=1", "--patience=5"]
TWO = ["--strong=text,video", *ARGS]


@pytest.fixture(scope="module", autouse=True)
def started_reference(tmp_path_factory, tfds_dir):
  """Starts an uninterrupted two-teacher run, with a teacher cache of its own, as the module
  starts: it trains in the background while the tests that need no run go on, and while the
  resumed run trains its own text teacher. (root, Future of its CompletedProcess)."""
  data.make_builder("stew_synthetic", "sentiment", str(tfds_dir))  # prepared once, here
  root = tmp_path_factory.mktemp("two_teachers")
  future = run_in_background(*TWO, f"--workdir={root / 'work'}", f"--data_dir={tfds_dir}",
                             f"--teacher_cache={root / 'teachers'}")
  yield root, future
  future.result()  # never left running


@pytest.fixture(scope="module")
def reference(started_reference):
  """The uninterrupted two-teacher run, finished: (root, CompletedProcess)."""
  root, future = started_reference
  result = future.result()
  assert result.returncode == 0, result.stderr[-3000:]
  return root, result


def _finished_teacher(root, future, modality, timeout=600):
  """The cache entry of the reference's `modality` teacher, once that teacher has finished
  (its done.json is written), while the reference may still be training stage 2."""
  deadline = time.time() + timeout
  while True:
    found = list((root / "teachers").glob(f"*-{modality}-*/checkpoints/done.json"))
    if found:
      return found[0].parent.parent
    if future.done() or time.time() > deadline:
      result = future.result()
      raise AssertionError(f"the reference has no finished {modality} teacher; exit code "
                           f"{result.returncode}:\n{result.stderr[-3000:]}")
    time.sleep(0.2)


def _outcome(workdir):
  results = json.loads((workdir / "results.json").read_text())
  with np.load(workdir / "predictions.npz") as predictions:
    arrays = {name: predictions[name] for name in predictions.files}
  return {key: results[key] for key in ("strong_model", "weak_model", "kept_epoch")}, arrays


def test_a_cached_teacher_is_reused_and_resume_is_exact(started_reference, tfds_dir, tmp_path,
                                                         request):
  root, future = started_reference
  # A cache holding the reference's video teacher only: the run trains the text teacher, reuses
  # the video one, and is killed in stage 2. (It starts as soon as the reference's video teacher
  # is finished, while the reference trains its stage 2.)
  video_entry = _finished_teacher(root, future, "video")
  shutil.copytree(video_entry, tmp_path / "teachers" / video_entry.name,
                  ignore=shutil.ignore_patterns("*.lock"))
  args = [*TWO, f"--workdir={tmp_path / 'work'}", f"--data_dir={tfds_dir}",
          f"--teacher_cache={tmp_path / 'teachers'}"]
  process = start_main(*args)
  lines = read_until(process, "[stage2 audio] epoch   1/2")
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
  assert any(line.startswith("[stage1/text text] epoch   1/1") for line in lines)
  assert any("[stage1/video] already finished after 1 epochs" in line for line in lines)
  assert not any(line.startswith("[stage1/video video] epoch") for line in lines)
  resumed = run_main(*args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "[stage2] resuming after epoch 1" in resumed.stdout
  assert "[stage1/text] already finished after 1 epochs" in resumed.stdout
  # The text teacher trained here has the reference's cache entry, and everything ends as the
  # uninterrupted reference.
  root, _ = request.getfixturevalue("reference")
  assert (sorted(p.name for p in (tmp_path / "teachers").iterdir())
          == sorted(p.name for p in (root / "teachers").iterdir()))
  (metrics, predictions), (expected_metrics, expected) = (
      _outcome(tmp_path / "work"), _outcome(root / "work"))
  assert metrics == expected_metrics
  for name, values in expected.items():
    np.testing.assert_array_equal(predictions[name], values)


def test_the_records_name_every_teacher_and_each_has_its_curves(reference):
  root, result = reference
  results = json.loads((root / "work" / "results.json").read_text())
  assert (results["strong"], results["weak"]) == ("text+video", "audio")
  entries = sorted(p.name for p in (root / "teachers").iterdir())
  assert sorted(results["teachers"]) == ["text", "video"]
  assert sorted(p.rsplit("/", 1)[1] for p in results["teachers"].values()) == entries
  assert set(results["strong_model"]) == {"text", "video"}
  assert results["epochs"] == {"stage1": 1, "stage2": 2, "stage1/text": 1, "stage1/video": 1}
  assert [t["modality"] for t in results["config"]["teacher"]] == ["text", "video"]
  found = set()
  for path in (root / "work" / "tensorboard" / "stage2").glob("events.out.tfevents.*"):
    found |= {v.tag for event in tf.compat.v1.train.summary_iterator(str(path))
              for v in event.summary.value}
  assert {"loss/dcca/text", "loss/dcca/video", "loss/mae/text", "loss/mae/video"} <= found
  assert "[stage1/video video] epoch   1/1" in result.stdout


def test_the_export_takes_the_weak_features_alone(reference):
  root, _ = reference
  serve = tf.saved_model.load(str(root / "work" / "export" / "1")).signatures["serving_default"]
  inputs = serve.structured_input_signature[1]
  assert sorted(inputs) == ["features", "mask"]
  audio_dim = data.get_spec("stew_synthetic").modalities["audio"]
  assert inputs["features"].shape.as_list() == [None, None, audio_dim]
