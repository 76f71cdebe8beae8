"""Writes dummy_data/{classification,regression}/: small clips folders, for the builder tests.

Run once from the repository root: `python datasets/clips/make_dummy_data.py`. The output is fixed
(seeded), so running it again rewrites the same files. `write_folder` is also what the tests use to
make folders of their own.
"""

import json
import pathlib

import numpy as np

DUMMY_DATA = pathlib.Path(__file__).resolve().parent / "dummy_data"
# Clips per split of the dummy folders.
CLIPS = {"train": 3, "validation": 2, "test": 2}
FOLDERS = {
    "classification": {"task": "classification", "modalities": {"text": 4, "audio": 3}},
    "regression": {"task": "regression", "modalities": {"audio": 3, "video": 5},
                   "label_range": [-3, 3]},
}


def make_split(rng, spec, clips, time):
  """{key: array} of one split; padding (after each clip's length) holds NaN, which is ignored."""
  lengths = rng.integers(1, time + 1, size=clips)
  lengths[0] = time  # at least one clip without padding
  real = np.arange(time)[None, :] < lengths[:, None]
  if spec["task"] == "classification":
    labels = rng.integers(0, 2, size=(clips, time)).astype(np.float32)
  else:
    low, high = spec.get("label_range", (-1, 1))
    labels = rng.uniform(low, high, size=(clips, time)).astype(np.float32)
  arrays = {"labels": np.where(real, labels, np.nan).astype(np.float32), "lengths": lengths}
  for name, dim in spec["modalities"].items():
    values = rng.normal(size=(clips, time, dim)).astype(np.float32)
    arrays[name] = np.where(real[:, :, None], values, np.nan).astype(np.float32)
  return arrays


def write_folder(directory, spec, clips=None, time=6, seed=0):
  """Writes spec.json and train/validation/test.npz; returns {split: {key: array}}."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
  rng = np.random.default_rng(seed)
  splits = {}
  for split, count in (clips or CLIPS).items():
    splits[split] = make_split(rng, spec, count, time)
    np.savez(directory / f"{split}.npz", **splits[split])
  return splits


def main():
  for seed, (name, spec) in enumerate(FOLDERS.items()):
    write_folder(DUMMY_DATA / name, spec, seed=seed)


if __name__ == "__main__":
  main()
