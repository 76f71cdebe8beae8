"""Stage 2's step time with one, two and three teachers, on the MOSI shape (stew_tf.bench's batch).

Each step is the real traced step (train_step.StepFunctions) with the teachers' latents in the
batch, as training runs it: the weak audio encoder + classifier, and per teacher a decoder
(2 x 250-unit Bi-GRU), its MAE and a DCCA term. The teachers are text and video; CMU-MOSI has no
third modality besides the weak one, so the third teacher is a second 100-d text teacher (its
cost is that of any teacher: a decoder and a DCCA term; only the decoder's last Dense layer
depends on the strong features' size). The variants alternate round by round; medians in ms.
Usage, from the repository root:
  PYTHONPATH=. .venv/bin/python benchmarks/several_teachers.py [--rounds=10] [--steps=3]
"""

import argparse
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from stew_tf import bench
from stew_tf import config as config_lib
from stew_tf import data
from stew_tf import experiment
from stew_tf import models
from stew_tf import train_step

SHAPE = bench.SHAPES["mosi"]
TEACHERS = ("text", "video", "text_2")  # text_2: a second text teacher (see above)


def _dims():
  dims = data.get_spec(SHAPE.dataset).modalities
  return {"text": dims["text"], "video": dims["video"], "text_2": dims["text"],
          SHAPE.weak: dims[SHAPE.weak]}


def _batch(dims, rng):
  """bench.random_batch's batch plus every teacher's features and latents."""
  batch = bench.random_batch(SHAPE)
  mask = batch["mask"].numpy()[..., None]
  features = {m: tf.constant(rng.normal(size=(*mask.shape[:2], d)) * mask, tf.float32)
              for m, d in dims.items()}
  latents = {m: tf.constant(rng.normal(size=(*mask.shape[:2], models.LATENT_DIM)) * mask,
                            tf.float32) for m in TEACHERS}
  return {**batch, "features": features, data.TEACHER_LATENTS: latents}


def _step(count, dims):
  """The traced stage-2 step of the default cm_stew settings with the first `count` teachers."""
  keras.utils.set_random_seed(0)
  unit = (np.zeros(dims[SHAPE.weak]), np.ones(dims[SHAPE.weak]))
  strong = []
  for modality in TEACHERS[:count]:
    moments = (np.zeros(dims[modality]), np.ones(dims[modality]))
    normalizer = models.build_normalizer(*moments, f"strong_{modality}")
    normalizer.build((None, None, dims[modality]))
    strong.append(train_step.StrongTerms(
        modality, teacher=models.build_encoder(dims[modality], 1, 0.3, *moments, modality),
        decoder=models.build_decoder(models.LATENT_DIM, dims[modality], 250, 2,
                                     f"weak_{modality}"),
        normalizer=normalizer, alpha=0.1, beta=1.0))
  stage = train_step.Stage(
      "stage2", SHAPE.weak, models.build_encoder(dims[SHAPE.weak], 2, 0.3, *unit, "weak"),
      models.build_classifier(models.LATENT_DIM, "classification", "weak", 0.3),
      "classification", alignment=True, translation=True, strong=tuple(strong))
  steps = train_step.StepFunctions(stage, {**{m: dims[m] for m in TEACHERS[:count]},
                                           SHAPE.weak: dims[SHAPE.weak]},
                                   train_step.make_optimizer(1e-4),
                                   teacher_latents_in_batch=True)
  return steps.train_step


def main(rounds, steps, warmup_steps=2):
  experiment.set_threads(config_lib.default_intra_op_threads())  # as stew_tf.main's default
  tf.config.experimental.enable_op_determinism()
  dims = _dims()
  full = _batch(dims, np.random.default_rng(0))
  calls = {}
  for count in (1, 2, 3):
    kept = TEACHERS[:count]
    batch = {**full, "features": {m: full["features"][m] for m in (*kept, SHAPE.weak)},
             data.TEACHER_LATENTS: {m: full[data.TEACHER_LATENTS][m] for m in kept}}
    step = _step(count, dims)
    calls[count] = (lambda step, batch: lambda: step(batch))(step, batch)
  load_before = os.getloadavg()
  seconds = {count: [] for count in calls}
  start = time.time()
  for round_index in range(rounds):
    for count, call in calls.items():
      warmup = warmup_steps if round_index == 0 else 0
      seconds[count] += bench._time_calls(  # pylint: disable=protected-access
          call, warmup, steps, float("inf"))
  return {"device": bench.device_info(), "rounds": rounds, "steps_per_round": steps,
          "load_average_before": load_before, "load_average_after": os.getloadavg(),
          "wall_s": time.time() - start,
          "median_step_ms": {f"{count}_teachers": float(np.median(s)) * 1000.0
                             for count, s in seconds.items()},
          "p90_step_ms": {f"{count}_teachers": float(np.percentile(s, 90)) * 1000.0
                          for count, s in seconds.items()}}


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--steps", type=int, default=3)
  arguments = parser.parse_args()
  print(json.dumps(main(arguments.rounds, arguments.steps), indent=2))
