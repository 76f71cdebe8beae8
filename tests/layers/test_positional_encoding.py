"""Tests of SinusoidalPositionEncoding."""

import keras
import numpy as np
import pytest

from stew_tf.layers.positional_encoding import SinusoidalPositionEncoding


def _reference_encoding(length, features, max_wavelength=10000):
  """PE[pos, 2i] = sin(pos / w^(2i/d)), PE[pos, 2i+1] = cos(pos / w^(2i/d)), loop by loop."""
  encoding = np.zeros((length, features))
  for pos in range(length):
    for i in range(0, features, 2):
      angle = pos / max_wavelength ** (i / features)
      encoding[pos, i] = np.sin(angle)
      if i + 1 < features:
        encoding[pos, i + 1] = np.cos(angle)
  return encoding


@pytest.mark.parametrize("features", [100, 7])
def test_adds_reference_encoding(features):
  inputs = np.random.default_rng(0).normal(size=(2, 13, features)).astype("float32")
  outputs = SinusoidalPositionEncoding()(inputs)
  np.testing.assert_allclose(outputs, inputs + _reference_encoding(13, features), atol=1e-5)


def test_max_wavelength_is_used():
  inputs = np.zeros((1, 9, 6), "float32")
  outputs = SinusoidalPositionEncoding(max_wavelength=50)(inputs)
  np.testing.assert_allclose(outputs[0], _reference_encoding(9, 6, 50), atol=1e-6)


def test_dynamic_length_in_functional_model():
  inputs = keras.Input(shape=(None, 100))
  model = keras.Model(inputs, SinusoidalPositionEncoding()(inputs))
  for length in (3, 75):
    zeros = np.zeros((2, length, 100), "float32")
    np.testing.assert_allclose(model(zeros)[1], _reference_encoding(length, 100), atol=1e-5)


def test_config_round_trip():
  layer = SinusoidalPositionEncoding(max_wavelength=123, name="positions")
  restored = SinusoidalPositionEncoding.from_config(layer.get_config())
  assert restored.max_wavelength == 123
  assert restored.name == "positions"
  inputs = np.random.default_rng(1).normal(size=(1, 5, 8)).astype("float32")
  np.testing.assert_array_equal(restored(inputs), layer(inputs))


def test_mask_passes_through():
  features = np.ones((2, 3, 4), "float32")
  features[0, 2] = 0.0
  outputs = SinusoidalPositionEncoding()(keras.layers.Masking()(features))
  np.testing.assert_array_equal(outputs._keras_mask, [[True, True, False], [True, True, True]])

  inputs = keras.Input(shape=(None, 4))
  symbolic_outputs = SinusoidalPositionEncoding()(keras.layers.Masking()(inputs))
  assert symbolic_outputs._keras_mask is not None


def test_mixed_float16_output_dtype():
  layer = SinusoidalPositionEncoding(dtype="mixed_float16")
  outputs = layer(np.zeros((1, 4, 6), "float32"))
  assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
  np.testing.assert_allclose(np.asarray(outputs[0], np.float32), _reference_encoding(4, 6),
                             atol=1e-3)
