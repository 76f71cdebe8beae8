"""The sequential part of a GRU (reset_after=True, Keras/cuDNN gate order z, r, h) with a
whole-sequence gradient.

Keras' CPU GRU multiplies every time step's inputs by the input kernel inside its loop, and its
gradient accumulates the weight gradients step by step. Here the caller computes the input
products of all time steps as one matrix product before the loop (so autodiff gives their
gradient as one product too). The forward loop runs only the recurrent products and the gates,
and keeps the gate activations it computes. The custom gradient turns them into every step's
local derivatives at once, loops backwards only over what is truly sequential (the state
gradient and its products with the recurrent kernel), and leaves the recurrent kernel's gradient
to products over all steps after the loop.

Each gate has its own [U, U] block of the recurrent kernel in both loops, so that no per-step
split copies anything. Time-major shapes; one direction per loop (a Bi-GRU runs two loops side
by side). Why these choices, measured: docs/performance.md, "Levers measured".
"""

import tensorflow as tf


def _forward(input_projections, masks, kernels, recurrent_bias):
  """Runs the loop; returns, stacked over time: the states, the update and reset gates, the
  candidates, and the candidate's recurrent term h @ U_h + b_h ([T, B, U] each)."""
  steps = tf.shape(input_projections)[0]
  state_shape = tf.stack([tf.shape(input_projections)[1], tf.shape(kernels[0])[0]])
  dtype = input_projections.dtype
  x_update, x_reset, x_candidate = tf.split(input_projections, 3, axis=-1)
  biases = tf.split(recurrent_bias, 3, axis=-1)
  keep = masks > 0

  def step(t, state, states, updates, resets, candidates, candidate_recurrents):
    r_update, r_reset, r_candidate = [tf.matmul(state, kernel) + bias
                                      for kernel, bias in zip(kernels, biases)]
    update = tf.sigmoid(x_update[t] + r_update)
    reset = tf.sigmoid(x_reset[t] + r_reset)
    candidate = tf.tanh(x_candidate[t] + reset * r_candidate)
    new_state = candidate + update * (state - candidate)
    # A masked step keeps the previous state (Keras' masking semantics).
    state = tf.where(keep[t], new_state, state)
    return (t + 1, state, states.write(t, state), updates.write(t, update),
            resets.write(t, reset), candidates.write(t, candidate),
            candidate_recurrents.write(t, r_candidate))

  arrays = [tf.TensorArray(dtype, size=steps) for _ in range(5)]
  _, _, *arrays = tf.while_loop(
      lambda t, *_: t < steps, step, [tf.constant(0), tf.zeros(state_shape, dtype), *arrays])
  return [array.stack() for array in arrays]


def _local_derivatives(masks, states, updates, resets, candidates, candidate_recurrents):
  """For all steps at once: how the state gradient g_t reaches each gate's pre-activation
  (g_t times these factors: update, reset, candidate for the input projections, and the
  candidate's recurrent term) and the previous state directly; [T, B, U] each."""
  previous = tf.concat([tf.zeros_like(states[:1]), states[:-1]], 0)
  keep_update = 1.0 - updates
  candidate = masks * keep_update * (1.0 - tf.square(candidates))
  update = masks * (previous - candidates) * updates * keep_update
  reset = candidate * candidate_recurrents * resets * (1.0 - resets)
  carry = 1.0 - masks + masks * updates
  return update, reset, candidate, candidate * resets, carry


def _backward(upstream, factors, kernels):
  """The backward loop: every step's gradient w.r.t. each gate's pre-activation (update, reset,
  candidate) and w.r.t. the candidate's recurrent term, stacked over time ([T, B, U] each)."""
  steps = tf.shape(upstream)[0]
  *gate_factors, carry_factor = factors
  # Transposed once here rather than by every step's products.
  transposed = [tf.transpose(kernel) for kernel in kernels]

  def step(t, carry, *arrays):
    gradient = upstream[t] + carry
    update, reset, candidate, candidate_recurrent = [gradient * f[t] for f in gate_factors]
    carry = (gradient * carry_factor[t] + tf.matmul(update, transposed[0])
             + tf.matmul(reset, transposed[1]) + tf.matmul(candidate_recurrent, transposed[2]))
    grads = (update, reset, candidate, candidate_recurrent)
    return (t - 1, carry, *[a.write(t, g) for a, g in zip(arrays, grads)])

  arrays = [tf.TensorArray(upstream.dtype, size=steps) for _ in range(4)]
  _, _, *arrays = tf.while_loop(
      lambda t, *_: t >= 0, step, [steps - 1, tf.zeros_like(upstream[0]), *arrays])
  return [array.stack() for array in arrays]


def _all_steps(x):
  """[T, B, n] → [T * B, n]: one product over every step."""
  return tf.reshape(x, [-1, tf.shape(x)[-1]])


@tf.custom_gradient
def gru_recurrence(input_projections, masks, recurrent_kernel, recurrent_bias):
  """The GRU states of every step.

  Args:
    input_projections: [T, B, 3U], inputs @ kernel + input bias, gates ordered z, r, h.
    masks: [T, B, 1], 1.0 on real steps and 0.0 on masked ones (which keep the state).
    recurrent_kernel: [U, 3U].
    recurrent_bias: [1, 3U].

  Returns:
    [T, B, U]: the state after each step (starting from zeros).
  """
  kernels = tf.split(recurrent_kernel, 3, axis=-1)  # [U, U] per gate: z, r, h
  states, *activations = _forward(input_projections, masks, kernels, recurrent_bias)

  def gradient(upstream):
    update, reset, candidate, candidate_recurrent = _backward(
        upstream, _local_derivatives(masks, states, *activations), kernels)
    recurrent_grads = [update, reset, candidate_recurrent]
    # The first step's previous state is zero: it adds nothing to the kernel's gradient.
    previous = _all_steps(states[:-1])
    kernel_grad = tf.concat([tf.matmul(previous, _all_steps(g[1:]), transpose_a=True)
                             for g in recurrent_grads], -1)
    bias_grad = tf.concat([tf.reduce_sum(_all_steps(g), axis=0, keepdims=True)
                           for g in recurrent_grads], -1)
    input_grads = tf.concat([update, reset, candidate], -1)
    return input_grads, tf.zeros_like(masks), kernel_grad, bias_grad

  return states, gradient
