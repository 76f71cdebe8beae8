"""Statistics for comparing runs: mean ± std over seeds, 95 % t-intervals, paired differences by
seed, a bootstrap over test clips pooled over seeds, and the verdict an interval gives.

Only NumPy: the t quantiles come from a table (df 1..30) and an expansion beyond it.
"""

import math
import statistics

import numpy as np

# 97.5 % quantiles of Student's t for df = 1..30 (any statistics table).
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
          2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
          2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_NORMAL_975 = 1.959964

VERDICTS = ("helps", "no detectable difference", "hurts")


def mean_std(values):
  """Mean and sample standard deviation (ddof = 1) of `values`; std is None for one value."""
  values = list(values)
  if not values:
    raise ValueError("mean_std needs at least one value.")
  return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def t_quantile_975(df):
  """The 97.5 % quantile of Student's t with `df` degrees of freedom (two-sided 95 %).

  df 1..30 from the table; beyond, the Cornish-Fisher expansion in 1/df (Abramowitz and Stegun
  26.7.5), which is within 1e-4 of the exact value there.
  """
  if df < 1:
    raise ValueError(f"A t quantile needs df >= 1; got {df}.")
  if df <= len(_T_975):
    return _T_975[df - 1]
  z = _NORMAL_975
  terms = ((z ** 3 + z) / 4,
           (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96,
           (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384,
           (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160)
  return z + sum(term / df ** (power + 1) for power, term in enumerate(terms))


def mean_interval(values):
  """The 95 % t-interval (low, high) for the mean of `values`; None for fewer than 2 values."""
  values = list(values)
  mean, std = mean_std(values)
  if std is None:
    return None
  half_width = t_quantile_975(len(values) - 1) * std / math.sqrt(len(values))
  return mean - half_width, mean + half_width


def paired_difference(a, b):
  """The difference a - b paired by seed, over the seeds both have.

  Args:
    a: {seed: value}, e.g. a transfer method's test accuracy per seed.
    b: {seed: value}, e.g. the labels-only baseline's.

  Returns:
    {"mean", "low", "high" (the 95 % t-interval of the mean difference; None for one seed),
     "positive" (seeds where a > b), "n" (paired seeds), "seeds" (their list),
     "per_seed" ({seed: a - b})}.

  Raises:
    ValueError: No seed is in both.
  """
  seeds = sorted(set(a) & set(b))
  if not seeds:
    raise ValueError(f"No seed to pair: {sorted(a)} against {sorted(b)}.")
  differences = [a[seed] - b[seed] for seed in seeds]
  interval = mean_interval(differences)
  return {"mean": statistics.fmean(differences),
          "low": interval and interval[0], "high": interval and interval[1],
          "positive": sum(d > 0 for d in differences), "n": len(seeds), "seeds": seeds,
          "per_seed": dict(zip(seeds, differences))}


def verdict(interval, higher_is_better=True):
  """"helps", "hurts" or "no detectable difference" from a difference's 95 % interval.

  Args:
    interval: (low, high) of a difference (new - baseline); None (one seed: no interval) gives
      "no detectable difference".
    higher_is_better: False for errors such as MAE, where a negative difference helps.
  """
  if interval is None or interval[0] is None:
    return VERDICTS[1]
  low, high = interval
  if low > 0:
    return VERDICTS[0] if higher_is_better else VERDICTS[2]
  if high < 0:
    return VERDICTS[2] if higher_is_better else VERDICTS[0]
  return VERDICTS[1]


def _segments_by_clip(clips, clip_ids):
  """For each id in clip_ids, the indices of its segments in `clips`."""
  order = np.argsort(clips, kind="stable")
  starts = np.searchsorted(clips[order], clip_ids, side="left")
  ends = np.searchsorted(clips[order], clip_ids, side="right")
  return [order[start:end] for start, end in zip(starts, ends)]


def bootstrap_interval(metric, runs, resamples=1000, seed=0):
  """95 % percentile bootstrap interval of a metric averaged over seeds, resampling test clips.

  Each resample draws as many clips as the test split has, with replacement, once, and applies
  the same draw to every seed's predictions (so the seeds stay paired); the resample's value is
  the mean over seeds of `metric` on the drawn clips' segments.

  Args:
    metric: f(labels, scores) -> float, on flat arrays of segments.
    runs: one (clips, labels, scores) triple of flat arrays per seed; `clips` is each segment's
      clip index, and every seed must have the same clips.
    resamples: number of bootstrap resamples.
    seed: seed of the resampling (the result is deterministic).

  Returns:
    {"estimate" (mean over seeds of the metric on all segments), "low", "high", "clips",
     "seeds", "resamples"}.

  Raises:
    ValueError: No run, or the runs' clips differ.
  """
  if not runs:
    raise ValueError("bootstrap_interval needs the predictions of at least one seed.")
  runs = [tuple(np.asarray(array) for array in run) for run in runs]
  clip_ids = np.unique(runs[0][0])
  for index, (clips, _, _) in enumerate(runs):
    if not np.array_equal(np.unique(clips), clip_ids):
      raise ValueError(f"The test clips of seed #{index} differ from those of seed #0: the "
                       f"bootstrap pairs seeds by clip.")
  segments = [_segments_by_clip(clips, clip_ids) for clips, _, _ in runs]
  draws = np.random.default_rng(seed).integers(0, len(clip_ids), (resamples, len(clip_ids)))
  values = np.empty(resamples)
  for row, draw in enumerate(draws):
    per_seed = []
    for (_, labels, scores), by_clip in zip(runs, segments):
      chosen = np.concatenate([by_clip[clip] for clip in draw])
      per_seed.append(metric(labels[chosen], scores[chosen]))
    values[row] = np.mean(per_seed)
  low, high = np.percentile(values, [2.5, 97.5])
  estimate = float(np.mean([metric(labels, scores) for _, labels, scores in runs]))
  return {"estimate": estimate, "low": float(low), "high": float(high),
          "clips": len(clip_ids), "seeds": len(runs), "resamples": resamples}
