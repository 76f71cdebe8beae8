"""Tests of SequenceDropout."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stew_tf.layers.sequence_dropout import SequenceDropout

RATE = 0.3


def _inputs(batch=4, time=7, channels=10):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(batch, time, channels)).astype("float32"),
          np.ones((batch, time), bool))


def test_same_numbers_as_keras_dropout_with_the_same_seed():
  x, mask = _inputs()
  keras_dropout, layer = keras.layers.Dropout(RATE, seed=5), SequenceDropout(RATE, seed=5)
  for _ in range(3):  # the seed generator advances the same way call after call
    expected = keras_dropout(x, training=True).numpy()
    outputs = layer(x, mask, training=True).numpy()
    np.testing.assert_array_equal(outputs, expected)
    # Every element is dropped or scaled by 1 / (1 - rate); some of each.
    dropped = outputs == 0
    np.testing.assert_allclose(outputs[~dropped], x[~dropped] / (1 - RATE), rtol=1e-6)
    assert 0 < dropped.mean() < 1


def test_identity_when_not_training():
  x, mask = _inputs()
  np.testing.assert_array_equal(SequenceDropout(RATE)(x, mask), x)
  np.testing.assert_array_equal(SequenceDropout(0.0)(x, mask, training=True), x)


def _ancestors(tensor):
  seen, stack = set(), [tensor.op]
  while stack:
    op = stack.pop()
    for parent in [t.op for t in op.inputs] + list(op.control_inputs):
      if parent not in seen:
        seen.add(parent)
        stack.append(parent)
  return seen


def test_random_numbers_do_not_wait_for_the_inputs():
  """The point of the layer: in the traced graph the draw depends on `like`, not `inputs`."""
  layer = SequenceDropout(RATE, seed=1)
  function = tf.function(lambda x, like: layer(x, like, training=True))
  graph = function.get_concrete_function(
      tf.TensorSpec([None, None, 10], name="inputs"),
      tf.TensorSpec([None, None], tf.bool, name="like")).graph
  draws = [op for op in graph.get_operations() if op.type == "StatelessRandomUniformV2"]
  assert len(draws) == 1
  placeholders = {op.name for op in _ancestors(draws[0].outputs[0]) if op.type == "Placeholder"}
  assert "like" in placeholders and "inputs" not in placeholders
  # Keras' Dropout, by contrast, draws for the inputs' own shape.
  keras_dropout = keras.layers.Dropout(RATE, seed=1)
  graph = tf.function(lambda x: keras_dropout(x, training=True)).get_concrete_function(
      tf.TensorSpec([None, None, 10], name="inputs")).graph
  draw = [op for op in graph.get_operations() if op.type == "StatelessRandomUniformV2"][0]
  assert "inputs" in {op.name for op in _ancestors(draw.outputs[0]) if op.type == "Placeholder"}


def test_keras_mask_passes_through():
  x = np.ones((2, 6, 5), "float32")
  mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
  sequences = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True))(x, mask=mask)
  outputs = SequenceDropout(RATE)(sequences, mask, training=True)
  assert outputs.shape == (2, 6, 6)
  np.testing.assert_array_equal(outputs._keras_mask, mask)


def test_in_a_functional_model():
  features = keras.Input((None, 5))
  mask = keras.Input((None,), dtype="bool")
  outputs = SequenceDropout(RATE, seed=2)(features, mask)
  model = keras.Model([features, mask], outputs)
  x = np.ones((2, 6, 5), "float32")
  dropped = model([x, np.ones((2, 6), bool)], training=True).numpy() == 0
  assert 0 < dropped.mean() < 1
  np.testing.assert_array_equal(model([x, np.ones((2, 6), bool)]), x)


def test_config_round_trip():
  layer = SequenceDropout(RATE, seed=3, name="drop")
  assert SequenceDropout.from_config(layer.get_config()).get_config() == layer.get_config()


def test_noise_shape_is_rejected():
  with pytest.raises(ValueError, match="noise_shape"):
    SequenceDropout(RATE, noise_shape=(None, 1, None))
