"""Predictions of a split and the degenerate-model check, against hand-made arrays."""

import numpy as np

from stew_tf import evaluation


def _predictions(labels, scores):
  return evaluation.Predictions(np.zeros(len(labels), np.int32),
                                np.asarray(labels, np.float32), np.asarray(scores, np.float32))


def test_a_classifier_answering_one_class_is_degenerate():
  found = evaluation.degeneracy("classification",
                                _predictions([0, 1] * 100, [0.7] * 199 + [0.2]))
  assert found["kind"] == "one_class" and found["answer"] == "positive"
  assert found["share"] == 0.995
  # 98 % one class is still a (poor) model, not a constant.
  assert evaluation.degeneracy("classification",
                               _predictions([0, 1] * 50, [0.7] * 98 + [0.2] * 2)) is None


def test_a_regressor_without_spread_is_degenerate():
  labels = np.linspace(-1, 1, 50)
  found = evaluation.degeneracy("regression", _predictions(labels, 0.3 + 1e-6 * labels))
  assert found["kind"] == "constant" and found["std"] < 1e-5
  assert evaluation.degeneracy("regression", _predictions(labels, 0.1 * labels)) is None


def test_prediction_arrays_are_named_for_predictions_npz():
  arrays = _predictions([1, 0], [0.9, 0.1]).arrays("test")
  assert sorted(arrays) == ["test_clip", "test_label", "test_score"]
