"""The frozen teacher's latents, computed once per clip, stand in for its pass in every step."""

import concurrent.futures
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from stew_tf import data
from stew_tf import listeners
from stew_tf import losses
from stew_tf import models
from stew_tf import train
from stew_tf import train_step
from tests.helpers import REPO_ROOT
from tests.helpers import TOY_DIMS
from tests.helpers import toy_split

DIMS = TOY_DIMS


def _split(num_clips=12, batch_size=4, seed=0):
  # Enough rows per batch for well-conditioned 100-d DCCA covariances.
  return toy_split(num_clips, (30, 45), batch_size=batch_size, seed=seed)


def _stage2(seed=0):
  """A cm_stew stage 2 (teacher with dropout: the teacher must run it in inference mode)."""
  keras.utils.set_random_seed(seed)
  rng = np.random.default_rng(seed)
  moments = {m: (rng.normal(size=d), rng.uniform(0.5, 2, size=d)) for m, d in DIMS.items()}
  teacher = models.build_encoder(DIMS["text"], 1, 0.3, *moments["text"], "strong")
  return train_step.Stage(
      "stage2", "audio", models.build_encoder(DIMS["audio"], 1, 0.3, *moments["audio"], "weak"),
      models.build_classifier(models.LATENT_DIM, "classification", "weak", 0.3), "classification",
      alignment=True, translation=True, strong=(train_step.StrongTerms(
          "text", teacher=teacher,
          decoder=models.build_decoder(models.LATENT_DIM, DIMS["text"], 8, 1, "weak"),
          normalizer=teacher.get_layer("strong_normalize"), alpha=0.1, beta=1.0),))


class _EpochLosses(listeners.Listener):

  def __init__(self):
    self.epochs = []

  def on_epoch_end(self, epoch, losses, metrics, improved, seconds):
    self.epochs.append(losses)


def _trainer(stage, workdir, cache, epochs=2):
  return train.StageTrainer(stage, DIMS, 1e-3, str(workdir), seed=3, epochs=epochs, patience=5,
                            cache_teacher_latents=cache)


def test_each_clips_latents_are_the_teacher_on_that_clip_alone(tmp_path):
  stage = _stage2()
  split = _split()
  (latents,) = _trainer(stage, tmp_path, cache=True).steps.teacher_latents(split).values()
  clips = list(split.dataset.as_numpy_iterator())
  assert len(latents) == len(clips)
  for clip, clip_latents in zip(clips, latents):
    text = clip["features"]["text"][None]
    alone = stage.teachers["text"]([text, np.ones(text.shape[:2], bool)], training=False)
    assert clip_latents.shape == (clip["length"], models.LATENT_DIM)
    np.testing.assert_allclose(clip_latents, alone[0], rtol=1e-5, atol=1e-5)


def test_shuffled_batches_carry_each_clips_own_latents_in_the_same_order(tmp_path):
  split = _split(num_clips=10)
  latents = [np.random.default_rng(i).normal(size=(int(clip["length"]), 100))
             for i, clip in enumerate(split.dataset.as_numpy_iterator())]
  first_text_row = [clip["features"]["text"][0] for clip in split.dataset.as_numpy_iterator()]
  with_latents = split.with_teacher_latents({"text": latents})
  for epoch in (1, 2):
    plain = list(split.batches(shuffle_seed=epoch))
    cached = list(with_latents.batches(shuffle_seed=epoch))
    assert len(plain) == len(cached) == 3
    for before, after in zip(plain, cached):
      np.testing.assert_array_equal(before["features"]["text"], after["features"]["text"])
      np.testing.assert_array_equal(before["mask"], after["mask"])
      for row, clip_mask, clip_latents in zip(after["features"]["text"].numpy(),
                                              after["mask"].numpy(),
                                              after[data.TEACHER_LATENTS]["text"].numpy()):
        clip = next(i for i, text in enumerate(first_text_row) if np.array_equal(text, row[0]))
        length = len(latents[clip])
        assert clip_mask.sum() == length
        np.testing.assert_array_equal(clip_latents[:length], np.float32(latents[clip]))
        assert not clip_latents[length:].any()  # padded like the features


def test_the_step_with_cached_latents_gives_the_losses_of_the_teacher_in_the_step(tmp_path):
  split = _split()
  in_step = _trainer(_stage2(), tmp_path / "a", cache=False).steps
  cached = _trainer(_stage2(), tmp_path / "b", cache=True).steps
  with_latents = split.with_teacher_latents(cached.teacher_latents(split))
  batch = next(iter(split.batches(shuffle_seed=5)))
  cached_batch = next(iter(with_latents.batches(shuffle_seed=5)))
  expected, _ = in_step.loss_terms(batch, training=False)
  terms, _ = cached.loss_terms(cached_batch, training=False)
  assert set(terms) == {"prediction", "dcca", "mae", "total"}
  assert abs(float(expected["dcca"])) > 1.0  # DCCA is on and depends on the latents
  for name in terms:
    assert float(terms[name]) == pytest.approx(float(expected[name]), rel=1e-5, abs=1e-6), name


def test_the_step_aligns_with_the_latents_of_the_batch_not_its_own_teacher_pass(tmp_path):
  stage = _stage2()
  steps = _trainer(stage, tmp_path, cache=True).steps
  batch = next(iter(_split().batches()))
  other = np.random.default_rng(7).normal(size=(*batch["mask"].shape, models.LATENT_DIM))
  terms, _ = steps.loss_terms({**batch,
                               data.TEACHER_LATENTS: {"text": tf.constant(other, tf.float32)}},
                              training=False)
  weak = stage.encoder([batch["features"]["audio"], batch["mask"]], training=False)
  (strong,) = stage.strong
  expected = losses.dcca_correlation(other, weak, batch["mask"], strong.dcca_r1, strong.dcca_r2)
  assert float(terms["dcca"]) == pytest.approx(-float(expected), rel=1e-5)


def test_fitting_with_cached_latents_trains_the_model_the_teacher_in_the_step_trains(tmp_path):
  epoch_losses, weights = [], []
  for cache in (False, True):
    stage = _stage2()
    trainer = _trainer(stage, tmp_path / str(cache), cache=cache)
    record = _EpochLosses()
    trainer.listeners.append(record)
    trainer.fit(_split(), _split(num_clips=4, seed=1), log=lambda line: None)
    epoch_losses.append(record.epochs)
    weights.append(stage.encoder.get_weights())
  assert len(epoch_losses[0]) == 2 and epoch_losses[0][0].keys() == epoch_losses[1][0].keys()
  for before, after in zip(*epoch_losses):
    for name in before:
      assert after[name] == pytest.approx(before[name], rel=1e-5, abs=1e-6), name
  for before, after in zip(*weights):
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)


# Runs in a fresh process: logical devices must be configured before TensorFlow starts.
_MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tests import test_teacher_latents as t
    from stew_tf import train

    # One strategy for both runs: a second one's collectives would clash with the first's.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def losses(cache, workdir):
      with strategy.scope():
        stage = t._stage2()
        trainer = train.StageTrainer(stage, t.DIMS, 1e-3, workdir, seed=0, epochs=1, patience=1,
                                     strategy=strategy, cache_teacher_latents=cache,
                                     optimizer=keras.optimizers.SGD(learning_rate=0.01))
      steps, split = trainer.steps, t._split(batch_size=8)
      if cache:
        split = split.with_teacher_latents(steps.teacher_latents(split))
      return [{k: float(v) for k, v in steps.train_step(batch).items()}
              for batch in steps.distribute(split.batches(shuffle_seed=1))]

    print(json.dumps([losses(False, "/tmp/unused_a"), losses(True, "/tmp/unused_b")]))
""")


@pytest.fixture(scope="module", autouse=True)
def mirrored_script():
  """Starts _MIRRORED_SCRIPT as the module starts: its process trains in the background while the
  other tests of the module run. A Future of its CompletedProcess."""
  executor = concurrent.futures.ThreadPoolExecutor(1)
  future = executor.submit(subprocess.run, [sys.executable, "-c", _MIRRORED_SCRIPT],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                           env={"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                                "PATH": "/usr/bin:/bin"})
  executor.shutdown(wait=False)
  yield future
  future.result()  # never left running


def test_two_mirrored_replicas_take_their_share_of_the_cached_latents(mirrored_script):
  result = mirrored_script.result()
  assert result.returncode == 0, result.stderr[-4000:]
  in_step, cached = json.loads(result.stdout.strip().splitlines()[-1])
  assert len(in_step) == len(cached) == 2
  for expected, terms in zip(in_step, cached):
    assert set(terms) == {"prediction", "dcca", "mae", "total"}
    for name in terms:
      assert terms[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name
