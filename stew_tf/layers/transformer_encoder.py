"""One post-norm transformer encoder block (paper, Fig. 1; Vaswani et al., 2017)."""

import keras
from keras import ops

from stew_tf.layers.sequence_dropout import SequenceDropout


@keras.saving.register_keras_serializable(package="stew_tf")
class TransformerEncoder(keras.layers.Layer):
  """Self-attention and feed-forward sublayers, each with a residual and a LayerNorm after it.

  With `x` the [batch, time, d_model] inputs:

    x   = LayerNorm(x + Dropout(MultiHeadAttention(x, x)))
    out = LayerNorm(x + Dropout(Dense(d_model)(Dropout(Dense(intermediate_dim, activation)(x)))))

  which is also PyTorch's `nn.TransformerEncoderLayer` default (`norm_first=False`). Dropout
  acts on the attention weights, after the first feed-forward dense layer and on both residual
  branches. d_model is the inputs' last dimension; every head has d_model // num_heads units.
  The three dropouts outside the attention draw their random numbers for the inputs' batch and
  time sizes (`SequenceDropout`), so TensorFlow may draw them before their own inputs exist.

  Padded time steps (False in `padding_mask`, or in the Keras mask of `inputs` when no
  `padding_mask` is given) are excluded as attention keys, so that whatever they hold never
  changes the outputs at valid steps. Outputs at padded steps are meaningless. The Keras mask
  of `inputs`, if any, is carried on to the outputs.

  Args:
    intermediate_dim: Units of the first feed-forward dense layer.
    num_heads: Number of attention heads; must divide d_model.
    dropout: Dropout rate (attention weights, feed-forward and residual branches).
    activation: Activation of the first feed-forward dense layer.
    layer_norm_epsilon: Epsilon of both layer normalisations.
    **kwargs: Passed to `keras.layers.Layer` (`name`, `dtype`, ...).
  """

  def __init__(self, intermediate_dim=400, num_heads=2, dropout=0.1, activation="relu",
               layer_norm_epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    self.intermediate_dim = intermediate_dim
    self.num_heads = num_heads
    self.dropout = dropout
    self.activation = keras.activations.get(activation)
    self.layer_norm_epsilon = layer_norm_epsilon
    self.supports_masking = True

  def build(self, inputs_shape):
    model_dim = inputs_shape[-1]
    if model_dim is None or model_dim % self.num_heads:
      raise ValueError(f"The inputs' last dimension ({model_dim}) must be known and divisible "
                       f"by num_heads ({self.num_heads}).")
    self._self_attention_layer = keras.layers.MultiHeadAttention(
        num_heads=self.num_heads, key_dim=model_dim // self.num_heads, dropout=self.dropout,
        dtype=self.dtype_policy, name="self_attention")
    self._self_attention_layer.build(query_shape=inputs_shape, value_shape=inputs_shape,
                                     key_shape=inputs_shape)
    self._self_attention_dropout = SequenceDropout(
        self.dropout, dtype=self.dtype_policy, name="self_attention_dropout")
    self._self_attention_layer_norm = keras.layers.LayerNormalization(
        epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy,
        name="self_attention_layer_norm")
    self._self_attention_layer_norm.build(inputs_shape)

    self._feedforward_intermediate_dense = keras.layers.Dense(
        self.intermediate_dim, activation=self.activation, dtype=self.dtype_policy,
        name="feedforward_intermediate_dense")
    self._feedforward_intermediate_dense.build(inputs_shape)
    self._feedforward_intermediate_dropout = SequenceDropout(
        self.dropout, dtype=self.dtype_policy, name="feedforward_intermediate_dropout")
    self._feedforward_output_dense = keras.layers.Dense(
        model_dim, dtype=self.dtype_policy, name="feedforward_output_dense")
    self._feedforward_output_dense.build((*inputs_shape[:-1], self.intermediate_dim))
    self._feedforward_output_dropout = SequenceDropout(
        self.dropout, dtype=self.dtype_policy, name="feedforward_output_dropout")
    self._feedforward_layer_norm = keras.layers.LayerNormalization(
        epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="feedforward_layer_norm")
    self._feedforward_layer_norm.build(inputs_shape)
    self.built = True

  def call(self, inputs, padding_mask=None, mask=None, training=None):
    """Runs the block.

    Args:
      inputs: [batch, time, d_model] sequence.
      padding_mask: Optional [batch, time] bool, True on valid steps. Defaults to `mask`.
      mask: The Keras mask of `inputs`, filled in by Keras; used when `padding_mask` is None.
      training: Whether dropout is active.

    Returns:
      The [batch, time, d_model] outputs.
    """
    if padding_mask is None:
      padding_mask = mask
    x = inputs
    attention_mask = None
    keys = x
    if padding_mask is not None:
      padding_mask = ops.cast(padding_mask, "bool")
      # [batch, 1, keys]: every query ignores the padded keys.
      attention_mask = ops.expand_dims(padding_mask, 1)
      # Zeroed so that even junk that overflows in the projections cannot leak through
      # (0 * inf would be NaN).
      keys = ops.where(ops.expand_dims(padding_mask, -1), x, ops.zeros_like(x))
    attended = self._self_attention_layer(query=x, value=keys, key=keys,
                                          attention_mask=attention_mask, training=training)
    x = self._self_attention_layer_norm(
        x + self._self_attention_dropout(attended, inputs, training=training))

    hidden = self._feedforward_intermediate_dense(x)
    hidden = self._feedforward_intermediate_dropout(hidden, inputs, training=training)
    hidden = self._feedforward_output_dense(hidden)
    return self._feedforward_layer_norm(
        x + self._feedforward_output_dropout(hidden, inputs, training=training))

  def compute_output_shape(self, inputs_shape):
    return inputs_shape

  def get_config(self):
    config = super().get_config()
    config.update({
        "intermediate_dim": self.intermediate_dim,
        "num_heads": self.num_heads,
        "dropout": self.dropout,
        "activation": keras.activations.serialize(self.activation),
        "layer_norm_epsilon": self.layer_norm_epsilon,
    })
    return config
