"""stew_tf's stage-2 training step against an independent PyTorch peer, in one run.

  .venv/bin/python benchmarks/stage2_vs_pytorch.py --torch_python=/work/torchvenv/bin/python

Long-lived worker processes (2 threads each; torch from benchmarks/requirements.txt in its own
virtualenv, never a package requirement), one per side of SIDES, build their stage-2 step on
the same random batch per shape and warm it up. The driver then alternates: every round times
a few steps of each side in turn, per shape, so that all sides see the same machine load. It
prints the median step times and their ratios, each step's FLOP count from the layer sizes
(`step_flops`), each side's measured float32 matrix-product rate and the fraction of the best
one that each step reaches, and the load average before and after.

The PyTorch step is the same network as stew_tf's cm_stew stage 2 (paper, Fig. 1): weak encoder
(z-score → Bi-GRU × 2 with units = input dim, dropout 0.3 after each → Linear(100) → sinusoidal
positions → 2 post-norm nn.TransformerEncoderLayer, 2 heads, FFN 400, dropout 0.3) → classifier
(Linear(300), ReLU, dropout 0.3, Linear(1), sigmoid | tanh); a frozen strong encoder of the same
form (1 Bi-GRU layer) in eval mode under no_grad; decoder Bi-GRU × 2 (250) → Linear(strong dim);
BCE | MSE + alpha·(−DCCA) + beta·MAE; Adam. Its GRUs are nn.GRU on packed sequences (PyTorch's
own way to honour the clip lengths; RECOLA's full-length clips are not packed).
"""

import argparse
import functools
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np

THREADS = 2
LATENT, HEADS, FFN, CLASSIFIER, DECODER_UNITS = 100, 2, 400, 300, 250
# As stew_tf.bench.SHAPES and stew_tf's dataset specs (the stew_tf worker checks the dims).
SHAPES = {
    "mosi": dict(strong=100, weak=73, weak_layers=2, strong_layers=1, task="classification",
                 clips=32, time=63, min_length=12, learning_rate=1e-4),
    "recola": dict(strong=88, weak=632, weak_layers=2, strong_layers=1, task="regression",
                   clips=32, time=75, min_length=75, learning_rate=1e-5),
}
ALPHA, BETA, DCCA_R = 0.1, 1.0, 1e-3
MATMUL = (2400, 1264, 1896)  # RECOLA's second weak GRU layer: whole-sequence input product


def make_batch(shape, seed=0):
  """NumPy arrays of one random batch: strong and weak features, labels, mask."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(shape["min_length"], shape["time"] + 1, size=shape["clips"])
  mask = np.arange(shape["time"]) < lengths[:, None]
  arrays = {"mask": mask}
  for side in ("strong", "weak"):
    values = rng.normal(size=(shape["clips"], shape["time"], shape[side]))
    arrays[side] = (values * mask[..., None]).astype(np.float32)
  if shape["task"] == "classification":
    labels = rng.integers(0, 2, size=mask.shape)
  else:
    labels = rng.uniform(-1.0, 1.0, size=mask.shape)
  arrays["labels"] = (labels * mask).astype(np.float32)
  return arrays


def step_flops(shape):
  """Matrix-product FLOPs of one training step (2 per multiply-add), on the padded length.

  Trained parts count 3× their forward pass (forward, then input and weight gradients), except
  the weak encoder's first GRU layer, whose input gradient (with respect to the data) no step
  computes; the frozen strong encoder counts its forward pass only. Elementwise work is left out.
  """
  rows = shape["clips"] * shape["time"]

  def bigru(dim, units, layers):
    total = 0
    for _ in range(layers):
      total += 2 * 2 * rows * (dim + units) * 3 * units  # 2 directions
      dim = 2 * units
    return total

  def encoder(dim, layers):
    transformer = 2 * rows * (4 * LATENT * LATENT + 2 * LATENT * FFN)
    transformer += 2 * 2 * shape["clips"] * shape["time"] ** 2 * LATENT  # scores, weighted sum
    return bigru(dim, dim, layers) + 2 * rows * 2 * dim * LATENT + 2 * transformer

  trained = (encoder(shape["weak"], shape["weak_layers"])
             + 2 * rows * (LATENT * CLASSIFIER + CLASSIFIER)
             + bigru(LATENT, DECODER_UNITS, 2) + 2 * rows * 2 * DECODER_UNITS * shape["strong"]
             + 3 * 2 * rows * LATENT * LATENT)  # DCCA covariances
  data_gradient = 2 * 2 * rows * shape["weak"] * 3 * shape["weak"]  # 2 directions
  teacher = encoder(shape["strong"], shape["strong_layers"])
  return {"trained_forward": trained, "teacher_forward": teacher,
          "data_gradient_not_computed": data_gradient,
          "total": 3 * trained - data_gradient + teacher}


# --- stew_tf side -------------------------------------------------------------------------
def stew_tf_steps(name, arrays, workdir):
  """{"stage1": callable, "stage2": callable}: one stew_tf train step of each stage on the batch.

  The only code that touches stew_tf's training API: stew_tf.bench.stage_trainers, the stages
  of the shape's default cm_stew configuration, as stew_tf.main would build them.
  """
  import tensorflow as tf
  from stew_tf import bench
  from stew_tf import data

  shape = bench.SHAPES[name]
  spec = data.get_spec(shape.dataset)
  modalities = {m: spec.modalities[m] for m in (shape.strong, shape.weak)}
  if [modalities[shape.strong], modalities[shape.weak]] != [SHAPES[name][s] for s in
                                                            ("strong", "weak")]:
    raise ValueError(f"SHAPES[{name!r}] dims differ from stew_tf's {modalities}")
  batch = {"features": {shape.strong: tf.constant(arrays["strong"]),
                        shape.weak: tf.constant(arrays["weak"])},
           "labels": tf.constant(arrays["labels"]), "mask": tf.constant(arrays["mask"])}
  return {name: functools.partial(trainer.steps.train_step, batch)
          for name, trainer in bench.stage_trainers(shape, batch, workdir).items()}


def tf_worker(batches, workdir, keras_gru, threads_per_op):
  """{run: step callable} and a matrix-product callable.

  `keras_gru`: the models as they were before FastGRU (keras.layers.GRU in every Bi-GRU);
  `threads_per_op`: TensorFlow's intra-op threads (THREADS inter-op threads in every case).
  """
  import keras
  import tensorflow as tf
  from stew_tf import experiment
  from stew_tf import models
  experiment.set_threads(threads_per_op, THREADS)
  tf.config.experimental.enable_op_determinism()  # as stew_tf.main runs by default
  if keras_gru:
    models.FastGRU = keras.layers.GRU
  steps = {}
  for name, arrays in batches.items():
    for stage, step in stew_tf_steps(name, arrays, os.path.join(workdir, name)).items():
      steps[f"{name}/{stage}"] = step
  rng = np.random.default_rng(0)
  a = tf.constant(rng.normal(size=MATMUL[:2]), tf.float32)
  b = tf.constant(rng.normal(size=MATMUL[1:]), tf.float32)
  product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
  return steps, lambda: product().numpy()


# --- workers and driver -------------------------------------------------------------------
def serve(steps, matmul, warmup):
  """Worker loop: warm up, say READY with the runs it has, then time what stdin asks for."""
  steps = dict(steps, matmul=matmul)
  for step in steps.values():
    for _ in range(warmup):
      step()
  print("READY " + json.dumps(sorted(steps)), flush=True)
  for line in sys.stdin:
    request = json.loads(line)
    wall, cpu = [], []
    for _ in range(request["steps"]):
      start, start_cpu = time.perf_counter(), time.process_time()
      steps[request["run"]]()
      wall.append(time.perf_counter() - start)
      cpu.append(time.process_time() - start_cpu)
    print("RESULT " + json.dumps({"wall": wall, "cpu": cpu}), flush=True)


class Worker:
  """One worker process; `runs` are the steps it can time."""

  def __init__(self, mode, python, batch_file, warmup):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=REPOSITORY)
    self.process = subprocess.Popen(
        [python, __file__, f"--worker={mode}", f"--batches={batch_file}",
         f"--warmup={warmup}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env, cwd=REPOSITORY)
    self.runs = json.loads(self._expect("READY "))

  def _expect(self, prefix):
    for line in self.process.stdout:
      if line.startswith(prefix):
        return line[len(prefix):].strip()
    raise WorkerError(f"worker {self.process.args[2]} ended without {prefix.strip()} (exit "
                      f"{self.process.wait()}); its error is printed above")

  def time(self, run, steps):
    self.process.stdin.write(json.dumps({"run": run, "steps": steps}) + "\n")
    self.process.stdin.flush()
    return json.loads(self._expect("RESULT "))

  def close(self):
    self.process.stdin.close()
    self.process.wait(timeout=60)

  def kill(self):
    self.process.kill()


class WorkerError(RuntimeError):
  """A worker process failed (e.g. torch missing from --torch_python)."""


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# stew_tf as stew_tf.main runs it on 2 CPUs (--intra_op_threads defaults to half the CPUs);
# the same code with TensorFlow's default thread pools (2 threads per op: what stew_tf used
# before); Keras' own GRU with those pools (before FastGRU); the PyTorch peer.
SIDES = {"stew_tf": "tf", "stew_tf_tf_default_threads": "tf_default_threads",
         "stew_tf_keras_gru": "tf_keras_gru", "pytorch": "torch"}


def measure(args, batch_file):
  """Alternates the workers run by run, round by round; {side: {run: {wall, cpu}}}."""
  workers = {}
  try:
    for side, mode in SIDES.items():
      python = args.torch_python if mode == "torch" else sys.executable
      workers[side] = Worker(mode, python, batch_file, args.warmup)
  except WorkerError:
    for worker in workers.values():
      worker.kill()
    raise
  runs = sorted(set().union(*(w.runs for w in workers.values())))
  times = {side: {run: {"wall": [], "cpu": []} for run in w.runs}
           for side, w in workers.items()}
  for _ in range(args.rounds):
    for run in runs:
      for side, worker in workers.items():
        if run in worker.runs:
          result = worker.time(run, 5 if run == "matmul" else args.steps)
          for kind in ("wall", "cpu"):
            times[side][run][kind] += result[kind]
  for worker in workers.values():
    worker.close()
  return times


def report(times, shapes):
  """Medians, ratios, FLOP counts and fractions of the measured matrix-product rate."""
  matmul_flops = 2 * np.prod(MATMUL, dtype=np.float64)
  rates = {side: matmul_flops / np.median(t["matmul"]["wall"]) for side, t in times.items()}
  machine_rate = max(rates.values())
  result = {"matmul_shape": MATMUL, "matmul_gflops": {s: r / 1e9 for s, r in rates.items()},
            "shapes": {}}
  for name in shapes:
    flops = step_flops(SHAPES[name])["total"]
    stage2 = f"{name}/stage2"
    medians = {side: float(np.median(t[stage2]["wall"])) for side, t in times.items()}
    result["shapes"][name] = {
        "stage2_gflop": flops / 1e9,
        "median_ms": {side: {run.split("/")[1]: 1000 * float(np.median(v["wall"]))
                             for run, v in t.items() if run.startswith(name + "/")}
                      for side, t in times.items()},
        "cpu_ms_per_step": {side: 1000 * float(np.median(t[stage2]["cpu"]))
                            for side, t in times.items()},
        "stage2_pytorch_over_stew_tf": medians["pytorch"] / medians["stew_tf"],
        "stage2_keras_gru_over_stew_tf": medians["stew_tf_keras_gru"] / medians["stew_tf"],
        "stage2_tf_default_threads_over_stew_tf": (medians["stew_tf_tf_default_threads"]
                                                   / medians["stew_tf"]),
        "stage2_fraction_of_matmul_rate": {s: flops / m / machine_rate
                                           for s, m in medians.items()},
        "steps_timed": len(times["stew_tf"][stage2]["wall"])}
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--torch_python", default="/work/torchvenv/bin/python",
                      help="Python of a virtualenv with benchmarks/requirements.txt")
  parser.add_argument("--shapes", default="mosi,recola")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=2, help="timed steps per side and round")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--output", help="also write the JSON here")
  parser.add_argument("--worker", choices=sorted(SIDES.values()), help=argparse.SUPPRESS)
  parser.add_argument("--batches", help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.shapes = args.shapes.split(",")
  if args.worker:
    with open(args.batches, "rb") as f:
      batches = pickle.load(f)
    if args.worker.startswith("tf"):
      sys.path.insert(0, REPOSITORY)
      with tempfile.TemporaryDirectory(prefix="stage2_vs_pytorch_") as workdir:
        threads_per_op = THREADS // 2 if args.worker == "tf" else THREADS
        serve(*tf_worker(batches, workdir, args.worker == "tf_keras_gru", threads_per_op),
              args.warmup)
    else:
      import torch_stage2
      serve(*torch_stage2.worker(batches, SHAPES, ALPHA, BETA, THREADS, MATMUL), args.warmup)
    return
  unknown = set(args.shapes) - set(SHAPES)
  if unknown:
    parser.error(f"--shapes: unknown {sorted(unknown)}; expected names of {sorted(SHAPES)}")
  if not os.access(args.torch_python, os.X_OK):
    parser.error(f"--torch_python: {args.torch_python} is not an executable Python; expected "
                 "one of a virtualenv with benchmarks/requirements.txt")
  load_before = os.getloadavg()
  start = time.time()
  with tempfile.TemporaryDirectory(prefix="stage2_vs_pytorch_") as directory:
    batch_file = os.path.join(directory, "batches.pickle")
    with open(batch_file, "wb") as f:
      pickle.dump({name: make_batch(SHAPES[name]) for name in args.shapes}, f)
    try:
      times = measure(args, batch_file)
    except WorkerError as error:
      sys.exit(f"stage2_vs_pytorch: {error}")
  result = report(times, args.shapes)
  result.update(load_average_before=load_before, load_average_after=os.getloadavg(),
                wall_s=time.time() - start, rounds=args.rounds, steps_per_round=args.steps,
                threads=THREADS, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
  text = json.dumps(result, indent=2)
  print(text)
  if args.output:
    with open(args.output, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
