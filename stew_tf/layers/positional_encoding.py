"""Sinusoidal position encoding (Vaswani et al., 2017), added to the encoder's latents."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="stew_tf")
class SinusoidalPositionEncoding(keras.layers.Layer):
  """Adds fixed sinusoidal position encodings to a [batch, time, features] sequence.

  For position `pos` and feature pair `(2i, 2i + 1)`:

    PE[pos, 2i]     = sin(pos / max_wavelength ** (2i / features))
    PE[pos, 2i + 1] = cos(pos / max_wavelength ** (2i / features))

  The encoding is computed for the dynamic time length of each call, so the layer works with
  `keras.Input(shape=(None, features))`. It has no weights, and the Keras mask of the inputs
  passes through unchanged.

  Args:
    max_wavelength: The longest wavelength of the sinusoids.
    **kwargs: Passed to `keras.layers.Layer` (`name`, `dtype`, ...).
  """

  def __init__(self, max_wavelength=10000, **kwargs):
    super().__init__(**kwargs)
    self.max_wavelength = max_wavelength
    self.supports_masking = True

  def call(self, inputs):
    shape = ops.shape(inputs)
    length, features = shape[-2], shape[-1]
    positions = ops.cast(ops.arange(length), "float32")
    feature_index = ops.arange(features)
    # Both members of a (sin, cos) pair share the frequency of the even index.
    exponents = ops.cast(feature_index - feature_index % 2, "float32") / ops.cast(
        features, "float32")
    inverse_wavelengths = ops.power(ops.cast(self.max_wavelength, "float32"), -exponents)
    angles = ops.expand_dims(positions, -1) * ops.expand_dims(inverse_wavelengths, 0)
    is_even = ops.expand_dims(feature_index % 2 == 0, 0)
    encoding = ops.where(is_even, ops.sin(angles), ops.cos(angles))
    # Angles reach max length in radians: computed in float32, cast only for the sum.
    return inputs + ops.cast(encoding, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({"max_wavelength": self.max_wavelength})
    return config
