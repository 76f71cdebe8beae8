"""Writes a synthetic corpus of recordings (numpy only): a hidden curve drives a voice's pitch and
loudness and, through noise, a timestamped `face` table; the label is the curve itself.

  python datasets/recordings/make_example_corpus.py DIR [--recordings=6] [--seconds=60] [--seed=0]

`write_corpus` is also what the tests use; `python ... --dummy` rewrites dummy_data/ (seeded).
"""

import argparse
import json
import pathlib

import numpy as np

DUMMY_DATA = pathlib.Path(__file__).resolve().parent / "dummy_data"
FACE_DIM = 6
FACE_FPS = 30.0  # a video frame rate other than the 25 Hz of the features, to be resampled
LABEL_STEP = 0.1  # seconds between two ratings


def hidden_curve(times, rng):
  """A smooth curve in about [-0.8, 0.8]: a few slow sinusoids with random periods and phases."""
  curve = np.zeros_like(times)
  for _ in range(3):
    period, phase = rng.uniform(8.0, 25.0), rng.uniform(0, 2 * np.pi)
    curve += np.sin(2 * np.pi * times / period + phase)
  return 0.8 * curve / 3


def voice(curve_at, seconds, sample_rate, rng):
  """A voiced signal: harmonics of a pitch of 140 Hz * 2^(curve / 2) (±6 semitones), loudness
  ±10 dB with the curve, syllables at 4 Hz with short pauses, and a little noise."""
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  curve = curve_at(t)
  f0 = 140.0 * 2 ** (curve / 2)
  phase = 2 * np.pi * np.cumsum(f0) / sample_rate
  harmonics = sum(np.sin(k * phase) / k for k in range(1, 8))
  syllables = np.clip(2.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)) + 1, 0, 1)
  amplitude = 0.05 * 10 ** (curve / 2)
  return amplitude * syllables * harmonics + 0.002 * rng.normal(size=t.size)


def write_wav(path, samples, sample_rate):
  import soundfile  # pylint: disable=import-outside-toplevel
  soundfile.write(str(path), np.asarray(samples, np.float32), sample_rate, subtype="PCM_16")


def _write_csv(path, header, rows):
  lines = [",".join(header)] + [",".join(f"{v:.5g}" for v in row) for row in rows]
  path.write_text("\n".join(lines) + "\n")


def write_corpus(root, splits, seconds=60.0, sample_rates=None, stereo=(), label="arousal",
                 seed=0, spec_extra=None, segment_seconds=None):
  """Writes spec.json, splits.csv, audio/, labels/ and face/; returns {recording: curve function}.

  `splits`: {recording: split}; `sample_rates`: {recording: rate} (default 16000); `stereo`: the
  recordings written with two channels; `segment_seconds`: write start,end,<label> segment labels
  of that length instead of a continuous rating.
  """
  root = pathlib.Path(root)
  for folder in ("audio", "labels", "face"):
    (root / folder).mkdir(parents=True, exist_ok=True)
  spec = {"task": "regression", "label": label, **(spec_extra or {})}
  task = spec["task"]
  (root / "spec.json").write_text(json.dumps(spec) + "\n")
  (root / "splits.csv").write_text(
      "recording,split\n" + "".join(f"{name},{split}\n" for name, split in splits.items()))
  rng = np.random.default_rng(seed)
  face_weights = rng.normal(size=FACE_DIM)
  curves = {}
  for name in splits:
    grid = np.arange(0, seconds + 1, 0.01)
    values = hidden_curve(grid, rng)
    curves[name] = curve_at = lambda t, grid=grid, values=values: np.interp(t, grid, values)
    rate = (sample_rates or {}).get(name, 16000)
    samples = voice(curve_at, seconds, rate, rng)
    write_wav(root / "audio" / f"{name}.wav",
              np.stack([samples, 0.5 * samples], axis=1) if name in stereo else samples, rate)
    face_times = np.arange(0, seconds + 1e-9, 1 / FACE_FPS)
    face = (curve_at(face_times)[:, None] * face_weights
            + 0.5 * rng.normal(size=(len(face_times), FACE_DIM)))
    _write_csv(root / "face" / f"{name}.csv", ["time"] + [f"au{i}" for i in range(FACE_DIM)],
               np.column_stack([face_times, face]))
    if segment_seconds:
      starts = np.arange(0, seconds - segment_seconds + 1e-9, segment_seconds)
      means = [curve_at(np.linspace(s, s + segment_seconds, 50)).mean() for s in starts]
      targets = (np.array(means) > 0).astype(float) if task == "classification" else means
      _write_csv(root / "labels" / f"{name}.csv", ["start", "end", label],
                 np.column_stack([starts, starts + segment_seconds, targets]))
    else:
      label_times = np.arange(0, seconds + 1e-9, LABEL_STEP)
      _write_csv(root / "labels" / f"{name}.csv", ["time", label],
                 np.column_stack([label_times, curve_at(label_times)]))
  return curves


def write_dummy_data():
  """dummy_data/: three 4 s recordings at 8 kHz (one stereo), 2 s feature windows."""
  write_corpus(DUMMY_DATA, {"rec_a": "train", "rec_b": "validation", "rec_c": "test"},
               seconds=4.0, sample_rates={"rec_a": 8000, "rec_b": 8000, "rec_c": 8000},
               stereo=("rec_a",), spec_extra={"window_seconds": 2.0})


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("root", nargs="?", help="folder to write the corpus to")
  parser.add_argument("--recordings", type=int, default=6, help="train gets all but 2")
  parser.add_argument("--seconds", type=float, default=60.0)
  parser.add_argument("--seed", type=int, default=0, help="another seed: other curves and voices")
  parser.add_argument("--dummy", action="store_true", help="rewrite dummy_data/ instead")
  args = parser.parse_args()
  if args.dummy:
    write_dummy_data()
    return
  names = [f"rec_{i:02d}" for i in range(args.recordings)]
  splits = {name: "train" for name in names[:-2]}
  splits.update({names[-2]: "validation", names[-1]: "test"})
  write_corpus(args.root, splits, seconds=args.seconds, stereo=(names[0],),
               sample_rates={names[1]: 22050}, seed=args.seed)


if __name__ == "__main__":
  main()
