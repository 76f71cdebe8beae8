"""stew_tf.table_rows and stew_tf.report: reproduce tables from fabricated results.json and
predictions.npz contents, with hand-checkable numbers."""

import csv
import io
import math

import numpy as np
import pytest

from stew_tf import baselines
from stew_tf import report
from stew_tf import table_rows


def _results(method, strong, weak, seed, test_metrics, validation_metrics, epochs,
             dataset="mosi", label="sentiment", task="classification", dropout=0.3, **protocol):
  """A results.json dict; the metrics map metric names to fractions; `protocol`: the trainer's
  select_on and validation."""
  encoder = None if method == "cls_only" else {"gru_layers": 2, "dropout": dropout}
  config = {"method": method, "data": {"dataset": dataset, "label": label, "task": task},
            "student": {"modality": weak, "encoder": encoder, "classifier_dropout": 0.3},
            "trainer": {"select_on": "validation", "validation": "split", **protocol}}
  return {"dataset": dataset, "label": label, "strong": strong, "weak": weak, "method": method,
          "seed": seed, "config": config, "strong_model": None,
          "weak_model": {"validation": validation_metrics, "test": test_metrics},
          "epochs": {"stage1": epochs[0], "stage2": epochs[1]}, "wall_seconds": 10.0,
          "export_dir": ""}


def _mosi_results():
  transfer = [
      _results("cm_stew", "text", "audio", seed, {"accuracy": acc, "f1_weighted": f1},
               {"accuracy": val, "f1_weighted": val}, epochs)
      for seed, acc, f1, val, epochs in [(0, 0.60, 0.58, 0.70, (10, 20)),
                                         (1, 0.62, 0.60, 0.71, (12, 22)),
                                         (2, 0.67, 0.62, 0.72, (14, 30))]]
  baseline = _results("enc_cls", None, "audio", 0, {"accuracy": 0.61, "f1_weighted": 0.6},
                      {"accuracy": 0.5, "f1_weighted": 0.5}, (0, 7), dropout=0.5)
  return transfer + [baseline]


def test_summarize_gives_mean_and_sample_std_next_to_the_paper():
  baseline, transfer = table_rows.summarize(_mosi_results())  # baselines come first
  assert (transfer["method"], transfer["strong"], transfer["weak"], transfer["seeds"]) == (
      "cm_stew", "text", "audio", 3)
  accuracy = transfer["metrics"]["accuracy"]
  # Test accuracy 60, 62, 67 %: mean 63, deviations -3, -1, 4, sample variance 26 / 2 = 13.
  assert accuracy["test"] == pytest.approx((63.0, math.sqrt(13)))
  assert accuracy["validation"] == pytest.approx((71.0, 1.0))
  assert accuracy["paper"] == 64.8
  f1 = transfer["metrics"]["f1_weighted"]
  assert f1["test"] == pytest.approx((60.0, 2.0))  # 58, 60, 62
  assert f1["paper"] == 64.3
  assert transfer["epochs"] == pytest.approx({"stage1": 12.0, "stage2": 24.0})
  assert transfer["paper_table"] == "IV" and transfer["dropout"] == [0.3]
  assert (baseline["method"], baseline["strong"], baseline["seeds"]) == ("enc_cls", None, 1)
  assert baseline["metrics"]["accuracy"]["test"] == pytest.approx((61.0, None))
  assert baseline["metrics"]["accuracy"]["paper"] == 61.0
  assert baseline["paper_table"] == "II" and baseline["dropout"] == [0.5]


def test_summarize_keeps_ccc_as_a_fraction():
  results = [_results("cm_stew", "audio", "video_appearance", seed, {"ccc": ccc}, {"ccc": 0.4},
                      (5, 6), dataset="recola", label="arousal", task="regression")
             for seed, ccc in [(0, 0.50), (1, 0.54)]]
  (row,) = table_rows.summarize(results)
  # Mean 0.52; deviations +-0.02: sample variance 2 * 0.0004 / 1.
  assert row["metrics"]["ccc"]["test"] == pytest.approx((0.52, math.sqrt(0.0008)))
  assert row["metrics"]["ccc"]["paper"] == 0.574 and row["paper_table"] == "V"


def test_a_cell_missing_from_the_paper_is_a_dash():
  result = _results("enc_cls", None, "audio", 0, {"accuracy": 0.5, "f1_weighted": 0.5},
                    {"accuracy": 0.5, "f1_weighted": 0.5}, (0, 1), dataset="stew_synthetic")
  rows = table_rows.summarize([result])
  assert rows[0]["metrics"]["accuracy"]["paper"] is None
  table_line = report.results_markdown("mosi", rows).splitlines()[-1]
  assert "| 50.0 | - | 50.0 | - |" in table_line


def test_markdown_states_cells_paper_conventions_and_trivial_baseline():
  rows = table_rows.baseline_rows(_mosi_audio_baselines()) + table_rows.summarize(_mosi_results())
  text = report.results_markdown("mosi", rows)
  assert "| CM-StEW | text → audio | 3 | 63.0 ± 3.6 | 64.8 | 60.0 ± 2.0 | 64.3 |" in text
  assert "| Encoder + Classifier | audio | 1 | 61.0 | 61.0 | 60.0 | 60.0 |" in text
  assert "| 12.0 / 24.0 | 0.3 |" in text
  assert "ddof = 1" in text
  assert "62.1 % accuracy and 47.6 % weighted F1" in text


def test_all_positive_baseline_on_the_mosi_test_split():
  accuracy, f1 = report.all_positive_baseline(285, 467)
  assert accuracy == pytest.approx(467 / 752)  # 62.1 %
  # F1 of the positive class 2 * 467 / (2 * 467 + 285), weighted by 467 / 752; negative F1 is 0.
  assert f1 == pytest.approx(934 / 1219 * 467 / 752)
  assert round(100 * f1, 1) == 47.6


def test_csv_has_test_val_and_paper_columns():
  rows = list(csv.DictReader(io.StringIO(report.results_csv(
      table_rows.summarize(_mosi_results())))))
  baseline, transfer = rows
  assert transfer["method"] == "cm_stew" and transfer["seeds"] == "3"
  assert float(transfer["test_accuracy_pct_mean"]) == pytest.approx(63.0)
  assert float(transfer["test_accuracy_pct_std"]) == pytest.approx(math.sqrt(13), abs=1e-3)
  assert float(transfer["paper_test_accuracy_pct"]) == 64.8
  assert float(transfer["validation_f1_weighted_pct_mean"]) == pytest.approx(71.0)
  assert float(transfer["epochs_stage2_mean"]) == 24.0
  assert baseline["strong"] == "" and baseline["test_accuracy_pct_std"] == ""


def _mosi_audio_baselines():
  """Baselines computed from fabricated segments; the test split is MOSI's 285 / 467."""
  rng = np.random.default_rng(0)

  def split(negative, positive, clips):
    labels = np.array([0.0] * negative + [1.0] * positive)
    features = rng.normal(size=(labels.size, 2)) + labels[:, None]
    return baselines.Segments(features, labels, np.arange(labels.size) % clips)
  computed = baselines.compute("classification", split(60, 40, 10), split(20, 20, 4),
                               split(285, 467, 31))
  return {("mosi", "sentiment", "audio"): computed}


def _classification(accuracy):
  """A full classification_metrics dict of a given accuracy (the rest fixed)."""
  return {"accuracy": accuracy, "f1_weighted": accuracy, "balanced_accuracy": 0.5,
          "precision_negative": 0.4, "precision_positive": 0.6, "recall_negative": 0.3,
          "recall_positive": 0.7, "positive_rate": 0.75, "confusion": [[1, 2], [3, 4]]}


def _paired_results(**protocol):
  """enc_cls and two transfer methods on audio, seeds 0-2, test accuracy in % below."""
  accuracies = {"enc_cls": (55, 50, 60), "cm_stew": (60, 62, 67), "no_lfa": (60, 56, 67)}
  return [_results(method, None if method == "enc_cls" else "text", "audio", seed,
                   _classification(value / 100), _classification(0.5), (1, 2), **protocol)
          for method, values in accuracies.items() for seed, value in enumerate(values)]


def test_paired_difference_to_enc_cls_by_seed():
  rows = {row["method"]: row for row in table_rows.summarize(_paired_results())}
  # cm_stew - enc_cls: 5, 12, 7 points: mean 8, sample sd sqrt(13), t(2) = 4.303.
  half_width = 4.303 * math.sqrt(13 / 3)
  cm_stew = rows["cm_stew"]["paired"]
  assert cm_stew["mean"] == pytest.approx(8.0)
  assert (cm_stew["low"], cm_stew["high"]) == pytest.approx((8 - half_width, 8 + half_width))
  assert (cm_stew["positive"], cm_stew["n"]) == (3, 3)
  assert cm_stew["verdict"] == "no detectable difference"  # the interval holds 0
  # no_lfa - enc_cls: 5, 6, 7: mean 6, sd 1: [6 - 2.484, 6 + 2.484] excludes 0.
  no_lfa = rows["no_lfa"]["paired"]
  assert (no_lfa["low"], no_lfa["high"]) == pytest.approx((6 - 4.303 / math.sqrt(3),
                                                           6 + 4.303 / math.sqrt(3)))
  assert no_lfa["verdict"] == "helps"
  assert rows["enc_cls"]["paired"] is None
  text = report.results_markdown("mosi", list(rows.values()))
  assert "| +8.0 [-1.0, +17.0], > 0 on 3 of 3 seeds | no detectable difference |" in text
  assert "| +6.0 [+3.5, +8.5], > 0 on 3 of 3 seeds | helps |" in text
  lines = {line["method"]: line for line in csv.DictReader(io.StringIO(report.results_csv(
      list(rows.values()))))}
  assert float(lines["no_lfa"]["paired_diff_low"]) == pytest.approx(6 - 4.303 / math.sqrt(3),
                                                                    abs=1e-3)
  assert (lines["no_lfa"]["paired_positive_seeds"], lines["no_lfa"]["verdict"]) == ("3", "helps")
  assert lines["enc_cls"]["verdict"] == ""


def test_secondary_metrics_are_columns_and_the_confusion_matrix_is_left_out():
  rows = table_rows.summarize(_paired_results())
  assert "confusion" not in rows[0]["metrics"]
  text = report.results_markdown("mosi", rows)
  assert "| Test bal. acc. % | Test answered positive % |" in text
  assert "| 50.0 ± 0.0 | 75.0 ± 0.0 |" in text
  (line, *_) = csv.DictReader(io.StringIO(report.results_csv(rows)))
  assert float(line["test_recall_positive_pct_mean"]) == pytest.approx(70.0)


def test_test_selected_runs_are_labelled_everywhere_and_kept_apart():
  label = "selected on test: optimistic, not a result"
  results = _paired_results() + _paired_results(select_on="test")[3:6]  # cm_stew on test
  rows = table_rows.summarize(results)
  selected = [row for row in rows if row["protocol"] == label]
  assert [row["method"] for row in selected] == ["cm_stew"]
  assert selected[0]["seeds"] == 3  # not mixed with the validation-selected cm_stew
  # Its enc_cls partner must use the same protocol: there is none, so no paired difference.
  assert "no Encoder + Classifier row with the same protocol" in selected[0]["paired"]["note"]
  text = report.results_markdown("mosi", rows)
  assert text.splitlines()[0].endswith(f"({label})")
  lines = [line for line in text.splitlines() if line.startswith("| sentiment |")]
  assert sum(label in line for line in lines) == 1
  assert sum("| selected on validation |" in line for line in lines) == 3
  lines = list(csv.DictReader(io.StringIO(report.results_csv(rows))))
  assert [line["protocol"] for line in lines].count(label) == 1
  # Validation-selected rows alone: no label in the title.
  plain = report.results_markdown("mosi", table_rows.summarize(_paired_results()))
  assert label not in plain


def test_no_validation_protocol_is_shown_and_has_no_val_cells():
  results = [_results("enc_cls", None, "audio", 0, _classification(0.6), None, (0, 30),
                      validation="none")]
  results[0]["weak_model"]["validation"] = None
  (row,) = table_rows.summarize(results)
  assert row["protocol"] == "no validation split: fixed epochs, last epoch"
  assert row["metrics"]["accuracy"]["validation"] is None
  text = report.results_markdown("mosi", [row])
  assert "| 60.0 | 61.0 | 60.0 | 60.0 | - | - |" in text


def test_bootstrap_interval_from_predictions_pooled_over_seeds():
  results = _paired_results()[:2]  # enc_cls, seeds 0 and 1
  # Both seeds: clip 0 right, clip 1 wrong. Resamples give 100 %, 50 % or 0 %: CI [0, 100].
  run = {"test_clip": np.array([0, 1], np.int32), "test_label": np.array([1.0, 1.0], np.float32),
         "test_score": np.array([0.9, 0.2], np.float32)}
  (row,) = table_rows.summarize(results, [run, run])
  assert (row["interval"]["low"], row["interval"]["high"]) == (0.0, 100.0)
  assert "| [0.0, 100.0] |" in report.results_markdown("mosi", [row])
  (missing,) = table_rows.summarize(results, [run, None])
  assert missing["interval"] == {"note": "no predictions.npz in 1 of 2 runs"}
  assert "no predictions.npz in 1 of 2 runs" in report.results_markdown("mosi", [missing])


def test_baseline_rows_are_computed_and_tabulated():
  rows = table_rows.baseline_rows(_mosi_audio_baselines())
  assert [row["method"] for row in rows] == ["trivial", "linear_probe"]
  trivial = rows[0]
  # Train is 60 % negative: always "negative" scores 285 / 752 on test.
  assert trivial["metrics"]["accuracy"]["test"] == pytest.approx((100 * 285 / 752, None))
  assert trivial["metrics"]["positive_rate"]["test"] == (0.0, None)
  assert trivial["interval"]["low"] < 100 * 285 / 752 < trivial["interval"]["high"]
  text = report.results_markdown("mosi", rows + table_rows.summarize(_paired_results()))
  assert "| sentiment | Trivial baseline | audio | - | 37.9 | - |" in text
  assert "| sentiment | Linear probe | audio | - |" in text
  assert "always \"negative\" (the train split's majority)" in text
  assert "| fit on train, chosen on validation |" in text
  lines = list(csv.DictReader(io.StringIO(report.results_csv(rows))))
  assert [line["method"] for line in lines] == ["trivial", "linear_probe"]
  assert lines[0]["seeds"] == "" and lines[0]["test_accuracy_pct_mean"] == "37.899"


def test_regression_rows_pair_on_ccc():
  def regression(ccc):
    return {"ccc": ccc, "pearson_r": ccc + 0.1, "mae": 0.2, "rmse": 0.3}
  results = [_results(method, "audio" if method == "cm_stew" else None, "video_appearance", seed,
                      regression(value), regression(0.4), (3, 4), dataset="recola",
                      label="arousal", task="regression")
             for method, values in {"enc_cls": (0.50, 0.52), "cm_stew": (0.55, 0.56)}.items()
             for seed, value in enumerate(values)]
  rows = {row["method"]: row for row in table_rows.summarize(results)}
  paired = rows["cm_stew"]["paired"]
  assert paired["metric"] == "ccc" and paired["mean"] == pytest.approx(0.045)
  # Differences 0.05, 0.04: sd 0.00707, t(1) = 12.706: the interval holds 0.
  assert paired["verdict"] == "no detectable difference"
  text = report.results_markdown("recola", list(rows.values()))
  assert "| Test Pearson r | Test MAE |" in text
  assert "Any constant prediction has CCC 0.000" in text


def test_tuned_settings_section_gives_each_rows_choice_and_the_budget():
  choice = {"trials": 30, "completed": 29, "validation": 0.61234, "objective":
            "validation accuracy", "sampler_seed": 1000, "trial_seconds": 90.0}
  choices = {"mosi_text_enc_cls": {**choice, "settings": {"dropout": 0.4, "learning_rate": 3e-4},
                                   "teacher": {}},
             "mosi_text_to_audio_cm_stew": {
                 **choice, "settings": {"alpha": 0.0123, "beta": 2.0},
                 "teacher": {"strong_dropout": "0.4", "strong_learning_rate": "0.0003"}}}
  text = report.tuned_markdown(choices)
  assert text.startswith("## Settings chosen on validation (equal budget: 30 trials per row)")
  assert "60 trials in all, 3 min of trials' wall time" in text
  assert ("| mosi_text_to_audio_cm_stew | 30 (29) | 0.6123 | alpha 0.0123, beta 2 | "
          "strong_dropout 0.4, strong_learning_rate 0.0003 | 1.5 min |") in text
  assert "| mosi_text_enc_cls | 30 (29) | 0.6123 | dropout 0.4, learning_rate 0.0003 | - |" in text


def test_a_metric_missing_from_older_runs_is_left_out_of_the_row():
  older = _results("enc_cls", None, "audio", 0, {"accuracy": 0.5, "f1_weighted": 0.5},
                   {"accuracy": 0.5, "f1_weighted": 0.5}, (0, 1))
  newer = _results("enc_cls", None, "audio", 1, _classification(0.7), _classification(0.6),
                   (0, 1))
  (row,) = table_rows.summarize([older, newer])
  assert list(row["metrics"]) == ["accuracy", "f1_weighted"]
  assert row["metrics"]["accuracy"]["test"] == pytest.approx((60.0, math.sqrt(200)))


def test_the_dropout_column_is_the_weak_encoders_and_none_for_a_classifier_alone():
  results = [_results(method, None, "audio", 0, _classification(0.6), _classification(0.5),
                      (0, 3), dropout=0.4) for method in ("cls_only", "enc_cls")]
  rows = {row["method"]: row for row in table_rows.summarize(results)}
  assert rows["enc_cls"]["dropout"] == [0.4] and rows["cls_only"]["dropout"] == []
  assert rows["enc_cls"]["task"] == "classification"


def test_regression_baselines_take_their_interval_on_ccc_and_claim_no_positive_class():
  rng = np.random.default_rng(4)

  def split(count):
    features = rng.normal(size=(count, 2))
    labels = np.tanh(features[:, 0] + 0.5 * rng.normal(size=count))
    return baselines.Segments(features, labels, np.arange(count) % 5)
  rows = table_rows.baseline_rows({("recola", "arousal", "audio"): baselines.compute(
      "regression", split(60), split(30), split(40))}, resamples=50)
  assert [row["task"] for row in rows] == ["regression", "regression"]
  lines = list(csv.DictReader(io.StringIO(report.results_csv(rows))))
  assert [line["ci_metric"] for line in lines] == ["ccc", "ccc"]
  assert "Always answering" not in report.results_markdown("recola", rows)


def test_the_verdict_figure_is_linked_below_the_table_only_when_drawn():
  rows = table_rows.summarize(_paired_results())
  linked = report.results_markdown("mosi", rows, figure="verdict.png").split("\n\n")
  table = next(i for i, part in enumerate(linked) if part.startswith("| Target |"))
  assert linked[table + 1].strip() == "![Paired differences](verdict.png)"
  assert "![" not in report.results_markdown("mosi", rows)


def test_several_teachers_pair_with_the_best_single_teacher_on_validation():
  def runs(strong, test, validation):
    return [_results("cm_stew", strong, "audio", seed, {"accuracy": t}, {"accuracy": v}, (5, 9))
            for seed, (t, v) in enumerate(zip(test, validation))]
  # video → audio is better on test but worse on validation: text → audio is the best single row.
  results = (runs("text", (0.50, 0.52, 0.54), (0.70, 0.70, 0.70))
             + runs("video", (0.60, 0.60, 0.60), (0.60, 0.60, 0.60))
             + runs("text+video", (0.55, 0.56, 0.60), (0.65, 0.65, 0.65)))
  rows = {row["strong"]: row for row in table_rows.summarize(results)}
  assert rows["text"]["paired_single"] is None and rows["video"]["paired_single"] is None
  best = rows["text+video"]["paired_single"]
  # 55 - 50, 56 - 52, 60 - 54: 5, 4, 6 points; mean 5, sd 1, t(2) = 4.303.
  assert (best["strong"], best["method"], best["validation"]) == ("text", "cm_stew",
                                                                   pytest.approx(70.0))
  assert (best["mean"], best["positive"], best["n"]) == (pytest.approx(5.0), 3, 3)
  assert (best["low"], best["high"]) == pytest.approx((5 - 4.303 / math.sqrt(3),
                                                       5 + 4.303 / math.sqrt(3)))
  assert best["verdict"] == "helps"
  text = report.results_markdown("mosi", list(rows.values()))
  assert ("| sentiment | CM-StEW | text+video → audio | CM-StEW text → audio (val 70.0) | "
          "+5.0 [+2.5, +7.5], > 0 on 3 of 3 seeds | helps | selected on validation |") in text


T_975_DF4 = 2.776  # the 97.5 % quantile of Student's t with 4 degrees of freedom (a t table)
# Test accuracy in % per seed 0-4 on stew_synthetic, whose control modality is label_echo.
CONTROL_ACCURACIES = {("enc_cls", None): (54.0, 64.0, 65.0, 55.0, 54.0),
                      ("cm_stew", "text"): (69.2, 68.8, 70.7, 72.0, 73.4),
                      ("cm_stew", "label_echo"): (66.7, 61.7, 67.1, 65.8, 68.0),
                      ("no_lfa", "text"): (60.0, 61.0, 62.0, 63.0, 64.0)}  # without a control


def _control_results(dataset="stew_synthetic"):
  return [_results(method, strong, "audio", seed, {"accuracy": value / 100},
                   {"accuracy": 0.5}, (3, 4), dataset=dataset)
          for (method, strong), values in CONTROL_ACCURACIES.items()
          for seed, value in enumerate(values)]


def test_a_real_teacher_pairs_against_the_control_teacher_of_its_method_by_seed():
  rows = {(row["method"], row["strong"]): row
          for row in table_rows.summarize(_control_results())}
  # The reference: numpy on the per-seed values above.
  differences = (np.array(CONTROL_ACCURACIES["cm_stew", "text"])
                 - np.array(CONTROL_ACCURACIES["cm_stew", "label_echo"]))
  half_width = T_975_DF4 * np.std(differences, ddof=1) / np.sqrt(differences.size)
  control = rows["cm_stew", "text"]["paired_control"]
  assert control["strong"] == "label_echo" and control["metric"] == "accuracy"
  assert control["mean"] == pytest.approx(differences.mean())
  assert (control["low"], control["high"]) == pytest.approx(
      (differences.mean() - half_width, differences.mean() + half_width), abs=1e-3)
  assert (control["positive"], control["n"]) == (int(np.sum(differences > 0)), 5)
  assert control["verdict"] == "helps"  # 2.5 to 7.1: the interval lies above 0
  # The control row itself, the labels-only row and a method without a control row: none.
  for key in [("cm_stew", "label_echo"), ("enc_cls", None), ("no_lfa", "text")]:
    assert rows[key]["paired_control"] is None, key
  text = report.results_markdown("synthetic", list(rows.values()))
  low, high = differences.mean() - half_width, differences.mean() + half_width
  assert (f"| sentiment | CM-StEW | text → audio | label_echo → audio | "
          f"{differences.mean():+.1f} [{low:+.1f}, {high:+.1f}], > 0 on 5 of 5 seeds | helps | "
          "selected on validation |") in text
  assert text.count("Against the control") == 1
  lines = {(line["method"], line["strong"]): line for line in csv.DictReader(io.StringIO(
      report.results_csv(list(rows.values()))))}
  line = lines["cm_stew", "text"]
  assert line["control_strong"] == "label_echo" and line["control_verdict"] == "helps"
  assert float(line["control_diff_low"]) == pytest.approx(low, abs=1e-3)
  assert (line["control_positive_seeds"], line["control_seeds"]) == ("5", "5")
  assert lines["no_lfa", "text"]["control_diff_mean"] == ""


def test_without_a_control_modality_no_row_pairs_against_a_control():
  # The same runs on MOSI, which declares no control modality: label_echo is a teacher there.
  rows = table_rows.summarize(_control_results(dataset="mosi"))
  assert table_rows.control_modality("mosi") is None
  assert [row["paired_control"] for row in rows] == [None] * len(rows)
  assert "Against the control" not in report.results_markdown("mosi", rows)
  assert "control_diff_mean" not in report.results_csv(rows)
