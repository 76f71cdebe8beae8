"""Times liac-arff against arff_io on one full-size RECOLA geometric feature file.

Run from the repository root (the numbers are in README.md):

  .venv/bin/python datasets/recola/benchmark_arff.py
"""

import importlib
import pathlib
import sys
import tempfile
import time

import arff
import numpy as np

# Run as a script: make `stew_tf` importable, which imports this folder as `stew_datasets.recola`.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from stew_tf import tfds_builders  # pylint: disable=g-import-not-at-top

tfds_builders.builder_module("recola")
arff_io = importlib.import_module("stew_datasets.recola.arff_io")
make_dummy_data = importlib.import_module("stew_datasets.recola.make_dummy_data")

_REPEATS = 3


def _best_time(fn):
  times = []
  for _ in range(_REPEATS):
    start = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - start)
  return min(times), result


def read_with_liac_arff(path):
  """The numeric attributes' names and values as liac-arff reads them (the parser test's reference)."""
  with open(path, encoding="utf-8") as f:
    data = arff.load(f)
  numeric = [i for i, (_, kind) in enumerate(data["attributes"])
             if kind in ("NUMERIC", "REAL", "INTEGER")]
  names = [data["attributes"][i][0] for i in numeric]
  return names, np.array([[row[i] for i in numeric] for row in data["data"]], dtype=np.float64)


def main():
  with tempfile.TemporaryDirectory() as root:
    rng = np.random.default_rng(0)
    # Full-precision values like the real features ('%.6g'), not the small integers of dummy_data.
    make_dummy_data.write_avec2016_tree(
        root, num_frames=7501, recordings=(1,), targets=("arousal",), partitions=("train",),
        feature_fn=lambda _, modality, labels: rng.normal(
            size=(len(labels), make_dummy_data.FEATURE_DIMS[modality])))
    path = pathlib.Path(root, make_dummy_data.feature_dir("video_geometric"), "arousal",
                        "train_1.arff")
    print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB, 7501 rows x 634 attributes "
          f"(best of {_REPEATS})")
    liac_seconds, (_, liac_values) = _best_time(lambda: read_with_liac_arff(path))
    numpy_seconds, table = _best_time(lambda: arff_io.read(path))
  np.testing.assert_array_equal(liac_values, table.values)
  print(f"liac-arff: {liac_seconds:.2f} s")
  print(f"arff_io (np.loadtxt): {numpy_seconds:.2f} s")


if __name__ == "__main__":
  main()
