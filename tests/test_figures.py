"""stew_tf.figures: verdict.png from fabricated results.json dicts; the plotted numbers are
checked against differences, intervals and paper claims computed here."""

import math
import struct

import pytest

from stew_tf import figures
from stew_tf import paper
from stew_tf import records
from stew_tf import reproduce
from stew_tf import table_rows
from tests.test_report import CONTROL_ACCURACIES
from tests.test_report import T_975_DF4
from tests.test_report import _classification
from tests.test_report import _control_results
from tests.test_report import _paired_results
from tests.test_report import _results

T_975_DF2 = 4.303  # the 97.5 % quantile of Student's t with 2 degrees of freedom
LINK = "![Paired differences](verdict.png)"


def _claim(method):
  """The paper's accuracy of `method` text → audio minus its audio Encoder + Classifier's."""
  return (paper.PAPER[("mosi", "sentiment", method, "text", "audio")]["accuracy"]
          - paper.PAPER[("mosi", "sentiment", "enc_cls", None, "audio")]["accuracy"])


def _plotted(axes, gid):
  (artist,) = axes.findobj(lambda a: a.get_gid() == gid)
  return artist


def _by_row(axes):
  """{y tick label's first line: (y, mean, (low, high), seed values, paper's claim)}."""
  means = dict(zip(_plotted(axes, "mean").get_ydata(), _plotted(axes, "mean").get_xdata()))
  intervals = {seg[0][1]: (seg[0][0], seg[1][0])
               for seg in _plotted(axes, "interval").get_segments()}
  claims = dict(zip(_plotted(axes, "paper_claim").get_ydata(),
                    _plotted(axes, "paper_claim").get_xdata()))
  dots = _plotted(axes, "seeds").get_offsets()
  found = {}
  for y, label in zip(axes.get_yticks(), axes.get_yticklabels()):
    # A row's seed dots lie within half a row below its line.
    seeds = sorted(x for x, dot_y in dots if y - 0.5 < dot_y <= y)
    found[label.get_text().splitlines()[0]] = (means[y], intervals.get(y), seeds, claims.get(y))
  return found


def test_each_transfer_row_shows_its_paired_difference_interval_seeds_and_the_papers_claim():
  figure = figures.verdict_figure(table_rows.summarize(_paired_results()))
  (axes,) = figure.axes
  rows = _by_row(axes)
  assert list(rows) == ["CM-StEW, text → audio (sentiment)",
                        "CM-StEW - LFA, text → audio (sentiment)"]
  # Accuracy minus enc_cls's (55, 50, 60 %): cm_stew 60, 62, 67 -> 5, 12, 7 (sd sqrt(13));
  # no_lfa 60, 56, 67 -> 5, 6, 7 (sd 1).
  mean, interval, seeds, claim = rows["CM-StEW, text → audio (sentiment)"]
  half_width = T_975_DF2 * math.sqrt(13 / 3)
  assert mean == pytest.approx(8.0) and seeds == pytest.approx([5, 7, 12])
  assert interval == pytest.approx((8 - half_width, 8 + half_width), abs=1e-3)
  assert claim == pytest.approx(_claim("cm_stew")) and claim == pytest.approx(64.8 - 61.0)
  mean, interval, seeds, claim = rows["CM-StEW - LFA, text → audio (sentiment)"]
  half_width = T_975_DF2 / math.sqrt(3)
  assert mean == pytest.approx(6.0) and seeds == pytest.approx([5, 6, 7])
  assert interval == pytest.approx((6 - half_width, 6 + half_width), abs=1e-3)
  assert claim == pytest.approx(_claim("no_lfa"))
  assert [line.get_text() for line in axes.get_yticklabels()][1].endswith("\nhelps")
  assert "accuracy" in axes.get_xlabel() and "percentage points" in axes.get_xlabel()
  assert list(_plotted(axes, "zero").get_xdata()) == [0, 0]
  (legend,) = figure.legends
  assert "paper's claim" in [text.get_text() for text in legend.get_texts()]


def test_a_single_seed_has_no_interval_and_data_outside_the_paper_no_claim():
  results = [_results(method, "audio" if method == "cm_stew" else None, "video", 0,
                      {"ccc": ccc}, {"ccc": 0.4}, (3, 4), dataset="stew_synthetic",
                      label="arousal", task="regression")
             for method, ccc in (("enc_cls", 0.5), ("cm_stew", 0.45))]
  (axes,) = figures.verdict_figure(table_rows.summarize(results)).axes
  ((mean, interval, seeds, claim),) = _by_row(axes).values()
  assert (mean, interval, claim) == (pytest.approx(-0.05), None, None)
  assert seeds == pytest.approx([-0.05])
  assert axes.get_xlabel().endswith("(CCC)")


def test_a_real_teacher_minus_its_control_has_a_panel_of_its_own():
  enc_cls, control = figures.verdict_figure(table_rows.summarize(_control_results())).axes
  assert "minus Encoder + Classifier" in enc_cls.get_xlabel()
  assert "minus its control" in control.get_xlabel()
  assert len(_by_row(enc_cls)) == 3  # every transfer row, the control's included
  ((label, (mean, interval, seeds, claim)),) = _by_row(control).items()
  assert label == "CM-StEW, text → audio (sentiment)"
  assert control.get_yticklabels()[0].get_text().splitlines()[1:] == [
      "minus label_echo → audio", "helps"]
  differences = [a - b for a, b in zip(CONTROL_ACCURACIES["cm_stew", "text"],
                                       CONTROL_ACCURACIES["cm_stew", "label_echo"])]
  # 2.5, 7.1, 3.6, 6.2, 5.4: mean 4.96, sample variance 14.212 / 4 = 3.553, t(4) = 2.776.
  half_width = T_975_DF4 * math.sqrt(3.553 / 5)
  assert mean == pytest.approx(4.96) and seeds == pytest.approx(sorted(differences))
  assert interval == pytest.approx((4.96 - half_width, 4.96 + half_width), abs=1e-3)
  assert claim is None  # the paper has no control


def _png_size(data):
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
  return struct.unpack(">II", data[16:24])


def _write_runs(out, results):
  for result in results:
    folder = out / f"{result['method']}_{result['weak']}" / f"seed{result['seed']}"
    folder.mkdir(parents=True)
    records.write_json(folder / "results.json", result)


def test_reproduce_writes_the_png_and_links_it_from_results_md(tmp_path):
  _write_runs(tmp_path, _paired_results())
  reproduce.write_report("mosi", tmp_path)
  data = (tmp_path / "verdict.png").read_bytes()
  # 9 x 3.7 inches at 100 dpi: 0.8 (title, legend) + 1.4 (axis) + 2 rows x 0.75.
  assert _png_size(data) == (900, 370)
  assert (tmp_path / "results.md").read_text().count(LINK) == 1
  reproduce.write_report("mosi", tmp_path)
  assert (tmp_path / "verdict.png").read_bytes() == data  # the same rows, the same bytes


def test_no_figure_and_no_link_without_a_paired_transfer_row(tmp_path):
  baselines_only = [_results("enc_cls", None, "audio", seed, _classification(0.6),
                             _classification(0.5), (0, 3)) for seed in range(2)]
  unpaired = _paired_results()[3:]  # transfer rows without their enc_cls row
  assert figures.verdict_figure(table_rows.summarize(unpaired)) is None
  (tmp_path / "verdict.png").write_bytes(b"from an earlier report")
  _write_runs(tmp_path, baselines_only)
  reproduce.write_report("mosi", tmp_path)
  assert not (tmp_path / "verdict.png").exists()
  assert "verdict.png" not in (tmp_path / "results.md").read_text()
