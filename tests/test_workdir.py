"""Run identity and the exclusive workdir, without training: records, overwrite, locks."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from stew_tf import teachers
from stew_tf import workdir

RECORD = {"objective": {"alignment": {"alpha": 0.1}}, "trainer": {"seed": 0},
          "prepared_data": {"data_fingerprint": "abc"}, "stew_tf_version": "9.9.9"}


def test_a_fresh_workdir_gets_the_record_and_the_same_record_passes(tmp_path):
  workdir.check_record(str(tmp_path), RECORD)
  assert json.loads((tmp_path / "run.json").read_text()) == RECORD
  workdir.check_record(str(tmp_path), dict(RECORD))  # no error, nothing moved
  assert sorted(os.listdir(tmp_path)) == ["run.json"]


def test_a_differing_record_names_every_difference_with_both_values(tmp_path):
  workdir.check_record(str(tmp_path), RECORD)
  changed = {**RECORD, "objective": {"alignment": {"alpha": 0.5}},
             "prepared_data": {"data_fingerprint": "def"}}
  with pytest.raises(workdir.WorkdirError) as error:
    workdir.check_record(str(tmp_path), changed)
  message = str(error.value)
  assert "objective.alignment.alpha: was 0.1, now 0.5" in message
  assert "prepared_data.data_fingerprint: was 'abc', now 'def'" in message
  assert "seed" not in message and "\n" not in message
  assert message.endswith("choose a new --workdir, or pass --overwrite to move the old run aside")


def test_a_run_of_another_version_is_refused_with_one_line_saying_why(tmp_path):
  workdir.check_record(str(tmp_path), {**RECORD, "stew_tf_version": "0.5.0"})
  with pytest.raises(workdir.WorkdirError) as error:
    workdir.check_record(str(tmp_path), RECORD)
  assert str(error.value) == (
      f"--workdir={tmp_path} holds a run made with other settings (made by stew_tf 0.5.0, this "
      "is 9.9.9, and records of other versions are not reused); choose a new --workdir, or "
      "pass --overwrite to move the old run aside")


def test_a_damaged_record_is_named_and_overwrite_moves_it_aside(tmp_path):
  (tmp_path / "run.json").write_text('{"objective": {"alig')
  with pytest.raises(workdir.WorkdirError) as error:
    workdir.check_record(str(tmp_path), RECORD)
  message = str(error.value)
  assert message.startswith(f"{tmp_path / 'run.json'} is damaged (not valid JSON: ")
  assert "\n" not in message
  workdir.check_record(str(tmp_path), RECORD, overwrite=True, log=lambda line: None)
  assert json.loads((tmp_path / "run.json").read_text()) == RECORD


def test_outputs_without_a_record_are_not_adopted(tmp_path):
  (tmp_path / "results.json").write_text("{}")
  with pytest.raises(workdir.WorkdirError, match="holds a run with no record of its settings"):
    workdir.check_record(str(tmp_path), RECORD)


def test_overwrite_moves_the_old_run_aside_and_keeps_the_lock(tmp_path):
  work = tmp_path / "work"
  lock = workdir.lock_workdir(str(work))
  workdir.check_record(str(work), RECORD)
  (work / "results.json").write_text('{"old": true}')
  logged = []
  workdir.check_record(str(work), {**RECORD, "trainer": {"seed": 1}}, overwrite=True,
                       log=logged.append)
  aside = [p for p in tmp_path.iterdir() if p.name.startswith("work.replaced-")]
  assert len(aside) == 1
  assert json.loads((aside[0] / "results.json").read_text()) == {"old": True}
  assert json.loads((aside[0] / "run.json").read_text()) == RECORD
  assert sorted(os.listdir(work)) == [".lock", "run.json"]
  assert "trainer.seed: was 0, now 1" in logged[0] and str(aside[0]) in logged[0]
  lock.release()


_HOLD = textwrap.dedent("""
    import sys, time
    from stew_tf import workdir
    lock = workdir.lock_workdir(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_held_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir.WorkdirError) as error:
      workdir.lock_workdir(str(tmp_path))
    assert f"is in use by pid {holder.pid} on " in str(error.value)
  finally:
    holder.kill()
    holder.wait(timeout=30)
  # The dead process's record is still in the file, but its flock is gone.
  assert workdir.Lock(str(tmp_path)).holder()["pid"] == holder.pid
  lock = workdir.lock_workdir(str(tmp_path))
  assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
  lock.release()


def test_a_teacher_entry_is_named_by_its_identity(tmp_path):
  identity = {"data": {"dataset": "stew_synthetic", "label": "sentiment"},
              "teacher": {"modality": "text", "trainer": {"seed": 2, "learning_rate": 0.001}},
              "stew_tf_version": "9.9.9"}
  first = teachers.entry_dir(str(tmp_path), identity)
  assert os.path.basename(first).startswith("stew_synthetic-sentiment-text-seed2-")
  assert teachers.entry_dir(str(tmp_path), dict(identity)) == first
  other = {**identity, "teacher": {"modality": "text",
                                   "trainer": {"seed": 2, "learning_rate": 0.01}}}
  assert teachers.entry_dir(str(tmp_path), other) != first
  assert teachers.entry_dir(str(tmp_path), {**identity, "stew_tf_version": "0.5.0"}) != first
  with teachers.Entry(str(tmp_path), identity, log=lambda line: None) as entry:
    assert json.loads((tmp_path / os.path.basename(first) / "identity.json").read_text()) == (
        identity)
    assert entry.checkpoint_dir == os.path.join(first, "checkpoints")


def test_a_teacher_of_another_version_is_not_reused_and_a_line_says_so(tmp_path):
  identity = {"data": {"dataset": "stew_synthetic", "label": "sentiment"},
              "teacher": {"modality": "text", "trainer": {"seed": 0}},
              "stew_tf_version": "9.9.9"}
  old = tmp_path / "stew_synthetic-sentiment-text-seed0-0123456789ab"  # 0.5.0 had no version
  old.mkdir()
  (old / "identity.json").write_text(json.dumps({"dataset": "stew_synthetic", "seed": 0}))
  lines = []
  with teachers.Entry(str(tmp_path), identity, log=lines.append) as entry:
    assert entry.directory != str(old)
  assert lines == [f"[stage1] not reusing the teacher in {old}: stew_tf before 0.6.0 made it, "
                   "and records and numbers of other versions are not reused; training one for "
                   "9.9.9"]
  with teachers.Entry(str(tmp_path), identity, log=lines.append):
    pass
  assert len(lines) == 1  # said once, when the new teacher's entry is made
