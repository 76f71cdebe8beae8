"""The sequential part of a GRU (reset_after=True, Keras/cuDNN gate order z, r, h) with a
whole-sequence gradient.

Keras' CPU GRU multiplies every time step's inputs by the input kernel inside its loop, and its
gradient accumulates the weight gradients step by step. Here the caller computes the input
products of all time steps as one matrix product before the loop (so autodiff gives their
gradient as one product too). The forward loop runs only the recurrent product and the gates.
The custom gradient computes every step's local derivatives at once from the saved states and
recurrent products, loops backwards only over what is truly sequential (the state gradient and
its product with the recurrent kernel), and leaves the recurrent kernel's gradient to one
product over all steps after the loop.

Time-major shapes. (Both directions of a Bi-GRU in one loop, with one batched recurrent product
per step, measured slower on 2 CPUs than two loops that run concurrently; see
docs/performance.md.)
"""

import tensorflow as tf


def _forward(input_projections, masks, recurrent_kernel, recurrent_bias):
  """Runs the loop; returns every step's state and recurrent product h @ U + b, stacked."""
  steps = tf.shape(input_projections)[0]
  units = tf.shape(recurrent_kernel)[0]
  state_shape = tf.stack([tf.shape(input_projections)[1], units])
  dtype = input_projections.dtype
  split = [2 * units, units]

  def step(t, state, states, recurrents):
    x_update_reset, x_candidate = tf.split(input_projections[t], split, axis=-1)
    recurrent = tf.matmul(state, recurrent_kernel) + recurrent_bias
    r_update_reset, r_candidate = tf.split(recurrent, split, axis=-1)
    update, reset = tf.split(tf.sigmoid(x_update_reset + r_update_reset), 2, axis=-1)
    candidate = tf.tanh(x_candidate + reset * r_candidate)
    new_state = candidate + update * (state - candidate)
    # A masked step keeps the previous state (Keras' masking semantics).
    state = tf.where(masks[t] > 0, new_state, state)
    return t + 1, state, states.write(t, state), recurrents.write(t, recurrent)

  arrays = [tf.TensorArray(dtype, size=steps) for _ in range(2)]
  _, _, states, recurrents = tf.while_loop(
      lambda t, *_: t < steps, step, [tf.constant(0), tf.zeros(state_shape, dtype), *arrays])
  return states.stack(), recurrents.stack()


def _local_derivatives(input_projections, masks, states, recurrents):
  """For all steps at once: how the state gradient g_t reaches each gate's pre-activation
  (g_t * input_factor for the input projections, g_t * recurrent_factor for h @ U + b) and
  the previous state directly (g_t * carry_factor)."""
  units = tf.shape(states)[-1]
  split = [2 * units, units]
  x_update_reset, x_candidate = tf.split(input_projections, split, axis=-1)
  r_update_reset, r_candidate = tf.split(recurrents, split, axis=-1)
  update, reset = tf.split(tf.sigmoid(x_update_reset + r_update_reset), 2, axis=-1)
  candidate = tf.tanh(x_candidate + reset * r_candidate)
  previous = tf.concat([tf.zeros_like(states[:1]), states[:-1]], 0)
  update_factor = masks * (previous - candidate) * update * (1.0 - update)
  candidate_factor = masks * (1.0 - update) * (1.0 - tf.square(candidate))
  reset_factor = candidate_factor * r_candidate * reset * (1.0 - reset)
  input_factor = tf.concat([update_factor, reset_factor, candidate_factor], -1)
  recurrent_factor = tf.concat([update_factor, reset_factor, candidate_factor * reset], -1)
  carry_factor = 1.0 - masks + masks * update
  return input_factor, recurrent_factor, carry_factor, previous


def _state_gradients(upstream, recurrent_factor, carry_factor, recurrent_kernel):
  """The backward loop: the gradient of every step's state, stacked over time."""
  steps = tf.shape(upstream)[0]

  def step(t, carry, gradients):
    gradient = upstream[t] + carry
    recurrent_grad = tf.tile(gradient, [1, 3]) * recurrent_factor[t]
    carry = (gradient * carry_factor[t]
             + tf.matmul(recurrent_grad, recurrent_kernel, transpose_b=True))
    return t - 1, carry, gradients.write(t, gradient)

  gradients = tf.TensorArray(upstream.dtype, size=steps)
  _, _, gradients = tf.while_loop(lambda t, *_: t >= 0, step,
                                  [steps - 1, tf.zeros_like(upstream[0]), gradients])
  return gradients.stack()


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
  states, recurrents = _forward(input_projections, masks, recurrent_kernel, recurrent_bias)

  def gradient(upstream):
    input_factor, recurrent_factor, carry_factor, previous = _local_derivatives(
        input_projections, masks, states, recurrents)
    state_grads = tf.tile(
        _state_gradients(upstream, recurrent_factor, carry_factor, recurrent_kernel),
        [1, 1, 3])
    recurrent_grads = _all_steps(state_grads * recurrent_factor)
    kernel_grad = tf.matmul(_all_steps(previous), recurrent_grads, transpose_a=True)
    bias_grad = tf.reduce_sum(recurrent_grads, axis=0, keepdims=True)
    return state_grads * input_factor, tf.zeros_like(masks), kernel_grad, bias_grad

  return states, gradient
