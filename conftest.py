"""Test-wide setup: quiet TensorFlow, no network, deterministic ops."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  """One TFDS data dir per test session, so that synthetic data is generated once."""
  return tmp_path_factory.mktemp("tensorflow_datasets")
