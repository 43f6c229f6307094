"""The one-hot pose image codec (DESIGN.md section 1).

A pose sequence of T frames and K keypoints becomes an image (B, T, 2K), channels last: channel 2k
is the x coordinate of keypoint k, channel 2k+1 its y; for every frame t the column image[:, t, c]
is zero except at bin floor(coordinate / frame_size * B), which holds the keypoint's confidence.
Decoding takes the peak bin and refines it to sub-bin precision by a soft-argmax in a small window
around it. Both directions are pure jax.numpy, jit-compatible, with any leading batch axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_DECODE_RADIUS = 2
DEFAULT_VISIBILITY_THRESHOLD = 0.1


def encode(
    keypoints: jax.Array, confidence: jax.Array, width: float, height: float, bins: int
) -> jax.Array:
    """Pose sequence -> one-hot image.

    Args:
      keypoints: (..., T, K, 2) pixels, x right and y down.
      confidence: (..., T, K) in [0, 1].
      width, height: frame size in pixels (scalars or arrays broadcastable to (...,)).
      bins: B, the number of bins across the frame in each axis.
    Returns:
      (..., B, T, 2K) float32. A channel's column is all zero where the keypoint's coordinate is
      outside [0, frame size), non-finite, or its confidence is 0.
    """
    keypoints = jnp.asarray(keypoints, jnp.float32)
    confidence = jnp.asarray(confidence, jnp.float32)
    size = jnp.stack(jnp.broadcast_arrays(jnp.asarray(width, jnp.float32),
                                          jnp.asarray(height, jnp.float32)), axis=-1)
    scaled = keypoints * bins / size[..., None, None, :]  # (..., T, K, 2) bins, in [0, B) inside
    inside = jnp.isfinite(scaled) & (scaled >= 0.0) & (scaled < bins)
    hot = jnp.where(inside, confidence[..., None], 0.0)  # (..., T, K, 2)
    bin_index = jnp.floor(jnp.where(inside, scaled, 0.0)).astype(jnp.int32)
    columns = jax.nn.one_hot(bin_index, bins, dtype=jnp.float32) * hot[..., None]  # (...,T,K,2,B)
    columns = columns.reshape(*columns.shape[:-3], -1, bins)  # (..., T, 2K, B)
    return jnp.moveaxis(columns, -1, -3)  # (..., B, T, 2K)


def decode(
    image: jax.Array,
    width: float,
    height: float,
    radius: int = DEFAULT_DECODE_RADIUS,
    threshold: float = DEFAULT_VISIBILITY_THRESHOLD,
) -> tuple[jax.Array, jax.Array]:
    """One-hot (or blurred, VAE-reconstructed) image -> pose sequence.

    Args:
      image: (..., B, T, 2K).
      width, height: frame size in pixels.
      radius: the soft-argmax window is the peak bin +- radius bins.
      threshold: a column whose window mass is below it decodes as invisible.
    Returns:
      keypoints (..., T, K, 2) pixels (NaN where invisible) and confidence (..., T, K). A bin's
      position is its centre, so an exact one-hot decodes within half a bin of the encoded point.
      The confidence is the window's mass clipped to [0, 1] (the hot value for a one-hot column;
      unlike the peak height it survives blurring), the smaller of the x and y channels'. The
      visibility test uses the same mass: a decoder that spreads a visible column over a few
      bins (every trained VAE does) keeps it visible, where its peak alone may fall below
      threshold.
    """
    image = jnp.asarray(image, jnp.float32)
    bins = image.shape[-3]
    columns = jnp.moveaxis(image, -3, -1)  # (..., T, 2K, B)
    peak = jnp.argmax(columns, axis=-1)
    offsets = jnp.arange(-radius, radius + 1)
    window = peak[..., None] + offsets  # (..., T, 2K, W)
    in_range = (window >= 0) & (window < bins)
    weights = jnp.take_along_axis(columns, jnp.clip(window, 0, bins - 1), axis=-1)
    weights = jnp.where(in_range, jnp.maximum(weights, 0.0), 0.0)
    mass = weights.sum(axis=-1)
    position = (weights * (window + 0.5)).sum(axis=-1) / jnp.maximum(mass, 1e-12)  # bins

    position = position.reshape(*position.shape[:-1], -1, 2)  # (..., T, K, 2)
    visible = (mass >= threshold).reshape(position.shape).all(axis=-1)
    conf = jnp.clip(mass, 0.0, 1.0).reshape(position.shape).min(axis=-1)
    size = jnp.stack(jnp.broadcast_arrays(jnp.asarray(width, jnp.float32),
                                          jnp.asarray(height, jnp.float32)), axis=-1)
    keypoints = position / bins * size[..., None, None, :]
    keypoints = jnp.where(visible[..., None], keypoints, jnp.nan)
    return keypoints, jnp.where(visible, conf, 0.0)


jit_decode = jax.jit(decode, static_argnames="radius")  # decode, compiled once per shape
