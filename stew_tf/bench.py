"""Training and serving speed of CM-StEW on random batches of the paper's shapes.

python -m stew_tf.bench [--shapes=mosi,recola] [--steps=20] [--output=FILE]

Prints one JSON object: the device, package versions and, per shape, the stage-1 and stage-2
training throughput of the real `train.StageTrainer` train step on one random batch (warm-up steps
excluded; segments/s counts real, unpadded segments), how many times that step was traced, the
latency of a 1-clip call and the throughput of a full-batch call to the exported SavedModel, and
the process's peak resident memory. Stage 2 takes the frozen teacher's latents from the batch,
as training does. `--ab_rounds=N` instead times stage 2's step with the teacher in the step
against the step with cached latents, alternately (teacher_latents_ab).
"""

import dataclasses
import datetime
import functools
import json
import os
import platform
import resource
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf

from stew_tf import cli_flags
from stew_tf import config as config_lib
from stew_tf import data
from stew_tf import experiment
from stew_tf import export
from stew_tf import models
from stew_tf import paper
from stew_tf import tasks
from stew_tf import train


@dataclasses.dataclass(frozen=True)
class Shape:
  """A benchmark batch: a dataset's modalities, clip count and lengths."""
  dataset: str  # a key of data.DATASETS: gives the feature dimensions and the task
  label: str
  strong: str
  weak: str
  clips: int
  time: int  # padded length of every batch
  min_length: int  # clip lengths are drawn from [min_length, time]


SHAPES = {
    "mosi": Shape("mosi", "sentiment", "text", "audio", clips=paper.BATCH_SIZE, time=63,
                  min_length=12),
    "recola": Shape("recola", "arousal", "audio", "video_geometric", clips=paper.BATCH_SIZE,
                    time=75, min_length=75),
}


def config_of(shape, workdir):
  """The default cm_stew configuration of `shape` (the paper's architecture: Sec. IV-B), parsed
  as stew_tf.main would parse it."""
  return cli_flags.parse([
      "bench", f"--dataset={shape.dataset}", f"--label={shape.label}", f"--strong={shape.strong}",
      f"--weak={shape.weak}", "--method=cm_stew", f"--batch_size={shape.clips}", "--epochs=1",
      f"--workdir={workdir}"])


def random_batch(shape, seed=0):
  """A training batch as data.Split.batches gives it, of random values, padded to shape.time."""
  spec = data.get_spec(shape.dataset)
  rng = np.random.default_rng(seed)
  lengths = rng.integers(shape.min_length, shape.time + 1, size=shape.clips)
  mask = np.arange(shape.time) < lengths[:, None]
  features = {}
  for modality in (shape.strong, shape.weak):
    values = rng.normal(size=(shape.clips, shape.time, spec.modalities[modality]))
    features[modality] = tf.constant(values * mask[..., None], tf.float32)
  labels = tasks.get(spec.task_of(shape.label)).random_labels(rng, mask.shape)
  return {"features": features, "labels": tf.constant(labels * mask, tf.float32),
          "mask": tf.constant(mask)}


def split_of(batch, modalities):
  """A data.Split holding the batch's clips (build_stages reads feature moments from it)."""
  lengths = batch["mask"].numpy().sum(axis=1)
  examples = [{"features": {m: batch["features"][m][i, :n].numpy() for m in modalities},
               "labels": batch["labels"][i, :n].numpy(), "length": n}
              for i, n in enumerate(lengths)]
  signature = {"features": {m: tf.TensorSpec([None, d], tf.float32)
                            for m, d in modalities.items()},
               "labels": tf.TensorSpec([None], tf.float32),
               "length": tf.TensorSpec([], tf.int64)}
  dataset = tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=signature)
  return data.Split(dataset, len(examples), tuple(modalities), len(examples))


def _millis(seconds):
  seconds = np.asarray(seconds) * 1000.0
  return {"mean": float(seconds.mean()), "p50": float(np.percentile(seconds, 50)),
          "p90": float(np.percentile(seconds, 90))}


def _time_calls(call, warmup, calls, max_seconds):
  """Seconds of each timed call of `call`, after `warmup` untimed ones.

  Stops after `calls` timed calls, or earlier once `max_seconds` are spent on at least 3, so
  that the slow shapes on a small CPU keep the whole run short.
  """
  for _ in range(warmup):
    call()
  seconds = []
  while len(seconds) < calls and (len(seconds) < 3 or sum(seconds) < max_seconds):
    start = time.perf_counter()
    call()
    seconds.append(time.perf_counter() - start)
  return seconds


def bench_training(trainer, batch, steps, warmup_steps, max_seconds):
  """Throughput of the trainer's train step on one batch, as the epoch loop runs it."""
  train_step = trainer.steps.train_step

  def step():
    train_step(batch)

  seconds = _time_calls(step, warmup_steps, steps, max_seconds)
  mean = float(np.mean(seconds))
  mask = batch["mask"].numpy()
  return {
      "clips_per_s": len(mask) / mean,
      "segments_per_s": int(mask.sum()) / mean,  # real segments: padding is not work done
      "step_ms": _millis(seconds),
      "timed_steps": len(seconds),
      "warmup_steps": warmup_steps,
      "traces": int(train_step.experimental_get_tracing_count()),
  }


def bench_serving(export_dir, batch, modality, calls, max_seconds):
  """Latency of a 1-clip request and throughput of a full-batch request to the SavedModel."""
  loaded = tf.saved_model.load(export_dir)
  signature = loaded.signatures["serving_default"]
  features, mask = batch["features"][modality], batch["mask"]
  clips = int(mask.shape[0])

  def request(size):
    return lambda: signature(features=features[:size], mask=mask[:size])["scores"].numpy()

  single = _time_calls(request(1), 3, calls, max_seconds)
  full = _time_calls(request(clips), 2, calls, max_seconds)
  return {
      "latency_1_clip_ms": _millis(single),
      "timed_1_clip_calls": len(single),
      "batch_clips": clips,
      "batch_ms": _millis(full),
      "batch_clips_per_s": clips / float(np.mean(full)),
      "timed_batch_calls": len(full),
  }


def stage_trainers(shape, batch, workdir, cache_teacher_latents=False):
  """{stage name: StageTrainer} of `shape`'s default cm_stew stages, built on `batch`'s clips
  (`cache_teacher_latents`: as stew_tf.main trains them; their steps then take step_batch)."""
  spec = data.get_spec(shape.dataset)
  modalities = {m: spec.modalities[m] for m in (shape.strong, shape.weak)}
  config = config_of(shape, workdir)
  trainer = config.trainer
  return {stage.name: train.StageTrainer(stage, modalities, trainer.learning_rate,
                                         os.path.join(workdir, stage.name), seed=trainer.seed,
                                         epochs=trainer.epochs, patience=trainer.patience,
                                         jit_compile=config.numerics.jit_compile,
                                         cache_teacher_latents=cache_teacher_latents)
          for stage in experiment.build_stages(config, split_of(batch, modalities))}


def step_batch(trainer, batch):
  """`batch` as the trainer's step takes it: with the teacher's latents if it caches them."""
  if not trainer.caches_teacher_latents:
    return batch
  return {**batch, data.TEACHER_LATENTS: trainer.steps.teacher_step(batch)}


def teacher_latents_ab(name, workdir, rounds, steps, warmup_steps=2):
  """Stage 2's step running the teacher (before) and taking its cached latents (now), built on
  the same batch and alternated round by round (`steps` calls each), and the teacher's pass
  alone (what a fit now runs once per batch of training clips): medians in ms."""
  shape = SHAPES[name]
  keras.utils.set_random_seed(0)
  batch = random_batch(shape)
  calls = {}
  for cache, variant in ((False, "teacher_in_step"), (True, "cached_latents")):
    trainer = stage_trainers(shape, batch, os.path.join(workdir, variant), cache)["stage2"]
    calls[variant] = functools.partial(trainer.steps.train_step, step_batch(trainer, batch))
  teacher_step = trainer.steps.teacher_step
  calls["teacher_pass"] = lambda: [latents.numpy() for latents in teacher_step(batch).values()]
  seconds = {variant: [] for variant in calls}
  for round_index in range(rounds):
    for variant, call in calls.items():
      warmup = warmup_steps if round_index == 0 else 0
      seconds[variant] += _time_calls(call, warmup, steps, float("inf"))
  medians = {f"{variant}_ms": float(np.median(s)) * 1000.0 for variant, s in seconds.items()}
  return {**medians, "saved_ms": medians["teacher_in_step_ms"] - medians["cached_latents_ms"],
          "rounds": rounds, "steps_per_round": steps}


def bench_shape(name, workdir, steps=20, warmup_steps=2, inference_calls=50, max_seconds=10.0):
  """Stage-1 and stage-2 training and SavedModel serving on random batches of SHAPES[name]."""
  shape = SHAPES[name]
  keras.utils.set_random_seed(0)
  spec = data.get_spec(shape.dataset)
  batch = random_batch(shape)
  result = {
      "strong": f"{shape.strong} ({spec.modalities[shape.strong]}-d)",
      "weak": f"{shape.weak} ({spec.modalities[shape.weak]}-d)",
      "task": spec.task_of(shape.label), "clips": shape.clips, "padded_time": shape.time,
      "real_segments": int(batch["mask"].numpy().sum()),
  }
  trainers = stage_trainers(shape, batch, workdir, cache_teacher_latents=True)
  for stage_name, trainer in trainers.items():
    result[stage_name] = bench_training(trainer, step_batch(trainer, batch), steps, warmup_steps,
                                        max_seconds)
  weak = trainers["stage2"].stage
  predictor = models.build_predictor(weak.encoder, weak.classifier, "weak")
  export_dir = export.export_predictor(predictor, os.path.join(workdir, "export"))
  result["serving"] = bench_serving(export_dir, batch, shape.weak, inference_calls, max_seconds)
  return result


def _cpu_model():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def device_info():
  """The GPU that TensorFlow uses, or else the CPU."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return {"type": "GPU", "name": details.get("device_name", gpus[0].name),
            "compute_capability": details.get("compute_capability"), "count": len(gpus)}
  return {"type": "CPU", "name": _cpu_model(), "logical_cpus": os.cpu_count(),
          "usable_cpus": config_lib.usable_cpus()}


def run_benchmark(shapes=tuple(SHAPES), ab_rounds=0, **options):
  """The whole benchmark as a JSON-serialisable dict; `options` go to bench_shape. `ab_rounds`:
  instead, only teacher_latents_ab with that many rounds of options["steps"] steps."""
  start = time.time()
  results = {
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "device": device_info(),
      "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                   "keras": keras.__version__, "numpy": np.__version__},
      "shapes": {},
  }
  with tempfile.TemporaryDirectory(prefix="stew_bench_") as workdir:
    for name in shapes:
      folder = os.path.join(workdir, name)
      results["shapes"][name] = (
          {"stage2_teacher_latents_ab": teacher_latents_ab(
              name, folder, ab_rounds, options["steps"], options["warmup_steps"])}
          if ab_rounds else bench_shape(name, folder, **options))
  # ru_maxrss is in KiB on Linux.
  results["peak_host_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  results["wall_s"] = time.time() - start
  return results


def _define_flags():
  # Defined only when run as a command: tests import this module beside stew_tf.predict, whose
  # --output would otherwise clash with this one.
  flags.DEFINE_list("shapes", list(SHAPES), f"Batch shapes to run, of: {', '.join(SHAPES)}.")
  flags.DEFINE_integer("steps", 20, "Timed training steps per stage (fewer once "
                       "--max_seconds are spent).", lower_bound=1)
  flags.DEFINE_integer("warmup_steps", 2, "Untimed training steps first (the first traces).",
                       lower_bound=1)
  flags.DEFINE_integer("inference_calls", 50, "Timed SavedModel calls of each size (fewer once "
                       "--max_seconds are spent).", lower_bound=1)
  flags.DEFINE_float("max_seconds", 10.0, "Stop timing a measurement after this many seconds "
                     "(but never before 3 timed calls).", lower_bound=0.0)
  flags.DEFINE_bool("deterministic_ops", True, "Enable TF op determinism, as stew_tf.main does "
                    "by default (--deterministic).")
  flags.DEFINE_integer("ab_rounds", 0, "Instead of the above, alternate stage 2's step with the "
                       "teacher in the step and with cached teacher latents for this many rounds "
                       "of --steps steps each (medians).", lower_bound=0)
  flags.DEFINE_string("output", None, "Also write the JSON to this file.")
  flags.register_validator("shapes", lambda names: set(names) <= set(SHAPES),
                           f"--shapes takes names of: {', '.join(SHAPES)}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # the export's INFO lines would bury the JSON
  values = flags.FLAGS
  experiment.set_threads(config_lib.default_intra_op_threads())  # as stew_tf.main's default
  if values.deterministic_ops:
    tf.config.experimental.enable_op_determinism()
  results = run_benchmark(values.shapes, steps=values.steps, warmup_steps=values.warmup_steps,
                          inference_calls=values.inference_calls,
                          max_seconds=values.max_seconds, ab_rounds=values.ab_rounds)
  results["deterministic_ops"] = values.deterministic_ops
  text = json.dumps(results, indent=2)
  print(text)
  if values.output:
    with open(values.output, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
