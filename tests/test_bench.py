"""A smoke test of stew_tf.bench: two steps on the MOSI shape give the documented JSON (no timing
assertions: the numbers depend on the machine)."""

import json

from stew_tf import bench


def test_mosi_shape_gives_every_key_and_one_trace_per_stage():
  results = json.loads(json.dumps(bench.run_benchmark(
      ["mosi"], steps=2, warmup_steps=1, inference_calls=2, max_seconds=0.0)))
  assert set(results) == {"date", "device", "versions", "shapes", "peak_host_memory_mib",
                          "wall_s"}
  assert results["device"]["type"] in ("CPU", "GPU") and results["device"]["name"]
  assert set(results["versions"]) == {"python", "tensorflow", "keras", "numpy"}
  assert results["peak_host_memory_mib"] > 0
  mosi = results["shapes"]["mosi"]
  assert mosi["strong"] == "text (100-d)" and mosi["weak"] == "audio (73-d)"
  assert (mosi["clips"], mosi["padded_time"]) == (32, 63)
  assert 32 * 12 <= mosi["real_segments"] <= 32 * 63
  for stage in ("stage1", "stage2"):
    training = mosi[stage]
    assert set(training) == {"clips_per_s", "segments_per_s", "step_ms", "timed_steps",
                             "warmup_steps", "traces"}
    assert set(training["step_ms"]) == {"mean", "p50", "p90"}
    assert training["timed_steps"] == 2 and training["traces"] == 1
    assert training["segments_per_s"] > training["clips_per_s"] > 0
  serving = mosi["serving"]
  assert set(serving) == {"latency_1_clip_ms", "timed_1_clip_calls", "batch_clips", "batch_ms",
                          "batch_clips_per_s", "timed_batch_calls"}
  assert set(serving["latency_1_clip_ms"]) == {"mean", "p50", "p90"}
  assert serving["batch_clips"] == 32 and serving["batch_clips_per_s"] > 0
