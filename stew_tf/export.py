"""Exports the weak-modality predictor as a TF Serving SavedModel.

Signature `serving_default`: inputs `features` (float32 [batch, time, D]) and `mask`
(bool [batch, time], True on real segments, right-padded); output `scores` (float32 [batch, time]:
the positive-class probability, or the regressed value).
"""

import os

import keras
import tensorflow as tf

SERVING_VERSION = "1"  # TF Serving loads numbered version folders under the model base path.


def export_predictor(predictor, export_base_dir, version=SERVING_VERSION):
  """Writes `predictor` ([features, mask] → scores) to `<export_base_dir>/<version>/`."""
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
  return path
