"""stew_tf.hparams: a run's settings and final metrics, read back from the event files the way
TensorBoard's HParams dashboard reads them."""

import dataclasses

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from stew_tf import cli_flags
from stew_tf import hparams


def read_session(folder):
  """({hparam: value} of the session start, {scalar tag: value}) of an hparams folder."""
  settings, scalars, sessions = {}, {}, 0
  paths = sorted(folder.glob("events.out.tfevents.*"))
  assert len(paths) == 1, paths
  for event in tf.compat.v1.train.summary_iterator(str(paths[0])):
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name == "hparams":
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        sessions += 1
        settings = {name: getattr(v, v.WhichOneof("kind"))
                    for name, v in data.session_start_info.hparams.items()}
      else:
        scalars[value.tag] = tf.make_ndarray(value.tensor).item()
  assert sessions == 1
  return settings, scalars


def _leaves(node, prefix=""):
  """The test's own walk of the config dataclasses: {dotted name: value}, None as "none"."""
  if dataclasses.is_dataclass(node):
    found = {}
    for field in dataclasses.fields(node):
      found.update(_leaves(getattr(node, field.name), f"{prefix}{field.name}."))
    return found
  return {prefix[:-1]: "none" if node is None else node}


def _results():
  weak = {"validation": {"accuracy": 0.71, "f1_weighted": 0.7, "confusion": [[1, 2], [3, 4]]},
          "test": {"accuracy": 0.625, "f1_weighted": 0.6125, "confusion": [[5, 6], [7, 8]]}}
  strong = {"validation": {"accuracy": 0.9}, "test": {"accuracy": 0.8}}
  return {"weak_model": weak, "strong_model": strong, "config": {}}


def test_session_holds_every_setting_but_runtime_and_the_final_metrics(tmp_path):
  config = cli_flags.parse(["prog", "--method=no_lfa", "--beta=2.5", "--seed=3",
                            f"--workdir={tmp_path / 'work'}"])
  folder = hparams.write(str(tmp_path), config, _results())
  settings, scalars = read_session(tmp_path / "tensorboard" / "hparams")
  assert folder == str(tmp_path / "tensorboard" / "hparams")
  expected = _leaves(config)
  # A config without recordings leaves that branch out of its records (older runs keep their
  # identities), so out of the session too.
  assert expected.pop("data.recordings") == "none"
  assert any(name.startswith("runtime.") for name in expected)
  assert settings == {k: v for k, v in expected.items() if not k.startswith("runtime.")}
  # no_lfa: no teacher, no alignment branch; the flags given land on their leaves.
  assert settings["teacher"] == "none" and settings["objective.alignment"] == "none"
  assert settings["objective.translation.beta"] == 2.5 and settings["trainer.seed"] == 3
  assert settings["numerics.deterministic"] is True
  # TensorBoard scalars are float32; the confusion matrix is not a scalar.
  assert scalars == {tag: np.float32(value).item() for tag, value in {
      "validation/accuracy": 0.71, "validation/f1_weighted": 0.7, "test/accuracy": 0.625,
      "test/f1_weighted": 0.6125, "strong/validation/accuracy": 0.9,
      "strong/test/accuracy": 0.8}.items()}


def test_a_run_without_teacher_or_validation_split_and_written_twice_has_one_session(tmp_path):
  config = cli_flags.parse(["prog", "--method=enc_cls", "--validation=none"])
  results = {"weak_model": {"validation": None, "test": {"ccc": 0.25}}, "strong_model": None}
  hparams.write(str(tmp_path), config, {**results, "weak_model": {"validation": None,
                                                                   "test": {"ccc": 0.5}}})
  hparams.write(str(tmp_path), config, results)
  settings, scalars = read_session(tmp_path / "tensorboard" / "hparams")
  assert scalars == {"test/ccc": 0.25}
  assert settings["objective"] == "none" and settings["trainer.validation"] == "none"

