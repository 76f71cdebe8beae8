"""Tests of the post-norm TransformerEncoder block."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stew_tf.layers.positional_encoding import SinusoidalPositionEncoding
from stew_tf.layers.transformer_encoder import TransformerEncoder

MODEL_DIM = 8
LENGTHS = (5, 2, 7)  # valid steps per row; right-padded to 7


def _padding_mask(lengths=LENGTHS, time=7):
  return np.arange(time)[np.newaxis, :] < np.array(lengths)[:, np.newaxis]


def _valid_features(seed=0, lengths=LENGTHS, time=7, dim=MODEL_DIM):
  """Random features at valid steps, zeros at padded steps."""
  features = np.random.default_rng(seed).normal(size=(len(lengths), time, dim))
  return (features * _padding_mask(lengths, time)[..., np.newaxis]).astype("float32")


def _with_junk(features, mask, scale=1e4, seed=1):
  junk = np.random.default_rng(seed).normal(scale=scale, size=features.shape)
  return np.where(mask[..., np.newaxis], features, junk).astype(features.dtype)


def _layer_norm(x, gamma, beta, epsilon):
  mean = x.mean(-1, keepdims=True)
  variance = x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def _reference_block(layer, inputs, mask):
  """One post-norm encoder block in float64 NumPy, with the layer's own weights."""
  w = {v.path.split("/", 1)[1]: np.asarray(v, np.float64) for v in layer.weights}
  key_dim = w["self_attention/query/kernel"].shape[-1]

  def project(name):
    return (np.einsum("btd,dhk->bthk", inputs, w[f"self_attention/{name}/kernel"])
            + w[f"self_attention/{name}/bias"])

  query, key, value = project("query"), project("key"), project("value")
  scores = np.einsum("bthk,bshk->bhts", query, key) / np.sqrt(key_dim)
  scores = np.where(mask[:, np.newaxis, np.newaxis, :], scores, -np.inf)
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  attended = np.einsum("bhts,bshk->bthk", weights, value)
  attended = (np.einsum("bthk,hkd->btd", attended, w["self_attention/attention_output/kernel"])
              + w["self_attention/attention_output/bias"])
  epsilon = layer.layer_norm_epsilon
  x = _layer_norm(inputs + attended, w["self_attention_layer_norm/gamma"],
                  w["self_attention_layer_norm/beta"], epsilon)
  hidden = np.maximum(x @ w["feedforward_intermediate_dense/kernel"]
                      + w["feedforward_intermediate_dense/bias"], 0.0)
  hidden = hidden @ w["feedforward_output_dense/kernel"] + w["feedforward_output_dense/bias"]
  return _layer_norm(x + hidden, w["feedforward_layer_norm/gamma"],
                     w["feedforward_layer_norm/beta"], epsilon)


def test_padded_steps_do_not_change_valid_outputs():
  layer = TransformerEncoder(intermediate_dim=16, num_heads=2)
  mask = _padding_mask()
  features = _valid_features()
  clean = np.asarray(layer(features, padding_mask=mask, training=False))
  junk = np.asarray(layer(_with_junk(features, mask), padding_mask=mask, training=False))
  np.testing.assert_allclose(junk[mask], clean[mask], atol=1e-6)
  # Each row equals the same row run alone without any padding.
  for row, length in enumerate(LENGTHS):
    alone = layer(features[row:row + 1, :length], training=False)
    np.testing.assert_allclose(alone[0], clean[row, :length], atol=1e-5)
  # Without the mask the junk does reach the valid steps: the test can fail.
  unmasked = np.asarray(layer(_with_junk(features, mask), training=False))
  assert np.abs(unmasked[mask] - clean[mask]).max() > 1e-2


def test_keras_mask_matches_padding_mask():
  layer = TransformerEncoder(intermediate_dim=16, num_heads=2, dropout=0.0)
  mask = _padding_mask()
  features = _valid_features()
  explicit = np.asarray(layer(features, padding_mask=mask))

  inputs = keras.Input(shape=(None, MODEL_DIM))
  outputs = layer(keras.layers.Masking()(inputs))
  assert outputs._keras_mask is not None  # carried on to later layers
  from_keras_mask = np.asarray(keras.Model(inputs, outputs)(features))
  np.testing.assert_allclose(from_keras_mask[mask], explicit[mask], atol=1e-6)


def test_matches_numpy_reference():
  layer = TransformerEncoder(intermediate_dim=16, num_heads=2, dropout=0.0)
  mask = _padding_mask()
  features = _valid_features()
  outputs = np.asarray(layer(features, padding_mask=mask))
  expected = _reference_block(layer, features.astype(np.float64), mask)
  np.testing.assert_allclose(outputs[mask], expected[mask], atol=1e-5)
  np.testing.assert_allclose(np.asarray(layer(features)),
                             _reference_block(layer, features, np.ones_like(mask)), atol=1e-5)


def test_config_round_trip():
  layer = TransformerEncoder(intermediate_dim=12, num_heads=4, dropout=0.2, activation="gelu",
                             layer_norm_epsilon=1e-6, name="encoder_block")
  features = _valid_features()
  outputs = layer(features, padding_mask=_padding_mask())
  config = layer.get_config()
  restored = TransformerEncoder.from_config(config)
  assert restored.get_config() == config
  restored.build(features.shape)
  restored.set_weights(layer.get_weights())
  np.testing.assert_allclose(restored(features, padding_mask=_padding_mask()), outputs,
                             atol=1e-6)


def test_keras_file_round_trip(tmp_path):
  features_input = keras.Input(shape=(None, MODEL_DIM))
  mask_input = keras.Input(shape=(None,), dtype="bool")
  positions = SinusoidalPositionEncoding()(features_input)
  outputs = TransformerEncoder(intermediate_dim=16)(positions, padding_mask=mask_input)
  model = keras.Model([features_input, mask_input], outputs)
  model.save(tmp_path / "model.keras")
  reloaded = keras.models.load_model(tmp_path / "model.keras")
  inputs = [_valid_features(), _padding_mask()]
  np.testing.assert_allclose(reloaded(inputs), model(inputs), atol=1e-6)


def test_dropout_only_in_training():
  layer = TransformerEncoder(intermediate_dim=16, num_heads=2, dropout=0.5)
  features = _valid_features(lengths=(7, 7, 7))
  inference = np.asarray(layer(features, training=False))
  np.testing.assert_array_equal(layer(features, training=False), inference)
  np.testing.assert_array_equal(layer(features), inference)
  trained = np.asarray(layer(features, training=True))
  assert np.abs(trained - inference).max() > 1e-3


def test_functional_model_with_dynamic_time():
  features_input = keras.Input(shape=(None, MODEL_DIM))
  mask_input = keras.Input(shape=(None,), dtype="bool")
  outputs = TransformerEncoder(intermediate_dim=16)(features_input, padding_mask=mask_input)
  model = keras.Model([features_input, mask_input], outputs)
  for lengths, time in (((3, 1), 4), ((9, 6, 2), 9)):
    mask = _padding_mask(lengths, time)
    assert model([_valid_features(lengths=lengths, time=time), mask]).shape == (
        len(lengths), time, MODEL_DIM)


def test_tf_function_and_saved_model(tmp_path):
  features_input = keras.Input(shape=(None, MODEL_DIM))
  mask_input = keras.Input(shape=(None,), dtype="bool")
  outputs = TransformerEncoder(intermediate_dim=16)(features_input, padding_mask=mask_input)
  model = keras.Model([features_input, mask_input], outputs)

  @tf.function(input_signature=[tf.TensorSpec([None, None, MODEL_DIM], tf.float32),
                                tf.TensorSpec([None, None], tf.bool)])
  def serve(features, mask):
    return model([features, mask], training=False)

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint("serve", serve)
  archive.write_out(str(tmp_path / "model"), verbose=False)
  reloaded = tf.saved_model.load(str(tmp_path / "model"))

  mask = _padding_mask()
  features = _valid_features()
  expected = np.asarray(model([features, mask], training=False))
  np.testing.assert_allclose(serve(features, mask), expected, atol=1e-6)
  np.testing.assert_allclose(reloaded.serve(features, mask)[mask], expected[mask], atol=1e-5)
  short_mask = _padding_mask((2, 1), 3)
  assert reloaded.serve(_valid_features(lengths=(2, 1), time=3), short_mask).shape == (
      2, 3, MODEL_DIM)


def test_mixed_float16():
  layer = TransformerEncoder(intermediate_dim=16, num_heads=2, dtype="mixed_float16")
  mask = _padding_mask()
  features = _valid_features()
  clean = layer(features, padding_mask=mask, training=False)
  assert keras.backend.standardize_dtype(clean.dtype) == "float16"
  assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)

  full_precision = TransformerEncoder(intermediate_dim=16, num_heads=2)
  full_precision.build(features.shape)
  full_precision.set_weights(layer.get_weights())
  expected = np.asarray(full_precision(features, padding_mask=mask, training=False))
  clean = np.asarray(clean, np.float32)
  np.testing.assert_allclose(clean[mask], expected[mask], atol=2e-2)
  # Junk beyond float16's range stays harmless.
  junk = np.asarray(layer(_with_junk(features, mask, scale=1e6), padding_mask=mask,
                          training=False), np.float32)
  np.testing.assert_array_equal(junk[mask], clean[mask])


def test_heads_must_divide_model_dim():
  with pytest.raises(ValueError, match="divisible"):
    TransformerEncoder(num_heads=3)(np.zeros((1, 2, MODEL_DIM), "float32"))
