"""Dropout on a [batch, time, features] sequence whose random numbers need not wait for it."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="stew_tf")
class SequenceDropout(keras.layers.Dropout):
  """`keras.layers.Dropout` for a [B, T, C] sequence that takes B and T from `like`.

  Keras' Dropout draws its random numbers for `tf.shape(inputs)`, so TensorFlow can only start
  drawing them once `inputs` exists: after a Bi-GRU, one CPU then draws numbers while the other
  waits (measured: docs/performance.md, "Levers measured"). Here B and T come from `like`, any
  tensor of the same batch and time sizes that exists earlier (the model's mask input), and C
  from the static shape of `inputs`, so the numbers can be drawn while the Bi-GRU runs. The
  numbers are the same as Keras' Dropout draws with the same seed (the same stateless draw for
  the same shape), and the mask of `inputs` passes through.

  Args:
    rate, seed: as `keras.layers.Dropout` (`noise_shape` is not supported).
    **kwargs: Passed to `keras.layers.Dropout` (`name`, `dtype`, ...).
  """

  def __init__(self, rate, seed=None, **kwargs):
    if kwargs.get("noise_shape") is not None:
      raise ValueError("SequenceDropout draws one number per element; noise_shape is not "
                       "supported")
    super().__init__(rate, seed=seed, **kwargs)

  def call(self, inputs, like, training=False):
    if not training or not self.rate:
      return inputs
    channels = inputs.shape[-1]
    if inputs.shape.rank != 3 or channels is None:
      raise ValueError(f"SequenceDropout expects [batch, time, features] with known features; "
                       f"got {inputs.shape}")
    batch_and_time = tf.unstack(tf.shape(like)[:2])
    return keras.random.dropout(inputs, self.rate, noise_shape=[*batch_and_time, channels],
                                seed=self.seed_generator)

  def compute_output_shape(self, inputs_shape, like_shape):
    return inputs_shape
