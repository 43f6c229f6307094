"""Rectified flow: noising, t-sampling, loss, ODE samplers and classifier-free guidance.

Convention: x_t = (1 - t) * x_0 + t * e with e ~ N(0, I) and t in [0, 1] (t = 0 data, t = 1 noise).
The model predicts the velocity v = dx_t/dt = e - x_0; so x_0 = x_t - t * v, e = x_t + (1 - t) * v.

A velocity function is `velocity_fn(x_t, t) -> v` with x_t and v of shape (B, ...) and t of shape
(B,), in flow-time units (not multiplied by 1000). Close it over the model, its conditioning and its
RNG state; every function here is model-agnostic and jit-friendly.

Time shift (SD3, FLUX): t' = s * t / (1 + (s - 1) * t). s > 1 moves training and sampling time
toward the noise end, which larger latents (more tokens, more redundancy) need.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x, t) -> v
ConditionedVelocityFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (x, t, drop)


def shift_time(t: jax.Array, shift: float) -> jax.Array:
    """t' = shift * t / (1 + (shift - 1) * t); maps [0, 1] onto itself, monotone increasing."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def resolution_shift(
    num_tokens: int,
    base_tokens: int = 256,
    base_shift: float = 1.0,
    max_tokens: int = 4096,
    max_shift: float = 3.0,
) -> float:
    """The time shift for a latent of `num_tokens` tokens (FLUX's rule).

    log(shift) is linear in num_tokens through (base_tokens, log base_shift) and
    (max_tokens, log max_shift), extrapolated outside that range; FLUX's mu is this log(shift).
    """
    frac = (num_tokens - base_tokens) / (max_tokens - base_tokens)
    return math.exp(math.log(base_shift) + frac * (math.log(max_shift) - math.log(base_shift)))


def sample_t(
    key: jax.Array,
    shape: tuple[int, ...],
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
) -> jax.Array:
    """Logit-normal flow times, shifted: shift_time(sigmoid(N(mean, std^2)), shift), in (0, 1)."""
    return shift_time(jax.nn.sigmoid(mean + std * jax.random.normal(key, shape)), shift)


def _per_example(t: jax.Array, x: jax.Array) -> jax.Array:
    """t of shape (B,) (or a scalar) reshaped to broadcast over x of shape (B, ...)."""
    t = jnp.asarray(t, x.dtype)
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def noise(x0: jax.Array, e: jax.Array, t: jax.Array) -> jax.Array:
    """x_t = (1 - t) * x0 + t * e; x0, e (B, ...), t (B,) or scalar."""
    t = _per_example(t, x0)
    return (1.0 - t) * x0 + t * e


def velocity_target(x0: jax.Array, e: jax.Array) -> jax.Array:
    """The regression target v = e - x0, shape (B, ...)."""
    return e - x0


def flow_loss(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    key: jax.Array,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    weights: jax.Array | None = None,
) -> jax.Array:
    """Rectified-flow loss: the mean of (velocity_fn(x_t, t) - (e - x0))^2, a scalar.

    x0: (B, ...) data. t ~ sample_t(mean, std, shift), one per example; e ~ N(0, I).
    key: one key for the batch, or (B,) keys, one per example: each example's t and e then come
    from its own key alone (the same draws however the batch is ordered or split).
    weights: None (plain mean) or an array whose shape is a prefix of x0's, e.g. (B,) per-example
    weights or a (B, ...) mask; the loss is then sum(w * se) / sum(w) over broadcast elements.
    """
    if key.ndim == 0:
        t_key, e_key = jax.random.split(key)
        t = sample_t(t_key, (x0.shape[0],), mean, std, shift)
        e = jax.random.normal(e_key, x0.shape, x0.dtype)
    else:
        t_keys, e_keys = jax.vmap(jax.random.split, out_axes=1)(key)
        t = jax.vmap(lambda k: sample_t(k, (), mean, std, shift))(t_keys)
        e = jax.vmap(lambda k: jax.random.normal(k, x0.shape[1:], x0.dtype))(e_keys)
    err = velocity_fn(noise(x0, e, t), t) - velocity_target(x0, e)
    se = jnp.square(err.astype(jnp.float32))
    if weights is None:
        return jnp.mean(se)
    w = jnp.broadcast_to(_per_example(weights, se), se.shape)
    return jnp.sum(w * se) / jnp.maximum(jnp.sum(w), 1e-12)


def timesteps(num_steps: int, shift: float = 1.0) -> jax.Array:
    """Sampling times (num_steps + 1,): linspace(1, 0) shifted; from 1 down to 0, decreasing."""
    return shift_time(jnp.linspace(1.0, 0.0, num_steps + 1, dtype=jnp.float32), shift)


def guided(velocity_fn: ConditionedVelocityFn, guidance: float | jax.Array = 1.0) -> VelocityFn:
    """Classifier-free guidance: v = v_u + guidance * (v_c - v_u).

    velocity_fn(x, t, drop) is the velocity with the condition of the examples where `drop`
    ((B,) bool) is set replaced by the null condition (the model trained with condition dropout).
    A Python guidance of 1 is one call on the B examples with nothing dropped; any other guidance
    (or a traced one) is one call on 2B examples, the conditional ones then the unconditional.
    """
    if isinstance(guidance, int | float) and guidance == 1.0:
        return lambda x, t: velocity_fn(x, t, jnp.zeros((x.shape[0],), bool))

    def velocity(x: jax.Array, t: jax.Array) -> jax.Array:
        b = x.shape[0]
        both = velocity_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                           jnp.arange(2 * b) >= b)
        conditional, unconditional = jnp.split(both, 2)
        return unconditional + guidance * (conditional - unconditional)

    return velocity


def _euler_step(
    velocity_fn: VelocityFn, x: jax.Array, t: jax.Array, t_next: jax.Array
) -> jax.Array:
    """One Euler step of dx/dt = v from t to t_next (scalars); x (B, ...)."""
    v = velocity_fn(x, jnp.full((x.shape[0],), t))
    return (x + (t_next - t) * v).astype(x.dtype)


def _heun_step(velocity_fn: VelocityFn, x: jax.Array, t: jax.Array, t_next: jax.Array) -> jax.Array:
    """One Heun step (Euler predictor, trapezoidal corrector) from t to t_next; x (B, ...)."""
    v = velocity_fn(x, jnp.full((x.shape[0],), t))
    x_pred = x + (t_next - t) * v
    v_next = velocity_fn(x_pred.astype(x.dtype), jnp.full((x.shape[0],), t_next))
    return (x + (t_next - t) * 0.5 * (v + v_next)).astype(x.dtype)


def sample(
    velocity_fn: VelocityFn,
    noise: jax.Array,
    num_steps: int,
    sampler: str = "euler",
    shift: float = 1.0,
) -> jax.Array:
    """Integrate dx/dt = v from t = 1 (noise, (B, ...)) to t = 0 on timesteps(num_steps, shift).

    sampler: "euler" (num_steps model evaluations) or "heun" (2nd order, 2 * num_steps - 1
    evaluations: the last step, to t = 0, is a plain Euler step as in EDM). num_steps, sampler and
    shift are static; `guided` makes a guided velocity_fn. Returns x_0, same shape and dtype as
    noise.
    """
    if sampler not in ("euler", "heun"):
        raise ValueError(f"unknown sampler {sampler!r}; use 'euler' or 'heun'")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    ts = timesteps(num_steps, shift)
    step = _heun_step if sampler == "heun" else _euler_step

    def body(x, t_pair):
        return step(velocity_fn, x, t_pair[0], t_pair[1]), None

    x, _ = jax.lax.scan(body, noise, (ts[:-2], ts[1:-1]))
    return _euler_step(velocity_fn, x, ts[-2], ts[-1])
