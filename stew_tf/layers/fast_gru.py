"""A keras.layers.GRU whose CPU path computes whole-sequence products (see gru_recurrence)."""

import keras
import tensorflow as tf

from stew_tf.layers import gru_recurrence


def cudnn_visible():
  """Whether Keras' GRU can take the cuDNN kernel here (a GPU is visible to TensorFlow)."""
  return bool(tf.config.list_logical_devices("GPU"))


def fast_path_supported(gru, initial_state=None, training=False):
  """Whether `gru` can run on the whole-sequence path: Keras' cuDNN-eligible configuration
  (tanh, sigmoid, bias, reset_after, not unrolled), no state carried in, no active dropout."""
  cell = gru.cell
  dropout_active = training and (cell.dropout or cell.recurrent_dropout)
  return (cell.activation is keras.activations.tanh
          and cell.recurrent_activation is keras.activations.sigmoid
          and cell.use_bias and cell.reset_after and not gru.unroll and not gru.stateful
          and initial_state is None and not dropout_active)


def project(inputs, kernel, bias):
  """[T, B, D] @ [D, n] + bias as one 2-D matrix product over every step (not T small ones)."""
  shape = tf.shape(inputs)
  flat = tf.matmul(tf.reshape(inputs, [-1, shape[-1]]), kernel) + bias
  return tf.reshape(flat, tf.concat([shape[:-1], tf.shape(kernel)[-1:]], 0))


def time_major_mask(mask, sequences, dtype):
  """[B, T] bool mask (or None) → [T, B, 1] floats."""
  if mask is None:
    mask = tf.ones(tf.shape(sequences)[:2], tf.bool)
  return tf.transpose(tf.cast(mask, dtype))[..., tf.newaxis]


@keras.saving.register_keras_serializable(package="stew_tf")
class FastGRU(keras.layers.GRU):
  """`keras.layers.GRU` with a faster CPU path; same arguments, variables and outputs.

  The layer is a `keras.layers.GRU` (the same `cell` with `kernel`, `recurrent_kernel` and the
  [2, 3U] `bias` of reset_after=True), so weights, Keras weight files and TensorFlow checkpoints
  are interchangeable with it. When a GPU is visible it is exactly Keras' GRU, which takes the
  cuDNN kernel (default arguments and right-padded masks). Otherwise, for Keras' cuDNN-eligible
  configuration, the input products of all time steps are one matrix product before the loop
  and the gradient is computed by `gru_recurrence` as whole-sequence products; any other
  configuration (e.g. active dropout, an initial state) runs Keras' own loop.

  Masked steps behave as in Keras: they keep the state, and their output is the previous output,
  or zeros with `zero_output_for_mask` (what `Bidirectional` sets); with `go_backwards` the
  reversed sequence (mask included) is processed, so a right-padded clip's backward pass starts
  at its last real step.
  """

  def call(self, sequences, initial_state=None, mask=None, training=False):
    if cudnn_visible() or not fast_path_supported(self, initial_state, training):
      return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
    dtype = self.compute_dtype
    sequences = tf.cast(sequences, dtype)
    kernel = tf.cast(self.cell.kernel, dtype)
    bias = tf.cast(self.cell.bias, dtype)  # [2, 3U]: input bias, recurrent bias
    inputs = tf.transpose(sequences, [1, 0, 2])  # [T, B, D]: the loop reads one step at a time
    masks = time_major_mask(mask, sequences, dtype)
    if self.go_backwards:
      inputs, masks = tf.reverse(inputs, [0]), tf.reverse(masks, [0])
    projections = project(inputs, kernel, bias[0])
    states = gru_recurrence.gru_recurrence(
        projections, masks, tf.cast(self.cell.recurrent_kernel, dtype), bias[1:])
    outputs = states * masks if self.zero_output_for_mask else states
    last_state = states[-1]
    output = tf.transpose(outputs, [1, 0, 2]) if self.return_sequences else outputs[-1]
    if self.return_state:
      return output, last_state
    return output
