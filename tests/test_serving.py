"""The TF Serving contract of the exported SavedModel.

Docker (and so the tensorflow/serving container) is not available on CI, so the REST bodies of
docs/serving.md are built, written with json.dumps, parsed back and fed through the loaded
`serving_default` signature the way TF Serving feeds its SignatureDef.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO_ROOT
from tests.helpers import export_random_predictor

DIM = 5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """A randomly initialised weak predictor and its SavedModel version folder (W/export/1)."""
  return export_random_predictor(tmp_path_factory.mktemp("work") / "export", DIM, seed=1)


@pytest.fixture(scope="module")
def signature(exported):
  loaded = tf.saved_model.load(exported[1])
  # The signature reads the loaded object's variables: keep it alive with the signature.
  signature = loaded.signatures["serving_default"]
  signature.loaded = loaded
  return signature


def row_body(features, mask):
  """TF Serving REST `:predict` request in the row format: one instance per clip."""
  return {"signature_name": "serving_default",
          "instances": [{"features": f.tolist(), "mask": m.tolist()}
                        for f, m in zip(features, mask)]}


def columnar_body(features, mask):
  """The same request in the columnar format: each input batched."""
  return {"signature_name": "serving_default",
          "inputs": {"features": features.tolist(), "mask": mask.tolist()}}


def serve(signature, body_text):
  """What TF Serving does with a REST body: parse, batch, cast to the signature's dtypes, run.

  Returns the response body text: {"predictions": ...} for rows, {"outputs": ...} for columns.
  """
  body = json.loads(body_text)
  assert body["signature_name"] == "serving_default"
  _, specs = signature.structured_input_signature
  if "instances" in body:
    inputs = {name: [instance[name] for instance in body["instances"]] for name in specs}
  else:
    inputs = body["inputs"]
  tensors = {name: tf.constant(np.array(inputs[name]), spec.dtype) for name, spec in specs.items()}
  scores = signature(**tensors)["scores"].numpy().tolist()
  return json.dumps({"predictions" if "instances" in body else "outputs": scores})


def _clips(lengths, time, seed):
  rng = np.random.default_rng(seed)
  mask = np.arange(time) < np.array(lengths)[:, None]
  features = (rng.normal(size=(len(lengths), time, DIM)) * mask[..., None]).astype(np.float32)
  return features, mask


def test_signature_has_dynamic_batch_and_time_and_the_documented_names(signature):
  args, specs = signature.structured_input_signature
  assert args == ()
  assert specs == {
      "features": tf.TensorSpec([None, None, DIM], tf.float32, name="features"),
      "mask": tf.TensorSpec([None, None], tf.bool, name="mask"),
  }
  outputs = signature.structured_outputs
  assert set(outputs) == {"scores"}
  assert outputs["scores"].dtype == tf.float32
  assert outputs["scores"].shape.as_list() == [None, None]


def test_row_format_body_for_one_clip(exported, signature):
  predictor, _ = exported
  features, mask = _clips([6], time=6, seed=0)
  text = json.dumps(row_body(features, mask))
  assert text.startswith('{"signature_name": "serving_default", "instances": [{"features": [[')
  assert '"mask": [true, true, true, true, true, true]}]}' in text
  body = json.loads(text)
  assert list(body) == ["signature_name", "instances"]
  assert len(body["instances"]) == 1
  assert list(body["instances"][0]) == ["features", "mask"]
  assert np.array(body["instances"][0]["features"]).shape == (6, DIM)
  # json.dumps writes each float32 exactly: the server sees the very same numbers.
  np.testing.assert_array_equal(np.array(body["instances"][0]["features"], np.float32), features[0])

  response = json.loads(serve(signature, text))
  expected = predictor([features, mask], training=False).numpy()
  assert list(response) == ["predictions"]
  np.testing.assert_allclose(response["predictions"], expected, rtol=1e-5, atol=1e-6)
  assert all(0.0 <= s <= 1.0 for s in response["predictions"][0])


@pytest.mark.parametrize("make_body", [row_body, columnar_body])
def test_padded_clips_in_one_request(exported, signature, make_body):
  predictor, _ = exported
  lengths = [7, 3, 5]
  features, mask = _clips(lengths, time=7, seed=1)
  response = json.loads(serve(signature, json.dumps(make_body(features, mask))))
  (scores,) = response.values()
  expected = predictor([features, mask], training=False).numpy()
  for index, (row, want, length) in enumerate(zip(scores, expected, lengths)):
    assert len(row) == 7  # padded positions come back too; clients keep the first `length`
    np.testing.assert_allclose(row[:length], want[:length], rtol=1e-5, atol=1e-6)
    # A clip scores the same alone, unpadded, as in a padded batch.
    alone = row_body(features[index:index + 1, :length], mask[index:index + 1, :length])
    (alone_scores,) = json.loads(serve(signature, json.dumps(alone)))["predictions"]
    np.testing.assert_allclose(alone_scores, want[:length], rtol=1e-5, atol=1e-6)


_LOAD_WITHOUT_STEW_TF = """
import importlib.util, json, sys
import tensorflow as tf
assert importlib.util.find_spec("stew_tf") is None, "stew_tf is importable here"
body = json.load(open(sys.argv[2]))
loaded = tf.saved_model.load(sys.argv[1])
signature = loaded.signatures["serving_default"]
instances = body["instances"]
scores = signature(features=tf.constant([i["features"] for i in instances], tf.float32),
                   mask=tf.constant([i["mask"] for i in instances], tf.bool))["scores"]
print(json.dumps({"predictions": scores.numpy().tolist(),
                  "stew_modules": sorted(m for m in sys.modules if m.startswith("stew"))}))
"""


def test_loading_needs_no_stew_tf_code(exported, tmp_path):
  predictor, path = exported
  assert not str(tmp_path).startswith(str(REPO_ROOT))
  features, mask = _clips([4], time=4, seed=2)
  (tmp_path / "request.json").write_text(json.dumps(row_body(features, mask)))
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_STEW_TF, path, "request.json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  response = json.loads(result.stdout.strip().splitlines()[-1])
  assert response["stew_modules"] == []
  np.testing.assert_allclose(response["predictions"],
                             predictor([features, mask], training=False).numpy(),
                             rtol=1e-5, atol=1e-6)
