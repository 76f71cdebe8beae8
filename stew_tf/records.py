"""JSON records on disk: written atomically, read with one line for a damaged file, compared.

Every record stew_tf keeps (run.json, results.json, a teacher's identity.json, a stage's
done.json, the records of reproduce and rank) goes through this module.
"""

import json
import os


class RecordError(Exception):
  """A record is damaged or holds other settings; the one-line message names the file and what
  to do."""


def write_json(path, value, sort_keys=False):
  """Writes `value` to `path` as JSON, atomically: readers see the old file or the new one."""
  path = os.fspath(path)
  temporary = f"{path}.tmp"
  with open(temporary, "w") as f:
    json.dump(value, f, indent=2, sort_keys=sort_keys)
  os.replace(temporary, path)


def read_json(path, remedy):
  """The JSON value in `path`; a file that is not valid JSON raises RecordError naming it and
  `remedy` (what the user should do, e.g. "delete it and rerun to train the stage again")."""
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as error:
    raise RecordError(f"{os.fspath(path)} is damaged (not valid JSON: {error}); {remedy}") from None


def flatten(record, prefix=""):
  """{"a.b": value} for every leaf of a nested dict (None and lists are leaves; the dicts of a
  list of dicts, such as several teachers, are "a.0.b", "a.1.b", ...)."""
  flat = {}
  for key, value in record.items():
    if isinstance(value, dict) and value:
      flat.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
      flat.update(flatten(dict(enumerate(value)), f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def differences(before, now):
  """["name: was A, now B", ...] for every leaf that differs between two (nested) records."""
  before, now = flatten(before), flatten(now)
  return [f"{key}: was {before.get(key)!r}, now {now.get(key)!r}"
          for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]


def changes(path, record, remedy):
  """How the record in `path` differs from `record`: None if there is none, [] if it is equal,
  else one line per difference (a record of another stew_tf version: one line saying so).
  `remedy` is for a damaged file (read_json)."""
  if not os.path.exists(path):
    return None
  before = read_json(path, remedy)
  if before == record:
    return []
  if not isinstance(before, dict):
    return ["it is not a record of settings"]
  if before.get("stew_tf_version") != record.get("stew_tf_version"):
    return [f"made by stew_tf {before.get('stew_tf_version', 'before 0.6.0')}, this is "
            f"{record.get('stew_tf_version')}, and records of other versions are not reused"]
  return differences(before, record)


def check_same(path, record, remedy):
  """Whether the record in `path` equals `record`: True if it does, False if there is none; a
  different one raises RecordError naming the folder, each difference and `remedy`."""
  changed = changes(path, record, remedy)
  if changed:
    folder = os.path.dirname(os.fspath(path)) or "."
    raise RecordError(f"{folder} holds a run made with other settings ({'; '.join(changed)}); "
                      f"{remedy}")
  return changed is not None
