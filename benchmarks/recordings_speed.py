"""Speed of the recordings pipeline on a 5-minute synthetic recording (16 kHz mono WAV):

- feature extraction (stew_tf.audio_features: read + eGeMAPS functionals every 40 ms over the
  window; each default window: 4 s for arousal, 6 s otherwise), pinned to one CPU core, as a
  multiple of real time;
- stew_tf.predict --audio end to end (a fresh process: imports, model load, extraction, scoring,
  CSV), wall time.

Each is repeated (--repeats) and the median printed, with the load average before and after (the
machine may be shared). Usage, from the repository root:
  PYTHONPATH=. .venv/bin/python benchmarks/recordings_speed.py [--repeats=5] [--export_dir=W/export]
Without --export_dir, a randomly initialised audio model is exported with the default recipe
(6 s window: the default for valence and any label but arousal).
"""

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from stew_tf import audio_features
from stew_tf import tfds_builders

SECONDS = 300.0


def _random_export(folder):
  import keras  # pylint: disable=import-outside-toplevel
  from stew_tf import export  # pylint: disable=import-outside-toplevel
  from stew_tf import models  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(0)
  dim = audio_features.FEATURE_DIM
  encoder = models.build_encoder(dim, gru_layers=1, dropout=0.1, mean=np.zeros(dim),
                                 variance=np.ones(dim), name="weak")
  classifier = models.build_classifier(models.LATENT_DIM, "regression", "weak", 0.3)
  predictor = models.build_predictor(encoder, classifier, "weak")
  return export.export_predictor(predictor, folder,
                                 feature_recipe=audio_features.recipe(audio_features.FRAMES))


def _median_seconds(run, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--export_dir", default=None)
  args = parser.parse_args()
  make_example_corpus = importlib.import_module(
      f"{tfds_builders.builder_module('recordings').__package__}.make_example_corpus")
  load_before = os.getloadavg()
  with tempfile.TemporaryDirectory() as folder:
    wav = os.path.join(folder, "call.wav")
    rng = np.random.default_rng(0)
    times = np.arange(0, SECONDS + 1, 0.01)
    curve = make_example_corpus.hidden_curve(times, rng)
    make_example_corpus.write_wav(
        wav, make_example_corpus.voice(lambda t: np.interp(t, times, curve), SECONDS, 16000, rng),
        16000)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})  # one core: openSMILE runs on one thread anyway
    results = {"recording_seconds": SECONDS, "cpu": cpu, "extraction": {}}
    for window in sorted(set(audio_features.AVEC2016_WINDOWS.values())):  # the defaults
      recipe = audio_features.recipe(audio_features.FRAMES, window)
      median, all_times = _median_seconds(
          lambda recipe=recipe: audio_features.frame_features(audio_features.read_wav(wav),
                                                              recipe), args.repeats)
      results["extraction"][f"window_{window:g}s"] = {
          "median_seconds": round(median, 3), "times_real_time": round(SECONDS / median, 1),
          "runs": [round(t, 3) for t in all_times]}
    os.sched_setaffinity(0, set(range(os.cpu_count())))
    export_dir = args.export_dir or _random_export(os.path.join(folder, "export"))
    command = [sys.executable, "-m", "stew_tf.predict", f"--export_dir={export_dir}",
               f"--audio={wav}", f"--output={os.path.join(folder, 'trace.csv')}"]
    median, all_times = _median_seconds(lambda: subprocess.run(command, check=True),
                                        max(3, args.repeats // 2))
    results["predict_end_to_end"] = {"median_seconds": round(median, 2),
                                     "runs": [round(t, 2) for t in all_times]}
  results["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
  results["cpus"] = os.cpu_count()
  results["extractor"] = audio_features.extractor_version()
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
