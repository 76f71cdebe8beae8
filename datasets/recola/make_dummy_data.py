r"""Writes a synthetic tree in the AVEC 2016 RECOLA layout.

The files have the real folder and file names, ARFF headers shaped like the real ones and 25 Hz
frames, but few frames and small synthetic values, so that they can ship with the builder
(`dummy_data/`) and be written into temporary folders by tests:

  features_{audio,video_appearance,video_geometric}/{arousal,valence}/{train,dev}_N.arff
  ratings_gold_standard/{arousal,valence}/{train,dev}_N.arff

Regenerate `dummy_data/` (from the repository root):

  python datasets/recola/make_dummy_data.py

Other code imports it (through `stew_datasets.recola.make_dummy_data`) and calls
`write_avec2016_tree(root, ...)`.
"""

import pathlib
import shutil

import numpy as np

FRAME_SECONDS = 0.04  # AVEC 2016 features and ratings: one row per 40 ms frame.
FEATURE_DIMS = {"audio": 88, "video_appearance": 168, "video_geometric": 632}
TARGETS = ("arousal", "valence")
PARTITIONS = ("train", "dev")
GOLD_STANDARD_DIR = "ratings_gold_standard"

# dummy_data/: 3.2 s recordings train_1 (train split), train_9 (validation) and dev_1 (test). Few
# frames and recordings: each frame of a recording takes ~1.8 kB per target (888 values).
DUMMY_NUM_FRAMES = 80
DUMMY_RECORDINGS = {"train": (1, 9), "dev": (1,)}
# The first columns of each feature file follow the label, so that a model can learn something.
_INFORMATIVE_COLUMNS = 4


def feature_dir(modality):
  """The folder of a modality's feature files, e.g. `features_audio`."""
  return f"features_{modality}"


def write_avec2016_tree(root, num_frames=400, recordings=tuple(range(1, 10)), seed=0,
                        targets=TARGETS, partitions=PARTITIONS, label_fn=None,
                        feature_fn=None, gold_delimiter=",", newline="\n"):
  """Writes the AVEC 2016 RECOLA files of synthetic recordings under `root`.

  Args:
    root: folder to write into (created if needed; existing files are overwritten).
    num_frames: rows per file (40 ms frames; the real recordings have 7501).
    recordings: recording numbers N, written as `{partition}_N` for every partition.
    seed: seed of the synthetic values.
    targets: which of `arousal` and `valence` to write.
    partitions: which of `train` and `dev` to write.
    label_fn: `label_fn(recording, frame_index) -> labels` with `recording` e.g. `"train_3"` and
      `frame_index` = arange(num_frames); labels must lie in [-1, 1]. Default: smooth random
      curves rounded to 3 decimals.
    feature_fn: `feature_fn(recording, modality, labels) -> [num_frames, dim] array`; NaN is
      written as ARFF's missing value `?`. Default: small integers, plus a few columns that
      follow the label.
    gold_delimiter: value separator of the gold-standard files (`,` or `;`).
    newline: line ending of every file (`"\n"` or `"\r\n"`).

  Returns:
    `root` as a pathlib.Path.
  """
  root = pathlib.Path(root)
  rng = np.random.default_rng(seed)
  frame_index = np.arange(num_frames)
  times = frame_index * FRAME_SECONDS
  for target in targets:
    for partition in partitions:
      for number in recordings:
        recording = f"{partition}_{number}"
        if label_fn is None:
          labels = _smooth_labels(rng, num_frames)
        else:
          labels = np.asarray(label_fn(recording, frame_index), dtype=np.float64)
        _write_arff(root / GOLD_STANDARD_DIR / target / f"{recording}.arff", "GOLDSTANDARD",
                    recording, times, labels[:, None], ["GoldStandard"], gold_delimiter,
                    newline)
        for modality, dim in FEATURE_DIMS.items():
          if feature_fn is None:
            values = _default_features(rng, labels, dim)
          else:
            values = np.asarray(feature_fn(recording, modality, labels), dtype=np.float64)
          names = [f"{modality}_feature_{i + 1}" for i in range(dim)]
          _write_arff(root / feature_dir(modality) / target / f"{recording}.arff",
                      f"AVEC2016_{modality}", recording, times, values, names, ",", newline)
  return root


def _smooth_labels(rng, num_frames):
  t = np.arange(num_frames) * FRAME_SECONDS
  curve = sum(rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * t / rng.uniform(4, 40)
                                             + rng.uniform(0, 2 * np.pi))
              for _ in range(3))
  return np.round(np.clip(curve, -1, 1), 3)


def _default_features(rng, labels, dim):
  values = rng.integers(0, 10, size=(len(labels), dim)).astype(np.float64)
  noise = rng.normal(scale=0.1, size=(len(labels), _INFORMATIVE_COLUMNS))
  values[:, :_INFORMATIVE_COLUMNS] = np.round(labels[:, None] + noise, 2)
  return values


def _write_arff(path, relation, recording, times, values, names, delimiter, newline):
  header = [f"@relation {relation}", "", "@attribute Instance_name string",
            "@attribute frameTime numeric"]
  header += [f"@attribute {name} numeric" for name in names]
  header += ["", "@data"]
  row_format = delimiter.join(["'%s'", "%.2f"] + ["%.6g"] * values.shape[1])
  # '%g' writes NaN as 'nan'; ARFF writes a missing value as '?'.
  rows = [(row_format % (recording, time, *row)).replace("nan", "?")
          for time, row in zip(times, values)]
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write(newline.join(header + rows) + newline)


def main():
  dummy_dir = pathlib.Path(__file__).resolve().parent / "dummy_data"
  shutil.rmtree(dummy_dir, ignore_errors=True)
  for seed, (partition, recordings) in enumerate(DUMMY_RECORDINGS.items()):
    write_avec2016_tree(dummy_dir, num_frames=DUMMY_NUM_FRAMES, recordings=recordings,
                        seed=seed, partitions=(partition,))
  print(f"Wrote {dummy_dir}")


if __name__ == "__main__":
  main()
