"""benchmarks/stage2_vs_pytorch.py counts a stage-2 step's FLOPs from layer sizes it writes down
itself; here the same count is made another way, from the weights of the models stew_tf builds."""

import importlib.util
import os

import numpy as np
import pytest

from stew_tf import bench
from stew_tf import data
from stew_tf import experiment

BENCHMARK = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks",
                         "stage2_vs_pytorch.py")


def load_benchmark():
  spec = importlib.util.spec_from_file_location("stage2_vs_pytorch", BENCHMARK)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def kernel_flops(model, rows):
  """2 FLOPs per multiply-add of every kernel (recurrent ones included), applied once per row."""
  return sum(2 * rows * int(np.prod(v.shape)) for v in model.weights if v.path.endswith("kernel"))


def attention_flops(model, clips, time):
  """Every self-attention layer's scores and weighted sum: 2 products of clips × time² × dim."""
  queries = [v for v in model.weights if v.path.endswith("self_attention/query/kernel")]
  return sum(2 * 2 * clips * time ** 2 * int(np.prod(v.shape[1:])) for v in queries)


@pytest.mark.parametrize("name", ["mosi", "recola"])
def test_step_flops_match_the_weights_of_stew_tfs_stage2(name, tmp_path):
  shape = bench.SHAPES[name]
  modalities = {m: data.get_spec(shape.dataset).modalities[m] for m in (shape.strong, shape.weak)}
  stage = experiment.build_stages(bench.config_of(shape, str(tmp_path)),
                                  bench.split_of(bench.random_batch(shape), modalities))[-1]
  rows = shape.clips * shape.time
  latent = stage.encoder.outputs[0].shape[-1]
  dcca_covariances = 3 * 2 * rows * latent * latent
  (strong,) = stage.strong
  trained = (sum(kernel_flops(m, rows) for m in (stage.encoder, stage.classifier, strong.decoder))
             + attention_flops(stage.encoder, shape.clips, shape.time) + dcca_covariances)
  # No step computes the gradient with respect to the data: the first GRU layer's inputs.
  data_gradient = sum(2 * rows * int(np.prod(v.shape)) for v in stage.encoder.weights
                      if "bigru1/" in v.path and v.path.endswith("gru_cell/kernel"))
  teacher = (kernel_flops(strong.teacher, rows)
             + attention_flops(strong.teacher, shape.clips, shape.time))

  benchmark = load_benchmark()
  counted = benchmark.step_flops(benchmark.SHAPES[name])

  assert counted["data_gradient_not_computed"] == data_gradient
  assert counted["teacher_forward"] == teacher
  assert counted["total"] == 3 * trained - data_gradient + teacher
