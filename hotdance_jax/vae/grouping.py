"""Run an RGB image autoencoder on 2K one-hot channels: groups of three, latents stacked.

Channels are zero-padded to a multiple of 3 and split into G = ceil(C / 3) RGB images, each mapped
from [0, 1] to the [-1, 1] range RGB autoencoders are trained on. Their latents (c_rgb channels
each) are stacked on the channel axis, group-major: latent channel g * c_rgb + j is channel j of
group g, so the DiT sees (N, B', T', G * c_rgb).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def num_groups(channels: int) -> int:
    return -(-channels // 3)


def to_rgb_groups(images: jax.Array) -> jax.Array:
    """(N, B, T, C) in [0, 1] -> (N * G, B, T, 3) in [-1, 1]."""
    n, b, t, c = images.shape
    g = num_groups(c)
    padded = jnp.pad(images, ((0, 0), (0, 0), (0, 0), (0, 3 * g - c)))
    groups = padded.reshape(n, b, t, g, 3).transpose(0, 3, 1, 2, 4)
    return groups.reshape(n * g, b, t, 3) * 2.0 - 1.0


def from_rgb_groups(rgb: jax.Array, channels: int) -> jax.Array:
    """(N * G, B, T, 3) in [-1, 1] -> (N, B, T, channels) in [0, 1] (inverse of to_rgb_groups)."""
    g = num_groups(channels)
    ng, b, t, _ = rgb.shape
    images = ((rgb + 1.0) / 2.0).reshape(ng // g, g, b, t, 3).transpose(0, 2, 3, 1, 4)
    return images.reshape(ng // g, b, t, 3 * g)[..., :channels]


def stack_latents(latents: jax.Array, groups: int) -> jax.Array:
    """(N * G, B', T', c) -> (N, B', T', G * c), group-major."""
    ng, b, t, c = latents.shape
    return latents.reshape(ng // groups, groups, b, t, c).transpose(0, 2, 3, 1, 4).reshape(
        ng // groups, b, t, groups * c)


def unstack_latents(latents: jax.Array, groups: int) -> jax.Array:
    """(N, B', T', G * c) -> (N * G, B', T', c) (inverse of stack_latents)."""
    n, b, t, gc = latents.shape
    c = gc // groups
    return latents.reshape(n, b, t, groups, c).transpose(0, 3, 1, 2, 4).reshape(n * groups, b, t, c)


def grouped(rgb_fn, channels: int, decode: bool = False):
    """An encode (or decode) of one-hot images built from an RGB autoencoder's function."""
    g = num_groups(channels)
    if decode:
        return jax.jit(lambda z: from_rgb_groups(rgb_fn(unstack_latents(z, g)), channels))
    return jax.jit(lambda x: stack_latents(rgb_fn(to_rgb_groups(x)), g))
