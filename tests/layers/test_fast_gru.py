"""FastGRU against keras.layers.GRU (outputs, gradients, masks, checkpoints) and NumPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stew_tf.layers import fast_gru
from stew_tf.layers import gru_recurrence
from stew_tf.layers.fast_gru import FastGRU

INPUT_DIM, UNITS, TIME = 5, 4, 7
LENGTHS = (7, 3, 5)  # right-padded to TIME


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(len(LENGTHS), TIME, INPUT_DIM)).astype("float32")
  mask = np.arange(TIME)[np.newaxis, :] < np.array(LENGTHS)[:, np.newaxis]
  return tf.constant(features), tf.constant(mask)


def _same_random_weights(reference, other, seed=1):
  """Builds both layers and gives them the same random weights (not the initial ones)."""
  for layer in (reference, other):
    layer.build((None, None, INPUT_DIM))
  rng = np.random.default_rng(seed)
  for variable in reference.weights:
    variable.assign(rng.normal(scale=0.5, size=variable.shape))
  other.set_weights(reference.get_weights())


def _outputs_and_gradients(layer, features, mask):
  """Outputs and the gradients of a weighted sum of them w.r.t. inputs and every weight."""
  with tf.GradientTape() as tape:
    tape.watch(features)
    outputs = layer(features, mask=mask)
    weights = np.linspace(-1.0, 1.0, outputs.shape.num_elements()).reshape(outputs.shape)
    loss = tf.reduce_sum(outputs * weights.astype("float32"))
  gradients = tape.gradient(loss, [features, *layer.trainable_weights])
  return outputs.numpy(), [g.numpy() for g in gradients]


def _assert_same(reference, fast, features, mask):
  expected, expected_grads = _outputs_and_gradients(reference, features, mask)
  actual, actual_grads = _outputs_and_gradients(fast, features, mask)
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
  # inputs, then kernel, recurrent kernel and bias of each direction
  assert len(actual_grads) == len(expected_grads) == 1 + len(reference.trainable_weights)
  for got, want in zip(actual_grads, expected_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_outputs_and_gradients_match_keras_gru_with_masks(go_backwards, zero_output_for_mask):
  options = dict(return_sequences=True, go_backwards=go_backwards,
                 zero_output_for_mask=zero_output_for_mask)
  reference, fast = keras.layers.GRU(UNITS, **options), FastGRU(UNITS, **options)
  _same_random_weights(reference, fast)
  _assert_same(reference, fast, *_inputs())


def test_bidirectional_outputs_and_gradients_match_keras_with_masks():
  reference = keras.layers.Bidirectional(keras.layers.GRU(UNITS, return_sequences=True))
  fast = keras.layers.Bidirectional(FastGRU(UNITS, return_sequences=True))
  _same_random_weights(reference, fast)
  _assert_same(reference, fast, *_inputs())


def _numpy_gru(features, mask, kernel, recurrent_kernel, bias):
  """Keras' reset_after GRU in float64 NumPy; masked steps keep the state."""
  sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
  state = np.zeros((features.shape[0], recurrent_kernel.shape[0]))
  states = []
  for t in range(features.shape[1]):
    x = features[:, t] @ kernel + bias[0]
    h = state @ recurrent_kernel + bias[1]
    x_z, x_r, x_h = np.split(x, 3, axis=-1)
    h_z, h_r, h_h = np.split(h, 3, axis=-1)
    update, reset = sigmoid(x_z + h_z), sigmoid(x_r + h_r)
    new_state = update * state + (1.0 - update) * np.tanh(x_h + reset * h_h)
    state = np.where(mask[:, t, np.newaxis], new_state, state)
    states.append(state)
  return np.stack(states, axis=1)


def test_bidirectional_matches_numpy_backward_pass_from_each_clips_last_real_step():
  layer = keras.layers.Bidirectional(FastGRU(UNITS, return_sequences=True))
  layer.build((None, None, INPUT_DIM))
  features, mask = _inputs()
  outputs = layer(features, mask=mask).numpy()
  x, m = features.numpy().astype(np.float64), mask.numpy()
  weights = [np.asarray(w, np.float64) for w in layer.weights]
  forward = _numpy_gru(x, m, *weights[:3])
  backward = np.zeros_like(forward)
  for row, length in enumerate(LENGTHS):  # each clip's real steps, last to first
    clip = x[row:row + 1, :length][:, ::-1]
    backward[row, :length] = _numpy_gru(clip, np.ones((1, length), bool), *weights[3:])[0, ::-1]
  expected = np.concatenate([forward, backward], -1) * m[..., np.newaxis]  # padded → zeros
  np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)


def test_cpu_path_runs_the_whole_sequence_recurrence(monkeypatch):
  calls = []
  recurrence = gru_recurrence.gru_recurrence
  monkeypatch.setattr(gru_recurrence, "gru_recurrence",
                      lambda *args: calls.append(1) or recurrence(*args))
  FastGRU(UNITS, return_sequences=True)(*_inputs()[:1])
  assert calls == [1]


def test_keras_loop_is_used_when_a_gpu_is_visible_or_dropout_is_active(monkeypatch):
  def fail(*args):
    raise AssertionError("the whole-sequence path must not run here")

  monkeypatch.setattr(gru_recurrence, "gru_recurrence", fail)
  features, mask = _inputs()
  FastGRU(UNITS, dropout=0.5, return_sequences=True)(features, mask=mask, training=True)
  monkeypatch.setattr(fast_gru, "cudnn_visible", lambda: True)
  FastGRU(UNITS, return_sequences=True)(features, mask=mask)


def _model(gru_class):
  features = keras.Input((None, INPUT_DIM))
  mask = keras.Input((None,), dtype="bool")
  x = keras.layers.Bidirectional(gru_class(UNITS, return_sequences=True, name="gru"),
                                 name="bigru")(features, mask=mask)
  return keras.Model([features, mask], x)


@pytest.mark.parametrize("writer, reader", [(keras.layers.GRU, FastGRU),
                                            (FastGRU, keras.layers.GRU)])
def test_a_checkpoint_written_by_one_loads_in_the_other(tmp_path, writer, reader):
  written, read = _model(writer), _model(reader)
  assert [v.path for v in written.weights] == [v.path for v in read.weights]
  path = tf.train.Checkpoint(model=written).write(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(model=read).read(path).assert_existing_objects_matched()
  written.save_weights(str(tmp_path / "model.weights.h5"))
  keras_file_read = _model(reader)
  keras_file_read.load_weights(str(tmp_path / "model.weights.h5"))
  features, mask = _inputs()
  expected = written([features, mask]).numpy()
  for model in (read, keras_file_read):
    np.testing.assert_allclose(model([features, mask]).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_get_config_round_trips():
  layer = FastGRU(UNITS, return_sequences=True, go_backwards=True, name="gru")
  config = layer.get_config()
  clone = FastGRU.from_config(config)
  assert isinstance(clone, FastGRU) and clone.get_config() == config
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert type(restored) is FastGRU and restored.get_config() == config


@pytest.mark.skipif(not tf.config.list_logical_devices("GPU"), reason="needs a GPU (cuDNN)")
def test_gpu_graph_takes_the_cudnn_kernel():
  model = _model(FastGRU)
  features, mask = _inputs()
  graph = tf.function(model).get_concrete_function([features, mask]).graph
  op_types = {op.type for op in graph.get_operations()}
  for function in graph.as_graph_def().library.function:
    op_types.update(node.op for node in function.node_def)
  assert any(t.startswith("CudnnRNN") for t in op_types), sorted(op_types)


def test_mixed_precision_matches_keras_gru_in_float16():
  options = dict(return_sequences=True, dtype="mixed_float16")
  reference, fast = keras.layers.GRU(UNITS, **options), FastGRU(UNITS, **options)
  _same_random_weights(reference, fast)
  features, mask = _inputs()
  expected, actual = reference(features, mask=mask), fast(features, mask=mask)
  assert actual.dtype == expected.dtype == tf.float16
  assert fast.cell.kernel.dtype == "float32"  # variables stay float32
  np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-2)
  gradients = []
  for layer in (reference, fast):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.cast(layer(features, mask=mask), tf.float32))
    gradients.append(tape.gradient(loss, layer.trainable_weights))
  for want, got in zip(*gradients):
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-2, atol=2e-2)
