"""Writes dummy_data/: fake-valued CMU-MOSI files in the real layout and format, for the tests.

Run once from the repository root: `python datasets/mosi/make_dummy_data.py`. The output is fixed
(seeded), so running it again rewrites the same files.

Like the real files: every cell is double-quoted, lines end in CRLF, `transcripts.csv` is in key
order (so "_10" comes before "_2"), and the modality files list a split's utterances in one shared,
scrambled order. Video ids contain "_" and "-" as real ones do, and two validation videos of the
builder (VALIDATION_VIDEOS) stand in the train files so that the validation split is not empty.
`labels/OpinionLevelSentiment.csv` is unquoted with CRLF ends, like the real score file.
"""

import csv
import pathlib

import numpy as np

_DIMS = {"text": 100, "audio": 73, "video": 100}
# Utterances per video, by source split.
_VIDEOS = {
    "train": {"fake_train-A": 12, "fakeTrainB": 5, "fakeTrainC": 4,
              # Real validation ids (fake values): the builder's VALIDATION_VIDEOS picks them.
              "2iD-tVS8NPw": 3, "_dI--eQ6qVU": 4},
    "test": {"fake_test-D": 6, "fakeTestE": 3},
}
_SEED = 1606
# Scores as the real file writes them (0 counts as positive: label 1 is score >= 0).
_POSITIVE_SCORES = ("0", "0.2", "0.333333333", "1.4", "3")
_NEGATIVE_SCORES = ("-0.2", "-1.333333333", "-2.4", "-3")


def _write(path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("w", newline="") as f:
    csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)  # CRLF line ends, as in the source.


def main():
  out = pathlib.Path(__file__).resolve().parent / "dummy_data"
  rng = np.random.default_rng(_SEED)
  utterances = []  # (key, video number, label, split)
  video_number = 0
  for split, videos in _VIDEOS.items():
    for video, length in videos.items():
      video_number += 1
      labels = rng.integers(0, 2, size=length)
      labels[:2] = (0, 1)  # Both classes in every video.
      for number, label in enumerate(rng.permutation(labels), start=1):
        utterances.append((f"{video}_{number}", video_number, int(label), split))
  utterances.sort()
  _write(out / "transcripts.csv",
         [(key, f"FAKE TRANSCRIPT {row}", number, label)
          for row, (key, number, label, _) in enumerate(utterances)])
  for split in _VIDEOS:
    rows = [row for row, utterance in enumerate(utterances) if utterance[3] == split]
    rows = rng.permutation(rows).tolist()
    labels = [utterances[row][2] for row in rows]
    features = {m: rng.normal(scale=0.5, size=(len(rows), dim)) for m, dim in _DIMS.items()}
    # The index file repeats the text features at lower precision, as the source does.
    _write(out / f"text_{split}.csv",
           [[row, *(f"{v:.4g}" for v in values)] for row, values in zip(rows, features["text"])])
    for modality, values in features.items():
      _write(out / modality / f"{modality}_{split}0.csv",
             [[*(f"{v:.6g}" for v in row), label] for row, label in zip(values, labels)])
  _write_scores(out / "labels" / "OpinionLevelSentiment.csv", utterances)


def _video_and_number(utterance):
  video, number = utterance[0].rsplit("_", 1)
  return video, int(number)


def _write_scores(path, utterances):
  """The score file: unquoted, CRLF, by video; each score agrees with its binary label."""
  rng = np.random.default_rng(_SEED + 1)  # apart from the feature files' generator
  rows = []
  for key, _, label, _ in sorted(utterances, key=_video_and_number):
    video, number = key.rsplit("_", 1)
    start = rng.uniform(0, 100)
    score = rng.choice(_POSITIVE_SCORES if label else _NEGATIVE_SCORES)
    rows.append(f"{start:.8f},{start + rng.uniform(1, 9):.8f},{video},{number},{score}")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes("".join(row + "\r\n" for row in rows).encode())


if __name__ == "__main__":
  main()
