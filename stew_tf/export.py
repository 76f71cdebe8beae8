"""Exports the weak-modality predictor as a TF Serving SavedModel.

Signature `serving_default`: inputs `features` (float32 [batch, time, D]) and `mask`
(bool [batch, time], True on real segments, right-padded); output `scores` (float32 [batch, time]:
the positive-class probability, or the regressed value). A model of audio recordings also gets
its feature recipe beside saved_model.pb, in assets.extra/feature_recipe.json
(stew_tf.audio_features), which stew_tf.predict --audio applies to new recordings.
"""

import os

import keras
import tensorflow as tf

from stew_tf import audio_features

SERVING_VERSION = "1"  # TF Serving loads numbered version folders under the model base path.


def export_predictor(predictor, export_base_dir, version=SERVING_VERSION, feature_recipe=None):
  """Writes `predictor` ([features, mask] → scores) to `<export_base_dir>/<version>/`, and
  `feature_recipe` (an audio_features.Recipe, if any) beside it."""
  feature_dim = predictor.inputs[0].shape[-1]
  archive = keras.export.ExportArchive()
  archive.track(predictor)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, feature_dim], tf.float32, name="features"),
      tf.TensorSpec([None, None], tf.bool, name="mask"),
  ])
  def serve(features, mask):
    return {"scores": predictor([features, mask], training=False)}

  archive.add_endpoint("serving_default", serve)
  path = os.path.join(export_base_dir, version)
  archive.write_out(path, verbose=False)
  if feature_recipe:
    audio_features.write_recipe(path, feature_recipe)
  return path
