"""The training loop: frozen teacher, NaN handling, early stopping, checkpoints."""

import numpy as np
import pytest
import tensorflow as tf

from stew_tf import models
from stew_tf import train
from stew_tf import train_step
from tests.helpers import TOY_DIMS
from tests.helpers import toy_split

DIMS = TOY_DIMS


def _split(num_clips, seed=0, poison=False):
  return toy_split(num_clips, (3, 9), seed=seed, poison=poison)


def _stages(dropout=0.1):
  moments = {m: (np.zeros(d), np.ones(d)) for m, d in DIMS.items()}
  teacher = models.build_encoder(DIMS["text"], 1, dropout, *moments["text"], "strong")
  stage1 = train_step.Stage("stage1", "text", teacher,
                       models.build_classifier(models.LATENT_DIM, "classification", "strong", 0.3),
                       "classification")
  weak = models.build_encoder(DIMS["audio"], 1, dropout, *moments["audio"], "weak")
  stage2 = train_step.Stage(
      "stage2", "audio", weak,
      models.build_classifier(models.LATENT_DIM, "classification", "weak", 0.3), "classification",
      alignment=True, translation=True, strong=(train_step.StrongTerms(
          "text", teacher=teacher,
          decoder=models.build_decoder(models.LATENT_DIM, DIMS["text"], 8, 1, "weak"),
          normalizer=teacher.get_layer("strong_normalize"), alpha=0.1, beta=1.0),))
  return stage1, stage2


def _trainer(stage, workdir, epochs=2, patience=5, budget=None):
  return train.StageTrainer(stage, DIMS, 1e-3, str(workdir / "checkpoints" / stage.name), seed=0,
                            epochs=epochs, patience=patience, budget=budget)


def _fit(trainer, train_split, validation):
  return trainer.fit(train_split, validation, log=lambda line: None)


def test_stage2_never_changes_the_frozen_strong_encoder(tmp_path):
  stage1, stage2 = _stages()
  before = [w.copy() for w in stage1.encoder.get_weights()]
  weak_before = [w.copy() for w in stage2.encoder.get_weights()]
  trainer = _trainer(stage2, tmp_path)
  assert not any(v is w for v in trainer.steps.variables for w in stage1.encoder.weights)
  _fit(trainer, _split(16), _split(8, seed=1))
  for old, new in zip(before, stage1.encoder.get_weights()):
    np.testing.assert_array_equal(old, new)
  assert any(not np.array_equal(old, new)
             for old, new in zip(weak_before, stage2.encoder.get_weights()))


def test_nan_loss_stops_with_the_step_and_term_and_keeps_the_checkpoint(tmp_path):
  stage1, stage2 = _stages()
  _fit(_trainer(stage1, tmp_path, epochs=1), _split(8), _split(4, seed=1))
  trainer = _trainer(stage2, tmp_path)
  with pytest.raises(train.TrainingDiverged, match=r"\[stage2\] loss term 'prediction' is nan "
                     r"at epoch 1, step 1"):
    _fit(trainer, _split(8, poison=True), _split(4, seed=1))
  # Stage 1's finished work is still there.
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "stage1" / "best"))


def test_early_stopping_restores_the_best_epoch(tmp_path):
  stage1, _ = _stages()
  trainer = _trainer(stage1, tmp_path, epochs=30, patience=2)
  validation = _split(8, seed=1)
  epochs = _fit(trainer, _split(8), validation)["epochs"]
  best_epoch = int(tf.train.latest_checkpoint(
      str(tmp_path / "checkpoints" / "stage1" / "best")).rsplit("-", 1)[1])
  assert epochs == 30 or epochs == best_epoch + 2
  # The weights left loaded are the best epoch's: their validation metric is the best value.
  best_value = float(trainer.state.best_value.numpy())
  assert trainer.evaluate(validation)["accuracy"] == pytest.approx(best_value)


def test_stop_after_steps_raises_after_exactly_that_many_steps(tmp_path):
  stage1, _ = _stages()
  budget = train.StepBudget(3)
  with pytest.raises(train.StopRequested, match="stopped after 3 training steps"):
    _fit(_trainer(stage1, tmp_path, budget=budget), _split(16), _split(4, seed=1))
  assert budget.steps == 3


def test_mixed_precision_keeps_losses_and_dcca_in_float32(tmp_path):
  import keras
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    _, stage2 = _stages()
    trainer = _trainer(stage2, tmp_path)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert stage2.encoder.get_layer("weak_bigru1").compute_dtype == "float16"
    batch = next(iter(_split(8).batches()))
    terms = trainer.steps.train_step(batch)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert set(terms) == {"prediction", "dcca", "mae", "total"}
  for value in terms.values():
    assert value.dtype == tf.float32 and np.isfinite(value.numpy())


def test_jit_compiled_step_matches_the_plain_one(tmp_path):
  moments = (np.zeros(DIMS["audio"]), np.ones(DIMS["audio"]))
  losses = []
  for jit_compile in (False, True):
    tf.keras.utils.set_random_seed(0)
    stage = train_step.Stage("stage1", "audio",
                        models.build_identity_encoder(DIMS["audio"], *moments, "weak"),
                        models.build_classifier(DIMS["audio"], "classification", "weak",
                                                dropout=0.0), "classification")
    trainer = train.StageTrainer(stage, DIMS, 1e-2, str(tmp_path / str(jit_compile)), seed=0,
                                 epochs=1, patience=1, jit_compile=jit_compile)
    losses.append([float(trainer.steps.train_step(batch)["total"])
                   for batch in _split(16).batches()])
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
