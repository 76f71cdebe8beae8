"""Stage-1 teachers shared by identity: trained once, reused by every run that needs the same one.

A teacher (the strong encoder + classifier of stage 1) is determined by its identity
(config.Experiment.teacher_identity): the data and its prepared files, the teacher's encoder,
classifier and own trainer settings, the numerics and the stew_tf version.
`cm_stew` and `no_decoder` runs of one such identity, in any workdir, use one cache entry:
`<cache>/<dataset>-<label>-<strong>-seed<seed>-<hash>/` with `identity.json`, `checkpoints/`
(the stage's state, resumable) and `tensorboard/`. An flock on the entry makes concurrent runs
wait for the one that trains it instead of training it twice.
"""

import os

from stew_tf import config as config_lib
from stew_tf import records
from stew_tf import workdir as workdir_lib

IDENTITY_FILE = "identity.json"


def entry_dir(cache, teacher_identity):
  """<cache>/<dataset>-<label>-<strong>-seed<seed>-<hash of the whole identity>."""
  data, teacher = teacher_identity["data"], teacher_identity["teacher"]
  name = "-".join([data["dataset"].replace("/", "_"), data["label"], teacher["modality"],
                   f"seed{teacher['trainer']['seed']}",
                   config_lib.settings_hash(teacher_identity, length=12)])
  return os.path.join(cache, name)


class Entry:
  """One cache entry, locked while it is used to train (a context manager)."""

  def __init__(self, cache, teacher_identity, log=print):
    self.directory = entry_dir(cache, teacher_identity)
    self.identity = teacher_identity
    self.log = log
    self._lock = None

  @property
  def checkpoint_dir(self):
    return os.path.join(self.directory, "checkpoints")

  @property
  def tensorboard_dir(self):
    return os.path.join(self.directory, "tensorboard")

  def __enter__(self):
    os.makedirs(self.directory, exist_ok=True)
    self._lock = workdir_lib.Lock(self.directory)
    if not self._lock.acquire():
      self.log(f"[stage1] waiting for {workdir_lib.describe_holder(self._lock.holder())}, "
               f"which is training the same teacher in {self.directory}")
      self._lock.acquire(wait=True)
    path = os.path.join(self.directory, IDENTITY_FILE)
    if not records.check_same(path, self.identity, f"delete {self.directory} and rerun to "
                              "train the teacher again"):
      for other, version in self._other_versions():
        self.log(f"[stage1] not reusing the teacher in {other}: stew_tf {version} made it, and "
                 f"records and numbers of other versions are not reused; training one for "
                 f"{self.identity['stew_tf_version']}")
      records.write_json(path, self.identity, sort_keys=True)
    return self

  def _other_versions(self):
    """(folder, version) of the entries of this teacher's name (dataset, label, modality, seed)
    that another stew_tf version made."""
    parent, name = os.path.split(self.directory)
    prefix = name.rsplit("-", 1)[0] + "-"
    found = []
    for other in sorted(os.listdir(parent)):
      path = os.path.join(parent, other, IDENTITY_FILE)
      if other == name or not other.startswith(prefix) or not os.path.exists(path):
        continue
      identity = records.read_json(path, f"delete {os.path.dirname(path)}")
      version = identity.get("stew_tf_version", "before 0.6.0")
      if version != self.identity["stew_tf_version"]:
        found.append((os.path.join(parent, other), version))
    return found

  def __exit__(self, *exc_info):
    self._lock.release()
    return False
