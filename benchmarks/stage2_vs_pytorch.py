"""stew_tf's stage-2 training step against an independent PyTorch peer, in one run.

  .venv/bin/python benchmarks/stage2_vs_pytorch.py --torch_python=/work/torchvenv/bin/python

Two long-lived worker processes, one per framework (2 threads each; torch from
benchmarks/requirements.txt in its own virtualenv, never a package requirement), build their
stage-2 step on the same random batch per shape and warm it up. The driver then alternates:
every round times a few steps of stew_tf, then of PyTorch, per shape, so that both sides see the
same machine load. It prints the median step times and their ratio, each step's FLOP count from
the layer sizes, each framework's measured float32 matrix-product rate and the fraction of it
that each step reaches, and the load average before and after.

The PyTorch step is the same network as stew_tf's cm_stew stage 2 (paper, Fig. 1): weak encoder
(z-score → Bi-GRU × 2 with units = input dim, dropout 0.3 after each → Linear(100) → sinusoidal
positions → 2 post-norm nn.TransformerEncoderLayer, 2 heads, FFN 400, dropout 0.3) → classifier
(Linear(300), ReLU, dropout 0.3, Linear(1), sigmoid | tanh); a frozen strong encoder of the same
form (1 Bi-GRU layer) in eval mode under no_grad; decoder Bi-GRU × 2 (250) → Linear(strong dim);
BCE | MSE + alpha·(−DCCA) + beta·MAE; Adam. Its GRUs are nn.GRU on packed sequences (PyTorch's
own way to honour the clip lengths; RECOLA's full-length clips are not packed).
"""

import argparse
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

  Trained parts count 3× their forward pass (forward, then input and weight gradients); the
  frozen strong encoder counts its forward pass only. Elementwise work is left out.
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
  return {"trained_forward": trained, "teacher_forward": encoder(shape["strong"],
                                                                 shape["strong_layers"]),
          "total": 3 * trained + encoder(shape["strong"], shape["strong_layers"])}


# --- stew_tf side -------------------------------------------------------------------------
def stew_tf_stage2_step(name, arrays, workdir):
  """A zero-argument callable that runs one stew_tf stage-2 train step on the batch.

  The only code that touches stew_tf's training API; it builds the stages as stew_tf/bench.py
  does (experiment.build_stages on the default cm_stew configuration of the shape).
  """
  import tensorflow as tf
  from stew_tf import bench
  from stew_tf import data
  from stew_tf import experiment
  from stew_tf import train

  shape = bench.SHAPES[name]
  spec = data.get_spec(shape.dataset)
  modalities = {m: spec.modalities[m] for m in (shape.strong, shape.weak)}
  if [modalities[shape.strong], modalities[shape.weak]] != [SHAPES[name][s] for s in
                                                            ("strong", "weak")]:
    raise ValueError(f"SHAPES[{name!r}] dims differ from stew_tf's {modalities}")
  batch = {"features": {shape.strong: tf.constant(arrays["strong"]),
                        shape.weak: tf.constant(arrays["weak"])},
           "labels": tf.constant(arrays["labels"]), "mask": tf.constant(arrays["mask"])}
  config = bench._config(shape, workdir)  # pylint: disable=protected-access
  stage = experiment.build_stages(config, bench._split_of(batch, modalities))[-1]
  trainer = train.StageTrainer(stage, modalities, config.learning_rate,
                               os.path.join(workdir, stage.name), seed=config.seed,
                               epochs=config.epochs, patience=config.patience)
  train_step = trainer.steps.train_step
  return lambda: train_step(batch)


def tf_matmul_rate():
  import tensorflow as tf
  rng = np.random.default_rng(0)
  a = tf.constant(rng.normal(size=MATMUL[:2]), tf.float32)
  b = tf.constant(rng.normal(size=MATMUL[1:]), tf.float32)
  product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
  return lambda: product().numpy()


def tf_worker(batches, workdir):
  import tensorflow as tf
  tf.config.threading.set_intra_op_parallelism_threads(THREADS)
  tf.config.threading.set_inter_op_parallelism_threads(THREADS)
  tf.config.experimental.enable_op_determinism()  # as stew_tf.main runs by default
  steps = {name: stew_tf_stage2_step(name, arrays, os.path.join(workdir, name))
           for name, arrays in batches.items()}
  return steps, tf_matmul_rate()


# --- workers and driver -------------------------------------------------------------------
def serve(steps, matmul, warmup):
  """Worker loop: warm up, say READY, then time what the driver asks for on stdin."""
  for step in steps.values():
    for _ in range(warmup):
      step()
  for _ in range(warmup):
    matmul()
  print("READY", flush=True)
  for line in sys.stdin:
    request = json.loads(line)
    call = matmul if request["run"] == "matmul" else steps[request["run"]]
    seconds = []
    for _ in range(request["steps"]):
      start = time.perf_counter()
      call()
      seconds.append(time.perf_counter() - start)
    print("RESULT " + json.dumps(seconds), flush=True)


class Worker:
  """One framework's worker process."""

  def __init__(self, framework, python, batch_file, warmup):
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=REPOSITORY)
    self.process = subprocess.Popen(
        [python, __file__, f"--worker={framework}", f"--batches={batch_file}",
         f"--warmup={warmup}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env, cwd=REPOSITORY)
    self._expect("READY")

  def _expect(self, prefix):
    for line in self.process.stdout:
      if line.startswith(prefix):
        return line[len(prefix):].strip()
    raise RuntimeError(f"worker {self.process.args[2]} ended without {prefix}")

  def time(self, run, steps):
    self.process.stdin.write(json.dumps({"run": run, "steps": steps}) + "\n")
    self.process.stdin.flush()
    return json.loads(self._expect("RESULT "))

  def close(self):
    self.process.stdin.close()
    self.process.wait(timeout=60)


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(args, batch_file):
  """Alternates the two workers round by round; returns {side: {run: [seconds]}}."""
  workers = {"stew_tf": Worker("tf", sys.executable, batch_file, args.warmup),
             "pytorch": Worker("torch", args.torch_python, batch_file, args.warmup)}
  times = {side: {run: [] for run in [*args.shapes, "matmul"]} for side in workers}
  for _ in range(args.rounds):
    for run in [*args.shapes, "matmul"]:
      for side, worker in workers.items():
        times[side][run] += worker.time(run, args.steps if run != "matmul" else 5)
  for worker in workers.values():
    worker.close()
  return times


def report(times, shapes):
  matmul_flops = 2 * np.prod(MATMUL, dtype=np.float64)
  rates = {side: matmul_flops / np.median(t["matmul"]) for side, t in times.items()}
  machine_rate = max(rates.values())
  result = {"matmul_gflops": {s: r / 1e9 for s, r in rates.items()},
            "matmul_shape": MATMUL, "shapes": {}}
  for name in shapes:
    flops = step_flops(SHAPES[name])["total"]
    medians = {side: float(np.median(t[name])) for side, t in times.items()}
    result["shapes"][name] = {
        "step_gflop": flops / 1e9,
        "median_ms": {s: 1000 * m for s, m in medians.items()},
        "pytorch_over_stew_tf": medians["pytorch"] / medians["stew_tf"],
        "fraction_of_matmul_rate": {s: flops / m / machine_rate for s, m in medians.items()},
        "steps_timed": {s: len(t[name]) for s, t in times.items()}}
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
  parser.add_argument("--worker", choices=["tf", "torch"], help=argparse.SUPPRESS)
  parser.add_argument("--batches", help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.shapes = args.shapes.split(",")
  if args.worker:
    with open(args.batches, "rb") as f:
      batches = pickle.load(f)
    if args.worker == "tf":
      sys.path.insert(0, REPOSITORY)
      with tempfile.TemporaryDirectory(prefix="stage2_vs_pytorch_") as workdir:
        serve(*tf_worker(batches, workdir), args.warmup)
    else:
      import torch_stage2
      serve(*torch_stage2.worker(batches, SHAPES, ALPHA, BETA, THREADS, MATMUL), args.warmup)
    return
  unknown = set(args.shapes) - set(SHAPES)
  if unknown:
    parser.error(f"--shapes: unknown {sorted(unknown)}; expected names of {sorted(SHAPES)}")
  load_before = os.getloadavg()
  start = time.time()
  with tempfile.TemporaryDirectory(prefix="stage2_vs_pytorch_") as directory:
    batch_file = os.path.join(directory, "batches.pickle")
    with open(batch_file, "wb") as f:
      pickle.dump({name: make_batch(SHAPES[name]) for name in args.shapes}, f)
    times = measure(args, batch_file)
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
