"""Per-step time of the stage-1 train step with and without a fixed input signature.

Without one, tf.function traces again for every new padded length of a batch (MOSI-like clips
have 12-40 segments, so most batches have a new length); with one (what
train_step.StepFunctions does), it traces once. Prints JSON.
Usage, from the repository root: PYTHONPATH=. .venv/bin/python benchmarks/retracing.py [--epochs=2]
"""

import json
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from stew_tf import data
from stew_tf import models
from stew_tf import train
from stew_tf import train_step


def _time_epochs(step, split, epochs):
  times = []
  for epoch in range(epochs):
    for batch in split.batches(shuffle_seed=epoch):
      start = time.perf_counter()
      step(batch)
      times.append(time.perf_counter() - start)
  return times


def main(epochs=2):
  builder = data.make_builder("stew_synthetic", "sentiment", tempfile.mkdtemp())
  split = data.load_split(builder, "train", ["text"], "sentiment", 32)
  results = {}
  for variant in ("no_signature", "fixed_signature"):
    tf.keras.utils.set_random_seed(0)
    mean, variance = split.feature_moments("text")
    stage = train_step.Stage("stage1", "text",
                             models.build_encoder(100, 1, 0.3, mean, variance, "strong"),
                             models.build_classifier(models.LATENT_DIM, "classification",
                                                     "strong", 0.3),
                             "classification")
    trainer = train.StageTrainer(stage, {"text": 100}, 1e-3, tempfile.mkdtemp(), seed=0,
                                 epochs=1, patience=1)
    steps = trainer.steps
    step = (tf.function(steps._train_step) if variant == "no_signature"  # pylint: disable=protected-access
            else steps.train_step)
    times = _time_epochs(step, split, epochs)
    results[variant] = {
        "steps": len(times),
        "traces": step.experimental_get_tracing_count(),
        "mean_step_ms": 1000 * float(np.mean(times)),
        "median_step_ms": 1000 * float(np.median(times)),
        "total_s": float(np.sum(times)),
    }
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main(int(sys.argv[1].split("=")[1]) if len(sys.argv) > 1 else 2)
