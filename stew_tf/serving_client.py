"""A TF Serving REST client with the interface of predict.ServingModel: (features, mask) → scores.

It posts the predict API's row format (`instances`, one object per clip, docs/serving.md) to
`<model url>:predict` and reads `predictions`. It only ever contacts the URL it is given.
"""

import json
import urllib.error
import urllib.request

import numpy as np

from stew_tf.clip_files import InputError


class RestModel:
  """The model served at `url` (http://host:8501/v1/models/NAME[/versions/N])."""

  def __init__(self, url, timeout=120):
    self.url = url.rstrip("/")
    self.timeout = timeout

  def __call__(self, features, mask):
    body = {"signature_name": "serving_default",
            "instances": [{"features": clip.tolist(), "mask": clip_mask.tolist()}
                          for clip, clip_mask in zip(features, mask)]}
    request = urllib.request.Request(f"{self.url}:predict", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
      detail = error.read().decode(errors="replace").strip().splitlines()
      raise InputError(f"--server={self.url}: HTTP {error.code} ({detail[0] if detail else ''})"
                       "; expected TF Serving's predict API to answer") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
      reason = getattr(error, "reason", error)
      raise InputError(f"--server={self.url}: no answer ({reason}); expected a TF Serving REST "
                       "endpoint such as http://localhost:8501/v1/models/stew") from None
    if "predictions" not in answer:
      raise InputError(f"--server={self.url}: the answer has no 'predictions' "
                       f"({str(answer)[:200]}); expected TF Serving's predict API")
    return np.asarray(answer["predictions"], np.float32)
