"""Rotary position embeddings over several axes at real-valued positions (FLUX-style axes RoPE).

The head dimension is split between the axes: axis a rotates its own `dims_per_axis[a]` channels
with the frequencies theta ** (-2i / dims_per_axis[a]), i < dims_per_axis[a] / 2. Positions are
real numbers, so fractional or shared indices (a pose token and a music token at one time) work.
Pairs are (x[i], x[i + Dh / 2]) (the "rotate half" layout); q . k after rotation depends only on
the difference of the two positions, and position 0 is the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rope_frequencies(
    positions: jax.Array, dims_per_axis: tuple[int, ...], theta: float = 10000.0
) -> tuple[jax.Array, jax.Array]:
    """positions (..., N, A) -> cos, sin (..., N, sum(dims_per_axis) / 2) float32.

    dims_per_axis: channels rotated by each of the A axes, each even.
    """
    if positions.shape[-1] != len(dims_per_axis) or any(d % 2 for d in dims_per_axis):
        raise ValueError(
            f"positions (..., N, {positions.shape[-1]}) need one even dim per axis, "
            f"got {dims_per_axis}"
        )
    positions = positions.astype(jnp.float32)
    angles = [
        positions[..., a, None] * theta ** (-jnp.arange(0, d, 2, dtype=jnp.float32) / d)
        for a, d in enumerate(dims_per_axis)
    ]
    angles = jnp.concatenate(angles, axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates x (..., N, H, Dh) by cos, sin (..., N, Dh / 2), shared by the H heads; x's dtype."""
    if 2 * cos.shape[-1] != x.shape[-1]:
        raise ValueError(f"rope for {2 * cos.shape[-1]} channels, heads have {x.shape[-1]}")
    cos, sin = cos[..., None, :], sin[..., None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return rotated.astype(x.dtype)
