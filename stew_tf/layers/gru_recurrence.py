"""The sequential part of a GRU (reset_after=True, Keras/cuDNN gate order z, r, h) with a
whole-sequence gradient.

Keras' CPU GRU multiplies every time step's inputs by the input kernel inside its loop, and its
gradient accumulates the weight gradients step by step. Here the caller computes the input
products of all time steps as one matrix product before the loop (so autodiff gives their
gradient as one product too). The forward loop runs only the recurrent product and the gates,
and keeps the gate activations it computes. The custom gradient turns them into every step's
local derivatives at once, loops backwards only over what is truly sequential (the state
gradient and its product with the recurrent kernel), and leaves the recurrent kernel's gradient
to one product over all steps after the loop.

Time-major shapes. (Both directions of a Bi-GRU in one loop, with one batched recurrent product
per step, measured slower on 2 CPUs than two loops that run concurrently; see
docs/performance.md.)
"""

import tensorflow as tf


def _forward(input_projections, masks, recurrent_kernel, recurrent_bias):
  """Runs the loop; returns, stacked over time: the states, the update and reset gates
  ([T, B, 2U]), the candidates, and the candidate's recurrent term h @ U_h + b_h."""
  steps = tf.shape(input_projections)[0]
  units = tf.shape(recurrent_kernel)[0]
  state_shape = tf.stack([tf.shape(input_projections)[1], units])
  dtype = input_projections.dtype
  split = [2 * units, units]
  keep = masks > 0

  def step(t, state, states, gates, candidates, candidate_recurrents):
    x_update_reset, x_candidate = tf.split(input_projections[t], split, axis=-1)
    recurrent = tf.matmul(state, recurrent_kernel) + recurrent_bias
    r_update_reset, r_candidate = tf.split(recurrent, split, axis=-1)
    update_reset = tf.sigmoid(x_update_reset + r_update_reset)
    update, reset = tf.split(update_reset, 2, axis=-1)
    candidate = tf.tanh(x_candidate + reset * r_candidate)
    new_state = candidate + update * (state - candidate)
    # A masked step keeps the previous state (Keras' masking semantics).
    state = tf.where(keep[t], new_state, state)
    return (t + 1, state, states.write(t, state), gates.write(t, update_reset),
            candidates.write(t, candidate), candidate_recurrents.write(t, r_candidate))

  arrays = [tf.TensorArray(dtype, size=steps) for _ in range(4)]
  _, _, *arrays = tf.while_loop(
      lambda t, *_: t < steps, step, [tf.constant(0), tf.zeros(state_shape, dtype), *arrays])
  return [array.stack() for array in arrays]


def _local_derivatives(masks, states, gates, candidates, candidate_recurrents):
  """For all steps at once: how the state gradient g_t reaches each gate's pre-activation
  (g_t * input_factor for the input projections, g_t * recurrent_factor for h @ U + b) and
  the previous state directly (g_t * carry_factor); [T, B, 3U], [T, B, 3U], [T, B, U]."""
  update, reset = tf.split(gates, 2, axis=-1)
  previous = tf.concat([tf.zeros_like(states[:1]), states[:-1]], 0)
  keep_update = 1.0 - update
  candidate_factor = masks * keep_update * (1.0 - tf.square(candidates))
  update_factor = masks * (previous - candidates) * update * keep_update
  reset_factor = candidate_factor * candidate_recurrents * reset * (1.0 - reset)
  input_factor = tf.concat([update_factor, reset_factor, candidate_factor], -1)
  recurrent_factor = tf.concat([update_factor, reset_factor, candidate_factor * reset], -1)
  carry_factor = 1.0 - masks + masks * update
  return input_factor, recurrent_factor, carry_factor


def _backward(upstream, input_factor, recurrent_factor, carry_factor, recurrent_kernel):
  """The backward loop: every step's gradient w.r.t. the input projections and w.r.t. the
  recurrent product, stacked over time ([T, B, 3U] each)."""
  steps = tf.shape(upstream)[0]
  batch, units = tf.shape(upstream)[1], tf.shape(upstream)[2]
  by_gate, flat = tf.stack([batch, 3, units]), tf.stack([batch, 3 * units])
  # Transposed once here rather than by every step's product.
  kernel_transposed = tf.transpose(recurrent_kernel)

  def step(t, carry, input_grads, recurrent_grads):
    gradient = upstream[t] + carry
    per_gate = gradient[:, tf.newaxis, :]  # the same state gradient reaches all three gates
    input_grad = tf.reshape(tf.reshape(input_factor[t], by_gate) * per_gate, flat)
    recurrent_grad = tf.reshape(tf.reshape(recurrent_factor[t], by_gate) * per_gate, flat)
    carry = gradient * carry_factor[t] + tf.matmul(recurrent_grad, kernel_transposed)
    return (t - 1, carry, input_grads.write(t, input_grad),
            recurrent_grads.write(t, recurrent_grad))

  arrays = [tf.TensorArray(upstream.dtype, size=steps) for _ in range(2)]
  _, _, input_grads, recurrent_grads = tf.while_loop(
      lambda t, *_: t >= 0, step, [steps - 1, tf.zeros_like(upstream[0]), *arrays])
  return input_grads.stack(), recurrent_grads.stack()


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
  states, *activations = _forward(input_projections, masks, recurrent_kernel, recurrent_bias)

  def gradient(upstream):
    input_factor, recurrent_factor, carry_factor = _local_derivatives(masks, states,
                                                                      *activations)
    input_grads, recurrent_grads = _backward(upstream, input_factor, recurrent_factor,
                                             carry_factor, recurrent_kernel)
    # The first step's previous state is zero: it adds nothing to the kernel's gradient.
    kernel_grad = tf.matmul(_all_steps(states[:-1]), _all_steps(recurrent_grads[1:]),
                            transpose_a=True)
    bias_grad = tf.reduce_sum(_all_steps(recurrent_grads), axis=0, keepdims=True)
    return input_grads, tf.zeros_like(masks), kernel_grad, bias_grad

  return states, gradient
