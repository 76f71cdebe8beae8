"""A workdir is an exclusive, exact record of one run: a lock, and the identity of what it trains.

`run.json` holds the run's identity (config.Experiment.identity: the settings that determine the
models, the prepared data and the stew_tf version). A run started
in a workdir whose record differs stops before touching anything, naming each difference;
`--overwrite` moves the old run aside (never deletes it). The lock is an flock on `.lock`:
the kernel drops it when its process dies, so a lock left by a dead process is taken over.
"""

import datetime
import fcntl
import json
import os
import socket

from stew_tf import records

RECORD_FILE = "run.json"
LOCK_FILE = ".lock"
# What a workdir holds once a run has started in it.
RUN_OUTPUTS = ("checkpoints", "results.json", "export", "tensorboard", "predictions.npz")


class WorkdirError(Exception):
  """The workdir cannot be used as asked; the one-line message says why and what to do."""


def _holder_of(text):
  """The holder record in a lock file's text, or None (an empty file: nobody held it)."""
  text = text.strip()
  return json.loads(text) if text.startswith("{") else None


class Lock:
  """An exclusive flock on `<folder>/.lock`, with who holds it written inside."""

  def __init__(self, folder):
    self.path = os.path.join(folder, LOCK_FILE)
    self._file = None

  def acquire(self, wait=False):
    """Takes the lock; returns False if another process holds it (and `wait` is False)."""
    self._file = open(self.path, "a+")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
      self._file.close()
      self._file = None
      return False
    self._file.seek(0)
    self._file.truncate()
    json.dump(holder_record(), self._file)
    self._file.flush()
    return True

  def holder(self):
    """The record of the process that holds (or last held) the lock, or None."""
    try:
      with open(self.path) as f:
        return _holder_of(f.read())
    except (OSError, ValueError):
      return None

  def release(self):
    if self._file is not None:
      self._file.seek(0)
      self._file.truncate()
      self._file.flush()
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None


def holder_record():
  return {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def describe_holder(holder):
  if not holder:
    return "another process"
  return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"


def lock_workdir(workdir):
  """Creates `workdir` if needed and locks it; raises WorkdirError if another process has it."""
  os.makedirs(workdir, exist_ok=True)
  lock = Lock(workdir)
  if not lock.acquire():
    raise WorkdirError(f"--workdir={workdir} is in use by {describe_holder(lock.holder())}; "
                       "wait for it to finish, or choose another --workdir")
  return lock


def check_record(workdir, record, overwrite=False, log=print):
  """Makes `workdir`'s run.json equal `record`, or raises WorkdirError naming the differences.

  A workdir with no record and no outputs gets `record`. A workdir whose record (or whose lack
  of one, for outputs made before records existed) differs is an error, unless `overwrite`:
  then its contents are moved aside to `<workdir>.replaced-<time>` first.
  """
  path = os.path.join(workdir, RECORD_FILE)
  remedy = "choose a new --workdir, or pass --overwrite to move the old run aside"
  try:
    changed = records.changes(path, record, remedy)
  except records.RecordError as error:
    if not overwrite:
      raise WorkdirError(str(error)) from None
    changed = [f"{RECORD_FILE} is damaged"]
  if changed == []:
    return
  if changed is None and any(os.path.exists(os.path.join(workdir, n)) for n in RUN_OUTPUTS):
    changed = ["it holds a run with no record of its settings"]
  if changed:
    if not overwrite:
      raise WorkdirError(f"--workdir={workdir} holds a run made with other settings "
                         f"({'; '.join(changed)}); {remedy}")
    log(f"--overwrite: moved the old run ({'; '.join(changed)}) to {move_aside(workdir)}")
  records.write_json(path, record, sort_keys=True)


def move_aside(workdir):
  """Moves everything in `workdir` but the lock to a new sibling folder; returns its path."""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  aside = f"{os.path.normpath(workdir)}.replaced-{stamp}"
  suffix = 1
  while os.path.exists(aside):
    aside = f"{os.path.normpath(workdir)}.replaced-{stamp}-{suffix}"
    suffix += 1
  os.makedirs(aside)
  for name in os.listdir(workdir):
    if name != LOCK_FILE:
      os.rename(os.path.join(workdir, name), os.path.join(aside, name))
  return aside
