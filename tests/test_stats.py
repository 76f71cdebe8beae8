"""stew_tf.stats against hand-computed values."""

import math

import numpy as np
import pytest

from stew_tf import stats


def _accuracy(labels, scores):
  return float(np.mean((scores >= 0.5) == (labels == 1)))


def test_mean_std_is_the_sample_std():
  # 60, 62, 67: mean 63, deviations -3, -1, 4, sample variance 26 / 2.
  assert stats.mean_std([60, 62, 67]) == pytest.approx((63.0, math.sqrt(13)))
  assert stats.mean_std([5.0]) == (5.0, None)
  with pytest.raises(ValueError, match="at least one"):
    stats.mean_std([])


def test_t_quantiles_from_the_table_and_beyond():
  assert stats.t_quantile_975(1) == 12.706
  assert stats.t_quantile_975(4) == 2.776
  assert stats.t_quantile_975(30) == 2.042
  # Published values beyond the table, from the expansion.
  for df, value in [(31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799)]:
    assert stats.t_quantile_975(df) == pytest.approx(value, abs=1e-4)
  assert stats.t_quantile_975(10 ** 6) == pytest.approx(1.96, abs=1e-3)
  with pytest.raises(ValueError, match="df >= 1"):
    stats.t_quantile_975(0)


def test_mean_interval_by_hand():
  # 1..5: mean 3, sample sd sqrt(2.5), standard error sqrt(2.5 / 5); t(4) = 2.776.
  half_width = 2.776 * math.sqrt(0.5)
  assert stats.mean_interval([1, 2, 3, 4, 5]) == pytest.approx((3 - half_width, 3 + half_width))
  assert stats.mean_interval([7.0]) is None


def test_paired_difference_by_hand():
  a = {0: 0.60, 1: 0.62, 2: 0.67}
  b = {0: 0.61, 1: 0.60, 2: 0.60, 3: 0.50}  # seed 3 has no partner: left out
  result = stats.paired_difference(a, b)
  # Differences -0.01, 0.02, 0.07: mean 0.08 / 3; sample variance 0.0032667 / 2.
  mean = 0.08 / 3
  half_width = 4.303 * math.sqrt(((-0.01 - mean) ** 2 + (0.02 - mean) ** 2
                                  + (0.07 - mean) ** 2) / 2 / 3)
  assert result["mean"] == pytest.approx(mean)
  assert (result["low"], result["high"]) == pytest.approx((mean - half_width, mean + half_width))
  assert half_width == pytest.approx(0.1004, abs=1e-4)
  assert (result["positive"], result["n"], result["seeds"]) == (2, 3, [0, 1, 2])
  one = stats.paired_difference({0: 2.0}, {0: 1.0})
  assert (one["mean"], one["low"], one["high"], one["positive"]) == (1.0, None, None, 1)
  with pytest.raises(ValueError, match="No seed to pair"):
    stats.paired_difference({0: 1.0}, {1: 1.0})


def test_verdict():
  assert stats.verdict((0.1, 2.0)) == "helps"
  assert stats.verdict((-2.0, -0.1)) == "hurts"
  assert stats.verdict((-0.1, 2.0)) == "no detectable difference"
  assert stats.verdict(None) == "no detectable difference"
  assert stats.verdict((None, None)) == "no detectable difference"
  assert stats.verdict((-0.3, -0.1), higher_is_better=False) == "helps"  # e.g. MAE went down


def test_bootstrap_of_two_clips_matches_the_exact_distribution():
  # Clip 0 is right, clip 1 wrong (one segment each). Resamples: {0, 0} (1/4) accuracy 1,
  # {0, 1} (1/2) accuracy 0.5, {1, 1} (1/4) accuracy 0: 2.5 % and 97.5 % percentiles 0 and 1.
  run = (np.array([0, 1]), np.array([1.0, 1.0]), np.array([0.9, 0.1]))
  result = stats.bootstrap_interval(_accuracy, [run], resamples=2000, seed=3)
  assert (result["estimate"], result["low"], result["high"]) == (0.5, 0.0, 1.0)
  assert (result["clips"], result["seeds"], result["resamples"]) == (2, 1, 2000)


def test_bootstrap_applies_one_draw_to_every_seed():
  # Seed A is right on clip 0 and wrong on clip 1, seed B the opposite (two segments per clip,
  # segments in a shuffled order). Any draw of k copies of clip 0 and 2 - k of clip 1 gives
  # A k / 2 and B (2 - k) / 2: the mean over seeds is always 0.5. Drawing clips independently
  # per seed would spread it.
  clips = np.array([1, 0, 1, 0])
  labels = np.ones(4)
  seed_a = (clips, labels, np.where(clips == 0, 0.9, 0.1))
  seed_b = (clips, labels, np.where(clips == 0, 0.1, 0.9))
  result = stats.bootstrap_interval(_accuracy, [seed_a, seed_b], resamples=200)
  assert (result["estimate"], result["low"], result["high"]) == (0.5, 0.5, 0.5)


def test_bootstrap_is_deterministic_and_covers_the_estimate():
  rng = np.random.default_rng(0)
  clips = np.repeat(np.arange(30), 10)
  runs = [(clips, rng.integers(0, 2, 300).astype(float), rng.uniform(size=300))
          for _ in range(3)]
  first = stats.bootstrap_interval(_accuracy, runs, resamples=300, seed=1)
  assert first == stats.bootstrap_interval(_accuracy, runs, resamples=300, seed=1)
  assert first != stats.bootstrap_interval(_accuracy, runs, resamples=300, seed=2)
  assert first["low"] < first["estimate"] < first["high"]
  # About 0.5 accuracy on 30 clips x 3 seeds: the interval is some points wide, not 0 or 1.
  assert 0.02 < first["high"] - first["low"] < 0.3


def test_bootstrap_refuses_seeds_with_other_clips():
  run = (np.array([0, 1]), np.ones(2), np.ones(2))
  other = (np.array([0, 2]), np.ones(2), np.ones(2))
  with pytest.raises(ValueError, match="clips of seed #1 differ"):
    stats.bootstrap_interval(_accuracy, [run, other])
  with pytest.raises(ValueError, match="at least one seed"):
    stats.bootstrap_interval(_accuracy, [])
