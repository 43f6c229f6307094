"""Reference-pose conditioning (docs/design.md section 1): reference frames and the phase mask.

With N pose-aware reference frames, frames t < N of the reference carry the real pose (the model
continues from them) and frames t >= N carry the dancer's shape pose (a neutral pose with their limb
lengths and on-screen scale). The mask tells the model which frames are which at the resolution of
the latent: one channel per phase p of the `stride` frames inside a latent column j, set where
frame stride * j + p < N. That is q = N // stride full columns, plus phases 0..r-1 of column q when
r = N % stride > 0; N >= T sets every entry.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from hotdance_jax.pose.onehot import encode


def reference_mask(
    num_reference_frames: jax.Array | int, latent_bins: int, latent_frames: int, stride: int = 8
) -> jax.Array:
    """(latent_bins, latent_frames, stride) float32 mask, channels last (the M of docs/design.md,
    transposed).

    `num_reference_frames` may be a traced scalar (drawn per example inside a jitted step).
    """
    column = jnp.arange(latent_frames)[:, None]
    phase = jnp.arange(stride)[None, :]
    on = (stride * column + phase < num_reference_frames).astype(jnp.float32)  # (T', stride)
    return jnp.broadcast_to(on, (latent_bins, latent_frames, stride))


def reference_pose(
    keypoints: jax.Array,
    confidence: jax.Array,
    shape_keypoints: jax.Array,
    shape_confidence: jax.Array,
    num_reference_frames: jax.Array | int,
) -> tuple[jax.Array, jax.Array]:
    """The reference pose sequence for N pose-aware frames.

    Args:
      keypoints: (T, K, 2) pixels, the real (or previously generated) poses.
      confidence: (T, K).
      shape_keypoints: (K, 2) pixels, the dancer's neutral shape pose.
      shape_confidence: (K,).
      num_reference_frames: N; frames t < N keep the real pose, the rest show the shape pose.
    Returns:
      keypoints (T, K, 2) and confidence (T, K), ready for `onehot.encode`.
    """
    real = (jnp.arange(keypoints.shape[0]) < num_reference_frames)[:, None]  # (T, 1)
    ref_confidence = jnp.where(real, confidence, shape_confidence[None, :])
    ref_keypoints = jnp.where(real[..., None], keypoints, shape_keypoints[None, :, :])
    return ref_keypoints, ref_confidence


@functools.partial(jax.jit, static_argnames="bins")
def reference_images(keypoints, confidence, shape_keypoints, shape_confidence, width, height,
                     num_reference_frames, *, bins):
    """(b, B, T, 2K) one-hot images of the reference poses with N = num_reference_frames real
    frames (all of them when N >= T), for batched fields: keypoints (b, T, K, 2) pixels,
    confidence (b, T, K), shape_keypoints (b, K, 2), shape_confidence (b, K), width and height
    (b,) or scalars, pixels."""
    poses = jax.vmap(reference_pose, in_axes=(0, 0, 0, 0, None))(
        keypoints, confidence, shape_keypoints, shape_confidence, num_reference_frames)
    return encode(*poses, width, height, bins)
