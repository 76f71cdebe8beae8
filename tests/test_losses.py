"""Tests of the masked losses and the DCCA total correlation, against NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from stew_tf import losses

JUNK = 1e30  # huge but finite, at padded steps


def _random_mask(rng, batch, time):
  """Right-padded mask with a different number of valid steps per row (at least one)."""
  lengths = rng.integers(1, time + 1, size=batch)
  lengths[0] = time
  return np.arange(time)[np.newaxis, :] < lengths[:, np.newaxis]


def _junk_at_padding(values, mask, rng):
  mask = mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
  junk = rng.choice([-JUNK, JUNK], size=values.shape)
  return np.where(mask, values, junk).astype(np.float32)


def _reference_total_correlation(strong_rows, weak_rows, r1=1e-3, r2=1e-3):
  """Eqs. 4-7 in float64 with np.linalg.eigh and np.linalg.svd."""
  def inverse_square_root(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return eigenvectors @ np.diag(eigenvalues ** -0.5) @ eigenvectors.T

  count = len(strong_rows) - 1
  h1 = strong_rows - strong_rows.mean(0)
  h2 = weak_rows - weak_rows.mean(0)
  sigma11 = h1.T @ h1 / count + r1 * np.eye(h1.shape[1])
  sigma22 = h2.T @ h2 / count + r2 * np.eye(h2.shape[1])
  sigma12 = h1.T @ h2 / count
  t_matrix = inverse_square_root(sigma11) @ sigma12 @ inverse_square_root(sigma22)
  return np.linalg.svd(t_matrix, compute_uv=False).sum()


def _correlated_views(rng, num_rows, strong_dim=4, weak_dim=3, noise=1.0):
  shared = rng.normal(size=(num_rows, 2))
  strong = shared @ rng.normal(size=(2, strong_dim)) + noise * rng.normal(
      size=(num_rows, strong_dim))
  weak = shared @ rng.normal(size=(2, weak_dim)) + noise * rng.normal(size=(num_rows, weak_dim))
  return strong, weak


# --- masked prediction and translation losses -------------------------------------------------


def test_masked_binary_crossentropy():
  rng = np.random.default_rng(0)
  mask = _random_mask(rng, 4, 6)
  labels = rng.integers(0, 2, size=mask.shape).astype(np.float64)
  probabilities = rng.uniform(size=mask.shape)
  probabilities[0, 0], labels[0, 0] = 0.0, 1.0  # clipped to 1e-7
  expected = []
  for y, p in zip(labels[mask], np.clip(probabilities[mask], 1e-7, 1 - 1e-7)):
    expected.append(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
  value = losses.masked_binary_crossentropy(_junk_at_padding(labels, mask, rng),
                                            _junk_at_padding(probabilities, mask, rng), mask)
  assert value.dtype == tf.float32 and value.shape == ()
  np.testing.assert_allclose(value, np.mean(expected), rtol=1e-5)


def test_masked_mse():
  rng = np.random.default_rng(1)
  mask = _random_mask(rng, 4, 6)
  labels, predictions = rng.normal(size=(2,) + mask.shape)
  expected = np.mean((labels[mask] - predictions[mask]) ** 2)
  value = losses.masked_mse(_junk_at_padding(labels, mask, rng),
                            _junk_at_padding(predictions, mask, rng), mask)
  np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_masked_mae_averages_over_steps_and_features():
  rng = np.random.default_rng(2)
  mask = _random_mask(rng, 3, 5)
  targets, predictions = rng.normal(size=(2, 3, 5, 7))
  valid_errors = [np.abs(targets[b, t] - predictions[b, t])
                  for b in range(3) for t in range(5) if mask[b, t]]
  expected = np.sum(valid_errors) / (len(valid_errors) * 7)
  value = losses.masked_mae(_junk_at_padding(targets, mask, rng),
                            _junk_at_padding(predictions, mask, rng), mask)
  np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.parametrize("loss", ["bce", "mse", "mae"])
def test_masked_losses_junk_gradients_and_empty_mask(loss):
  rng = np.random.default_rng(3)
  mask = _random_mask(rng, 3, 5)
  shape = mask.shape + ((4,) if loss == "mae" else ())
  labels = _junk_at_padding(rng.integers(0, 2, size=shape).astype(np.float32), mask, rng)
  predictions = tf.Variable(_junk_at_padding(rng.uniform(size=shape), mask, rng))
  function = {"bce": losses.masked_binary_crossentropy, "mse": losses.masked_mse,
              "mae": losses.masked_mae}[loss]
  with tf.GradientTape() as tape:
    value = function(labels, predictions, mask)
  gradient = tape.gradient(value, predictions).numpy()
  assert np.isfinite(value) and np.all(np.isfinite(gradient))
  assert np.all(gradient[~mask] == 0.0)

  with tf.GradientTape() as tape:
    empty = function(labels, predictions, np.zeros_like(mask))
  assert float(empty) == 0.0
  assert np.all(tape.gradient(empty, predictions).numpy() == 0.0)


def test_masked_losses_accept_float16():
  mask = np.array([[True, False]])
  value = losses.masked_mse(np.ones((1, 2), np.float16), np.zeros((1, 2), np.float16), mask)
  assert value.dtype == tf.float32
  assert float(value) == 1.0


# --- DCCA total correlation ------------------------------------------------------------------


def test_dcca_matches_numpy_reference_with_mask():
  rng = np.random.default_rng(4)
  mask = _random_mask(rng, 6, 20)
  strong, weak = (v.reshape(6, 20, -1) for v in _correlated_views(rng, 120))
  expected = _reference_total_correlation(strong[mask], weak[mask])
  value = losses.dcca_correlation(strong, weak, mask)
  np.testing.assert_allclose(value, expected, rtol=1e-4)
  junk_value = losses.dcca_correlation(_junk_at_padding(strong, mask, rng),
                                       _junk_at_padding(weak, mask, rng), mask)
  np.testing.assert_allclose(junk_value, expected, rtol=1e-4)
  assert value.dtype == tf.float32 and value.shape == ()


def test_dcca_perfectly_correlated_views():
  rng = np.random.default_rng(5)
  strong = rng.normal(size=(2000, 5))
  weak = strong @ rng.normal(size=(5, 5))  # invertible with probability 1
  mask = np.ones((1, 2000), bool)
  value = float(losses.dcca_correlation(strong[np.newaxis], weak[np.newaxis], mask))
  assert 4.95 < value <= 5.0
  np.testing.assert_allclose(value, _reference_total_correlation(strong, weak), rtol=1e-4)


def test_dcca_independent_views():
  rng = np.random.default_rng(6)
  strong, weak = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 3))
  mask = np.ones((1, 2000), bool)
  value = float(losses.dcca_correlation(strong[np.newaxis], weak[np.newaxis], mask))
  np.testing.assert_allclose(value, _reference_total_correlation(strong, weak), rtol=1e-4)
  assert value < 0.2


def test_dcca_is_the_trace_norm_not_the_frobenius_norm():
  rng = np.random.default_rng(7)
  strong = rng.normal(size=(500, 3))
  weak = strong + 0.5 * rng.normal(size=(500, 3))  # three comparable canonical correlations
  value = float(losses.dcca_correlation(strong[np.newaxis], weak[np.newaxis],
                                        np.ones((1, 500), bool)))
  # ||T||_F² = tr(Σ22⁻¹ Σ21 Σ11⁻¹ Σ12), the sum of squared singular values.
  h1, h2 = strong - strong.mean(0), weak - weak.mean(0)
  sigma11 = h1.T @ h1 / 499 + 1e-3 * np.eye(3)
  sigma22 = h2.T @ h2 / 499 + 1e-3 * np.eye(3)
  sigma12 = h1.T @ h2 / 499
  frobenius = np.sqrt(np.trace(
      np.linalg.solve(sigma22, sigma12.T) @ np.linalg.solve(sigma11, sigma12)))
  assert value > frobenius + 0.5
  np.testing.assert_allclose(value, _reference_total_correlation(strong, weak), rtol=1e-4)


def _dcca_gradients(strong, weak, mask):
  strong, weak = tf.Variable(strong, dtype=tf.float32), tf.Variable(weak, dtype=tf.float32)
  with tf.GradientTape() as tape:
    value = losses.dcca_correlation(strong, weak, mask)
  return [g.numpy() for g in tape.gradient(value, [strong, weak])]


def _finite_difference_gradients(strong, weak, mask, step=1e-6):
  """Central differences of the float64 reference, one valid entry at a time."""
  gradients = [np.zeros_like(strong, np.float64), np.zeros_like(weak, np.float64)]
  for view, gradient in enumerate(gradients):
    for index in zip(*np.nonzero(mask)):
      for feature in range(gradient.shape[-1]):
        shifted = []
        for sign in (1.0, -1.0):
          views = [strong.astype(np.float64), weak.astype(np.float64)]
          views[view][index + (feature,)] += sign * step
          shifted.append(_reference_total_correlation(views[0][mask], views[1][mask]))
        gradient[index + (feature,)] = (shifted[0] - shifted[1]) / (2 * step)
  return gradients


def test_dcca_gradient_matches_finite_differences():
  rng = np.random.default_rng(8)
  mask = _random_mask(rng, 3, 10)
  strong, weak = (v.reshape(3, 10, -1) for v in _correlated_views(rng, 30))
  gradients = _dcca_gradients(_junk_at_padding(strong, mask, rng),
                              _junk_at_padding(weak, mask, rng), mask)
  for gradient, expected in zip(gradients, _finite_difference_gradients(strong, weak, mask)):
    np.testing.assert_allclose(gradient, expected, atol=2e-4 * np.abs(expected).max())
    assert np.all(gradient[~mask] == 0.0)


@pytest.mark.parametrize("case", ["identical_views", "isotropic_views"])
def test_dcca_gradient_with_repeated_eigenvalues(case):
  if case == "identical_views":
    strong = np.random.default_rng(9).normal(size=(1, 30, 4))
    weak = strong.copy()
  else:
    # ±e_i and ±2e_i: exactly centred, Σ11 = Σ22 ∝ I, and T ∝ a permutation, so every
    # eigenvalue and every singular value is repeated.
    identity = np.eye(4)
    strong = np.concatenate([identity, -identity, 2 * identity, -2 * identity])[np.newaxis]
    weak = strong[..., ::-1]
  mask = np.ones(strong.shape[:2], bool)
  gradients = _dcca_gradients(strong, weak, mask)
  for gradient, expected in zip(gradients, _finite_difference_gradients(strong, weak, mask)):
    assert np.all(np.isfinite(gradient))
    # The gradient is only O(r1, r2) here: the views are already as correlated as can be.
    np.testing.assert_allclose(gradient, expected, atol=2e-3 * np.abs(expected).max())


def test_dcca_in_tf_function_with_dynamic_shapes():
  spec = tf.TensorSpec([None, None, None], tf.float32)

  @tf.function(input_signature=[spec, spec, tf.TensorSpec([None, None], tf.bool)])
  def value_and_gradient(strong, weak, mask):
    with tf.GradientTape() as tape:
      tape.watch(strong)
      value = losses.dcca_correlation(strong, weak, mask)
    return value, tape.gradient(value, strong)

  rng = np.random.default_rng(10)
  for batch, time, strong_dim, weak_dim in ((2, 15, 3, 2), (4, 9, 5, 5)):
    mask = _random_mask(rng, batch, time)
    strong = rng.normal(size=(batch, time, strong_dim)).astype(np.float32)
    weak = rng.normal(size=(batch, time, weak_dim)).astype(np.float32)
    value, gradient = value_and_gradient(strong, weak, mask)
    np.testing.assert_allclose(value, _reference_total_correlation(strong[mask], weak[mask]),
                               rtol=1e-4)
    assert np.all(np.isfinite(gradient.numpy()))


def test_dcca_needs_two_valid_steps():
  mask = np.zeros((2, 3), bool)
  mask[1, 0] = True
  features = np.ones((2, 3, 2), np.float32)
  with pytest.raises(tf.errors.InvalidArgumentError, match="at least 2 valid"):
    losses.dcca_correlation(features, features, mask)
  with pytest.raises(tf.errors.InvalidArgumentError, match="at least 2 valid"):
    tf.function(losses.dcca_correlation)(features, features, mask)
