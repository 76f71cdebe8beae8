"""The CM-StEW networks as Keras functional models (paper, Fig. 1 and Sec. IV-B).

Every sequence model takes `[features, mask]`: float32 [B, T, D] and bool [B, T] (True on real
segments, right-padded).
"""

import keras
from keras import layers

from stew_tf import tasks
from stew_tf.layers.fast_gru import FastGRU
from stew_tf.layers.positional_encoding import SinusoidalPositionEncoding
from stew_tf.layers.sequence_dropout import SequenceDropout
from stew_tf.layers.transformer_encoder import TransformerEncoder

LATENT_DIM = 100
NUM_HEADS = 2
FFN_DIM = 400
NUM_TRANSFORMER_LAYERS = 2
CLASSIFIER_UNITS = 300


def _sequence_inputs(dim, name):
  features = keras.Input(shape=(None, dim), dtype="float32", name=f"{name}_features")
  mask = keras.Input(shape=(None,), dtype="bool", name=f"{name}_mask")
  return features, mask


def _bi_gru_stack(x, mask, units, num_layers, dropout, name):
  for index in range(num_layers):
    # Default GRU arguments (tanh, sigmoid, reset_after, no recurrent dropout) keep the cuDNN
    # kernel available on a GPU (where FastGRU is Keras' GRU) and FastGRU's whole-sequence
    # products on CPU; dropout is applied between layers instead. Named "gru" so that variable
    # paths are those of Bidirectional(GRU(...)).
    x = layers.Bidirectional(FastGRU(units, return_sequences=True, name="gru"),
                             name=f"{name}_bigru{index + 1}")(x, mask=mask)
    if dropout:
      # Its random numbers are drawn for the mask's batch and time sizes, so they need not
      # wait for the Bi-GRU (see SequenceDropout).
      x = SequenceDropout(dropout, name=f"{name}_bigru{index + 1}_dropout")(x, mask)
  return x


def build_normalizer(mean, variance, name):
  """Standardises raw features with training-split moments; part of the exported model."""
  # float32 even under mixed precision: raw features (e.g. openSMILE) can exceed float16's range.
  return layers.Normalization(axis=-1, mean=mean, variance=variance, dtype="float32",
                              name=f"{name}_normalize")


def build_encoder(input_dim, gru_layers, dropout, mean, variance, name):
  """Φ^e: normalise → Bi-GRU × gru_layers (units = input_dim) → Dense(100) → positions →
  2 transformer encoder layers (2 heads, FFN 400)."""
  features, mask = _sequence_inputs(input_dim, name)
  x = build_normalizer(mean, variance, name)(features)
  x = _bi_gru_stack(x, mask, input_dim, gru_layers, dropout, name)
  x = layers.Dense(LATENT_DIM, name=f"{name}_project")(x)
  x = SinusoidalPositionEncoding(name=f"{name}_positions")(x)
  for index in range(NUM_TRANSFORMER_LAYERS):
    x = TransformerEncoder(intermediate_dim=FFN_DIM, num_heads=NUM_HEADS, dropout=dropout,
                           name=f"{name}_transformer{index + 1}")(x, padding_mask=mask)
  return keras.Model([features, mask], x, name=f"{name}_encoder")


def build_identity_encoder(input_dim, mean, variance, name):
  """For the classifier-only baseline: the 'latents' are the normalised raw features."""
  features, mask = _sequence_inputs(input_dim, name)
  x = build_normalizer(mean, variance, name)(features)
  return keras.Model([features, mask], x, name=f"{name}_identity_encoder")


def build_classifier(input_dim, task, name, dropout, label_range=None):
  """Γ^c: Dense(300, relu) → Dropout(dropout) → Dense(1, the task's activation), per time step.

  `task` names a row of stew_tf.tasks. A `label_range` (low, high) of labels that are values,
  not classes, maps the activation's range (tanh's [-1, 1]) linearly onto the labels' range, so
  that the model (and its export) answers on the labels' own scale.
  """
  task = tasks.get(task)
  latents = keras.Input(shape=(None, input_dim), name=f"{name}_latents")
  x = layers.Dense(CLASSIFIER_UNITS, activation="relu", name=f"{name}_hidden")(latents)
  x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
  # float32 output even under a mixed-precision policy: scores feed float32 losses.
  x = layers.Dense(1, activation=task.activation, dtype="float32", name=f"{name}_score")(x)
  scaling = task.label_scaling(label_range)
  if scaling is not None:
    scale, offset = scaling
    x = layers.Rescaling(scale, offset=offset, dtype="float32", name=f"{name}_label_range")(x)
  scores = layers.Reshape((-1,), name=f"{name}_scores")(x)
  return keras.Model(latents, scores, name=f"{name}_classifier")


def build_decoder(latent_dim, output_dim, units, gru_layers, name):
  """Φ^d: Bi-GRU stack → Dense(strong feature dim): translates weak latents to strong inputs."""
  latents = keras.Input(shape=(None, latent_dim), name=f"{name}_latents")
  mask = keras.Input(shape=(None,), dtype="bool", name=f"{name}_mask")
  x = _bi_gru_stack(latents, mask, units, gru_layers, 0.0, name)
  x = layers.Dense(output_dim, dtype="float32", name=f"{name}_reconstruction")(x)
  return keras.Model([latents, mask], x, name=f"{name}_decoder")


def build_predictor(encoder, classifier, name):
  """Encoder + classifier as one [features, mask] → scores model (what is evaluated/exported)."""
  features, mask = _sequence_inputs(encoder.inputs[0].shape[-1], name)
  scores = classifier(encoder([features, mask]))
  return keras.Model([features, mask], scores, name=f"{name}_predictor")
