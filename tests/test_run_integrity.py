"""Trustworthy runs through the real command: exact resume after Ctrl-C and kill -9, data
preparation that changes no number, an exclusive workdir, shared teachers."""

import json
import signal

import pytest

from stew_tf import config as config_lib
from tests.helpers import TEXT_AUDIO_ARGS
from tests.helpers import read_until
from tests.helpers import run_main
from tests.helpers import run_in_background_one_after_another
from tests.helpers import start_main

ARGS = TEXT_AUDIO_ARGS


def _metrics(workdir):
  results = json.loads((workdir / "results.json").read_text())
  return {model: results[model] for model in ("strong_model", "weak_model")}


@pytest.fixture(scope="module")
def reference(text_audio_run):
  """An uninterrupted run of ARGS that also prepares its own fresh TFDS data dir (the session's
  text_audio_run, tests/conftest.py, which test_end_to_end reads too)."""
  root, data_dir, result = text_audio_run
  assert "Dataset stew_synthetic downloaded and prepared" in result.stderr + result.stdout
  return root, data_dir


BAD_SETTINGS = [
    (["--batch_size=2"], "--batch_size=2: DCCA estimates 100x100 covariances from each batch's "
                         "valid segments, but a batch of these training clips can hold as few as"),
    (["--workdir={file}"], "flag --workdir={file}: names a file; expected a folder"),
    (["--learning_rate=0"], "flag --learning_rate=0.0: expected a number in (0, 1]"),
    (["--workdir={file}/run"], "error: {file}/run: Not a directory"),
    (["--data_dir={file}"], "flag --data_dir={file}: names a file; expected a folder"),
]


@pytest.fixture(scope="module", autouse=True)
def background_runs(reference, tmp_path_factory):
  """Starts, as the module starts, the runs that need the finished reference and nothing else,
  one after another in the background, while the other tests train: a no_decoder run that reuses
  the reference's teacher, then a run of each of BAD_SETTINGS in a folder of its own that holds
  an empty `file`. {"transfer": Future, "bad_settings": [(folder, Future)]}."""
  root, data_dir = reference
  folders = [tmp_path_factory.mktemp("bad_setting") for _ in BAD_SETTINGS]
  commands = [[*ARGS, "--method=no_decoder", f"--workdir={root / 'no_decoder'}",
               f"--data_dir={data_dir}"]]
  for folder, (args, _) in zip(folders, BAD_SETTINGS):
    (folder / "file").write_text("")
    commands.append([f"--workdir={folder / 'w'}", f"--data_dir={data_dir}",
                     *(arg.format(file=folder / "file") for arg in args)])
  transfer, *bad_settings = run_in_background_one_after_another(commands)
  yield {"transfer": transfer, "bad_settings": list(zip(folders, bad_settings))}
  for future in (transfer, *bad_settings):
    future.result()  # never left running


def test_interrupted_in_each_stage_ends_bit_identical_to_an_uninterrupted_run(
    reference, tmp_path):
  root, data_dir = reference
  # Its own teacher cache, so that stage 1 is trained (and interrupted) here too; the data
  # dir is the one the reference prepared, so preparation is also compared.
  args = [*ARGS, f"--workdir={tmp_path / 'work'}", f"--data_dir={data_dir}",
          f"--teacher_cache={tmp_path / 'teachers'}"]
  # Ctrl-C inside stage 1's second epoch.
  process = start_main(*args)
  read_until(process, "[stage1 text] epoch   1/3")
  process.send_signal(signal.SIGINT)
  output = process.communicate(timeout=120)[0]
  assert process.returncode == 130, output[-3000:]
  assert "interrupted in stage1, epoch 2; 1 finished epoch(s) of stage1 are saved" in output
  assert "rerun to resume: python" in output and "Traceback" not in output
  # kill -9 inside stage 2's third epoch, after two finished stage-2 epochs.
  process = start_main(*args)
  lines = read_until(process, "[stage2 audio] epoch   2/3")
  process.kill()
  process.wait(timeout=60)
  assert any("[stage1] resuming after epoch 1" in line for line in lines)
  assert not (tmp_path / "work" / "results.json").exists()
  resumed = run_main(*args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "[stage2] resuming after epoch 2" in resumed.stdout
  assert _metrics(tmp_path / "work") == _metrics(root / "work")


def test_a_second_process_on_a_busy_workdir_exits_naming_the_holder(reference, tmp_path):
  _, data_dir = reference
  args = [*ARGS, f"--workdir={tmp_path / 'work'}", f"--data_dir={data_dir}",
          f"--teacher_cache={tmp_path / 'teachers'}", "--epochs=50"]
  first = start_main(*args)
  try:
    read_until(first, "[stage1] teacher:")
    second = run_main(*args, "--seed=1", timeout=120)
  finally:
    first.kill()
    first.wait(timeout=60)
  assert second.returncode == 1
  assert f"is in use by pid {first.pid} on " in second.stderr
  assert "Traceback" not in second.stderr
  # The holder is dead now: its lock is taken over (the run then fails on its other seed).
  third = run_main(*args, "--seed=1", timeout=120)
  assert "is in use" not in third.stderr
  assert "; trainer.seed: was 0, now 1" in third.stderr


def test_changed_settings_stop_at_once_and_overwrite_moves_the_old_run_aside(reference):
  root, data_dir = reference
  args = [*ARGS, f"--workdir={root / 'work'}", f"--data_dir={data_dir}"]
  threads = config_lib.default_intra_op_threads()
  result = run_main(*args, "--alpha=0.2", "--learning_rate=0.002",
                    f"--intra_op_threads={threads + 1}", timeout=120)
  assert result.returncode == 1
  line = result.stderr.strip().splitlines()[-1]
  assert "objective.alignment.alpha: was 0.1, now 0.2" in line
  assert "; trainer.learning_rate: was 0.003, now 0.002" in line
  assert f"numerics.intra_op_threads: was {threads}, now {threads + 1}" in line
  assert "--overwrite" in line
  again = run_main(*args)  # the same settings: nothing to train, the same results
  assert again.returncode == 0
  assert "[stage2] already finished after 3 epochs" in again.stdout


def test_a_transfer_run_reuses_the_teacher_of_an_earlier_one(reference, background_runs):
  root, _ = reference
  workdir = root / "no_decoder"
  result = background_runs["transfer"].result()
  assert result.returncode == 0, result.stderr[-3000:]
  assert "[stage1] already finished after 3 epochs" in result.stdout
  assert "[stage1 text] epoch" not in result.stdout
  results = json.loads((workdir / "results.json").read_text())
  assert results["strong_model"] == _metrics(root / "work")["strong_model"]


@pytest.mark.parametrize("args, expected", BAD_SETTINGS)
def test_bad_settings_stop_before_training_with_one_line(background_runs, args, expected):
  folder, started = background_runs["bad_settings"][BAD_SETTINGS.index((args, expected))]
  result = started.result()
  expected = expected.format(file=folder / "file")
  assert result.returncode == 1
  assert expected in result.stderr
  assert "Traceback" not in result.stderr and "epoch" not in result.stdout


def test_two_runs_that_need_one_teacher_train_it_once(reference, tmp_path):
  _, data_dir = reference
  common = ["--strong=text", "--weak=audio", "--epochs=2", f"--data_dir={data_dir}",
            f"--teacher_cache={tmp_path / 'teachers'}"]
  first = start_main(*common, f"--workdir={tmp_path / 'a'}")
  try:
    read_until(first, "[stage1] teacher:")
    second = run_main(*common, "--method=no_decoder", f"--workdir={tmp_path / 'b'}")
  finally:
    first_output = first.communicate(timeout=600)[0]
  assert first.returncode == 0, first_output[-3000:]
  assert second.returncode == 0, second.stderr[-3000:]
  assert f"[stage1] waiting for pid {first.pid} on " in second.stdout
  assert "[stage1] already finished after 2 epochs" in second.stdout
  assert "[stage1 text] epoch" not in second.stdout
  assert len(list((tmp_path / "teachers").iterdir())) == 1
  assert _metrics(tmp_path / "a")["strong_model"] == _metrics(tmp_path / "b")["strong_model"]
