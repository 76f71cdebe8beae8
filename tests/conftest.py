"""Runs shared by several test files (conftest.py at the repository root sets up the session)."""

import pytest

from tests.helpers import TEXT_AUDIO_ARGS
from tests.helpers import run_in_background


@pytest.fixture(scope="session")
def started_text_audio_run(tmp_path_factory):
  """Starts, in the background, an uninterrupted TEXT_AUDIO_ARGS run that also prepares its own
  fresh TFDS data dir (so that preparing the data in the run is compared too): (root, data_dir,
  Future of its CompletedProcess), the run in root / "work" and its teacher in root / "teachers".
  A module that needs it finished later (text_audio_run) can start it early and test something
  else meanwhile."""
  root = tmp_path_factory.mktemp("text_audio_run")
  data_dir = root / "tfds"
  future = run_in_background(*TEXT_AUDIO_ARGS, f"--workdir={root / 'work'}",
                             f"--data_dir={data_dir}")
  yield root, data_dir, future
  future.result()  # never left running


@pytest.fixture(scope="session")
def text_audio_run(started_text_audio_run):
  """The finished TEXT_AUDIO_ARGS run of started_text_audio_run: (root, data_dir,
  CompletedProcess). Shared by test_end_to_end (what a finished run writes) and
  test_run_integrity (the reference of resume, reuse and changed settings): one run instead of
  one per file."""
  root, data_dir, future = started_text_audio_run
  result = future.result()
  assert result.returncode == 0, result.stderr[-3000:]
  return root, data_dir, result
