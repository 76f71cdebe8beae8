"""Training losses of CM-StEW (paper, eqs. 2-10), all masked to the valid time steps.

Every function casts its inputs to float32 (so float16 activations of a mixed-precision model
are fine), computes in float32 and returns a float32 scalar. Whatever stands at padded steps is
ignored, in the value and in the gradients.
"""

import tensorflow as tf

_PROBABILITY_EPSILON = 1e-7


def _as_float32(*tensors):
  return [tf.cast(t, tf.float32) for t in tensors]


def _masked_mean(values, mask):
  """Mean of `values` where `mask` (broadcastable to it) is True; 0 if there are none."""
  mask = tf.broadcast_to(mask, tf.shape(values))
  total = tf.reduce_sum(tf.where(mask, values, tf.zeros_like(values)))
  count = tf.reduce_sum(tf.cast(mask, tf.float32))
  return tf.math.divide_no_nan(total, count)


def masked_binary_crossentropy(labels, probabilities, mask):
  """Eq. 3: mean of -[y log p + (1 - y) log(1 - p)] over valid steps.

  Args:
    labels: [batch, time] targets in {0, 1}.
    probabilities: [batch, time] predicted probabilities; clipped to [1e-7, 1 - 1e-7].
    mask: [batch, time] bool, True on valid steps.

  Returns:
    A float32 scalar; 0 when no step is valid.
  """
  labels, probabilities = _as_float32(labels, probabilities)
  mask = tf.cast(mask, tf.bool)
  # Padded steps are replaced before the logs, so junk there cannot give Inf/NaN gradients.
  labels = tf.where(mask, labels, tf.zeros_like(labels))
  probabilities = tf.where(mask, probabilities, tf.fill(tf.shape(probabilities), 0.5))
  probabilities = tf.clip_by_value(probabilities, _PROBABILITY_EPSILON,
                                   1.0 - _PROBABILITY_EPSILON)
  cross_entropy = -(labels * tf.math.log(probabilities)
                    + (1.0 - labels) * tf.math.log(1.0 - probabilities))
  return _masked_mean(cross_entropy, mask)


def masked_mse(labels, predictions, mask):
  """Eq. 2: mean of (y - ŷ)² over valid steps.

  Args:
    labels: [batch, time] targets.
    predictions: [batch, time] predictions.
    mask: [batch, time] bool, True on valid steps.

  Returns:
    A float32 scalar; 0 when no step is valid.
  """
  labels, predictions = _as_float32(labels, predictions)
  mask = tf.cast(mask, tf.bool)
  errors = tf.where(mask, labels - predictions, tf.zeros_like(labels))
  return _masked_mean(tf.square(errors), mask)


def masked_mae(targets, predictions, mask):
  """Eq. 8, the translation loss: mean of |x - x̂| over valid steps and features.

  The mean runs over every (valid step, feature) pair, as PyTorch's `nn.L1Loss` does, rather
  than summing over features within a step: the loss is per feature, independent of D.

  Args:
    targets: [batch, time, D] stronger-modality features.
    predictions: [batch, time, D] decoder outputs.
    mask: [batch, time] bool, True on valid steps.

  Returns:
    A float32 scalar; 0 when no step is valid.
  """
  targets, predictions = _as_float32(targets, predictions)
  mask = tf.expand_dims(tf.cast(mask, tf.bool), -1)  # broadcast over the features
  errors = tf.where(mask, targets - predictions, tf.zeros_like(targets))
  return _masked_mean(tf.abs(errors), mask)


def _inverse_square_root(matrix, eigenvalue_floor):
  """Σ^-1/2 of a symmetric positive (semi-)definite matrix, eigenvalues floored first."""
  eigenvalues, eigenvectors = tf.linalg.eigh(matrix)
  eigenvalues = tf.maximum(eigenvalues, eigenvalue_floor)
  return tf.matmul(eigenvectors * tf.math.rsqrt(eigenvalues)[tf.newaxis, :], eigenvectors,
                   transpose_b=True)


def _regularised_covariance(centred, count, regulariser):
  dim = tf.shape(centred)[1]
  return (tf.matmul(centred, centred, transpose_a=True) / count
          + regulariser * tf.eye(dim, dtype=tf.float32))


def _total_correlation(strong_rows, weak_rows, r1, r2, eigenvalue_floor):
  """DCCA total correlation of [N, d1] and [N, d2] rows, with the closed-form gradient."""

  @tf.custom_gradient
  def total_correlation(strong_rows, weak_rows):
    num_rows = tf.shape(strong_rows)[0]
    enough_rows = tf.debugging.assert_greater_equal(
        num_rows, 2, message="dcca_correlation needs at least 2 valid time steps in the batch")
    # Checked before anything divides by N - 1.
    with tf.control_dependencies([enough_rows]):
      count = tf.cast(num_rows - 1, tf.float32)
    strong_centred = strong_rows - tf.reduce_mean(strong_rows, axis=0, keepdims=True)
    weak_centred = weak_rows - tf.reduce_mean(weak_rows, axis=0, keepdims=True)

    strong_inv_sqrt = _inverse_square_root(
        _regularised_covariance(strong_centred, count, r1), eigenvalue_floor)
    weak_inv_sqrt = _inverse_square_root(
        _regularised_covariance(weak_centred, count, r2), eigenvalue_floor)
    cross_covariance = tf.matmul(strong_centred, weak_centred, transpose_a=True) / count
    t_matrix = strong_inv_sqrt @ cross_covariance @ weak_inv_sqrt
    singular_values, u, v = tf.linalg.svd(t_matrix, full_matrices=False)

    def gradient(upstream):
      # Andrew et al. (2013), in row (samples x features) layout. Unlike autodiff
      # through eigh/svd it has no 1 / (λi - λj) terms, so repeated eigenvalues are harmless.
      grad_cross = strong_inv_sqrt @ tf.matmul(u, v, transpose_b=True) @ weak_inv_sqrt
      grad_strong_cov = -0.5 * (strong_inv_sqrt @ (u * singular_values)
                                @ tf.matmul(u, strong_inv_sqrt, transpose_a=True))
      grad_weak_cov = -0.5 * (weak_inv_sqrt @ (v * singular_values)
                              @ tf.matmul(v, weak_inv_sqrt, transpose_a=True))
      # Both are linear in the centred rows, so already centred: no extra projection needed.
      grad_strong = (2.0 * strong_centred @ grad_strong_cov
                     + tf.matmul(weak_centred, grad_cross, transpose_b=True)) / count
      grad_weak = (2.0 * weak_centred @ grad_weak_cov + strong_centred @ grad_cross) / count
      return upstream * grad_strong, upstream * grad_weak

    return tf.reduce_sum(singular_values), gradient

  return total_correlation(strong_rows, weak_rows)


def dcca_correlation(strong, weak, mask, r1=1e-3, r2=1e-3, eigenvalue_floor=1e-9):
  """Eqs. 4-7: DCCA total correlation of the valid steps of two latent sequences.

  The valid rows of the whole batch form the N samples. With centred views H̄1, H̄2,
  Σ11 = H̄1ᵀH̄1 / (N-1) + r1·I, Σ22 = H̄2ᵀH̄2 / (N-1) + r2·I, Σ12 = H̄1ᵀH̄2 / (N-1) and
  T = Σ11^-1/2 Σ12 Σ22^-1/2, the result is the trace norm of T (the sum of its singular values;
  not its Frobenius norm). The alignment loss (eq. 9) is its negative.

  The gradient is the closed form of Andrew et al. (2013), finite even when eigenvalues or
  singular values repeat (identical views, isotropic data); padded rows get zero gradient.

  Args:
    strong: [batch, time, d1] latents of the stronger modality.
    weak: [batch, time, d2] latents of the weaker modality.
    mask: [batch, time] bool, True on valid steps.
    r1: Regulariser added to the diagonal of Σ11.
    r2: Regulariser added to the diagonal of Σ22.
    eigenvalue_floor: Lower bound of the eigenvalues of Σ11 and Σ22 before their inverse
      square roots.

  Returns:
    A float32 scalar in [0, min(d1, d2)].

  Raises:
    tf.errors.InvalidArgumentError: Fewer than 2 valid steps.
  """
  strong, weak = _as_float32(strong, weak)
  mask = tf.cast(mask, tf.bool)
  return _total_correlation(tf.boolean_mask(strong, mask), tf.boolean_mask(weak, mask),
                            r1, r2, eigenvalue_floor)
