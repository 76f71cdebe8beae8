"""The continuous CMU-MOSI sentiment score of each utterance (labels/OpinionLevelSentiment.csv)."""

import re

from . import csv_io

SCORE_RANGE = (-3.0, 3.0)


def read_scores(file, transcripts, transcripts_name):
  """{key: score} for every utterance of transcripts.csv, checked against its binary label."""
  lines_of_keys = {}
  scores = {}
  for line, cells in csv_io.csv_rows(file):
    if len(cells) != 5:
      raise csv_io.error(file, line, "expected 5 cells (start, end, video id, utterance number, "
                         f"score), got {len(cells)}")
    if not re.fullmatch(r"\d+", cells[3]):
      raise csv_io.error(file, line, f"expected an utterance number, got {cells[3]!r}", 4)
    key = f"{cells[2]}_{int(cells[3])}"
    if key in lines_of_keys:
      raise csv_io.error(file, line, f"expected each utterance once, but {key!r} is also on line "
                         f"{lines_of_keys[key]}")
    try:
      score = float(cells[4])
    except ValueError:
      score = float("nan")
    if not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
      low, high = SCORE_RANGE
      raise csv_io.error(file, line, f"expected a score from {low:g} to {high:g}, got "
                         f"{cells[4]!r}", 5)
    lines_of_keys[key] = line
    scores[key] = score
  for utterance in transcripts:
    if utterance.key not in scores:
      raise ValueError(f"{file}: expected a score of every utterance of {transcripts_name}, but "
                       f"{utterance.key} (its line {utterance.line}) has none")
    score = scores[utterance.key]
    if utterance.label != float(score >= 0):
      raise csv_io.error(file, lines_of_keys[utterance.key],
                         f"expected a score that is >= 0 exactly when the binary label is 1, got "
                         f"{score:g} for {utterance.key}, labelled {utterance.label:g} on line "
                         f"{utterance.line} of {transcripts_name}")
  known = {utterance.key for utterance in transcripts}
  for key, line in lines_of_keys.items():
    if key not in known:
      raise csv_io.error(file, line, f"expected utterances of {transcripts_name}, got {key!r}")
  return scores
