"""Reference-pose conditioning (docs/design.md section 1): reference frames and the phase mask.

The known frames of the reference carry the real pose (the model continues from them, or passes
through them) and the other frames carry the dancer's shape pose (a neutral pose with their limb
lengths and on-screen scale). The paper's known frames are the first N (`prefix_frames`): t < N.
The mask tells the model which frames are which at the resolution of the latent: one channel per
phase p of the `stride` frames inside a latent column j, set where frame stride * j + p is known.
For the first N that is q = N // stride full columns, plus phases 0..r-1 of column q when
r = N % stride > 0; N >= T sets every entry.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hotdance_jax.pose.onehot import encode


def prefix_frames(num_reference_frames: int, frames: int) -> np.ndarray:
    """(frames,) bool: the paper's reference, its first N frames known (all when N >= frames)."""
    return np.arange(frames) < num_reference_frames


def reference_mask(known: np.ndarray, latent_bins: int, stride: int = 8) -> np.ndarray:
    """(..., latent_bins, T / stride, stride) float32 mask, channels last (the M of
    docs/design.md, transposed), of the frames `known` (..., T) bool: phase p of latent column j
    is set where frame stride * j + p is known. NumPy, so loader workers build it without JAX."""
    on = np.asarray(known, np.float32)
    on = on.reshape(*on.shape[:-1], on.shape[-1] // stride, stride)  # (..., T', stride)
    return np.broadcast_to(on[..., None, :, :], (*on.shape[:-2], latent_bins, *on.shape[-2:]))


KEYFRAME_KINDS = ("keyframes", "spans")  # the training patterns beyond the paper's prefixes


def random_known_frames(rng: np.random.Generator, frames: int, kind: str,
                        prefix: int = 16) -> np.ndarray:
    """(frames,) bool, a training pattern of known frames beyond the paper's prefixes: kind
    "keyframes", 1 to 4 isolated frames, or "spans", 1 or 2 runs of 2 to 16 frames, each after a
    `prefix`-frame prefix half the time (a continuation that also passes through them)."""
    known = np.zeros(frames, bool)
    known[:prefix] = rng.random() < 0.5
    count = rng.integers(1, 5) if kind == "keyframes" else rng.integers(1, 3)
    for _ in range(count):
        length = 1 if kind == "keyframes" else int(rng.integers(2, 17))
        start = int(rng.integers(0, frames - length + 1))
        known[start:start + length] = True
    return known


def reference_pose(
    keypoints: jax.Array,
    confidence: jax.Array,
    shape_keypoints: jax.Array,
    shape_confidence: jax.Array,
    known: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The reference pose sequence: the real pose at the known frames, the shape pose elsewhere.

    Args:
      keypoints: (T, K, 2) pixels, the real (or previously generated, or keyframe) poses.
      confidence: (T, K).
      shape_keypoints: (K, 2) pixels, the dancer's neutral shape pose.
      shape_confidence: (K,).
      known: (T,) bool, the frames whose real pose the model is given (prefix_frames(N, T) for
        the paper's first N).
    Returns:
      keypoints (T, K, 2) and confidence (T, K), ready for `onehot.encode`.
    """
    real = jnp.asarray(known, bool)[:, None]  # (T, 1)
    ref_confidence = jnp.where(real, confidence, shape_confidence[None, :])
    ref_keypoints = jnp.where(real[..., None], keypoints, shape_keypoints[None, :, :])
    return ref_keypoints, ref_confidence


@functools.partial(jax.jit, static_argnames=("bins", "hand_zoom"))
def reference_images(keypoints, confidence, shape_keypoints, shape_confidence, width, height,
                     known, *, bins, hand_zoom=0.0):
    """(b, B, T, 2K) one-hot images of the reference poses for batched fields: keypoints
    (b, T, K, 2) pixels, confidence (b, T, K), shape_keypoints (b, K, 2), shape_confidence
    (b, K), known (b, T) bool (reference_pose), width and height (b,) or scalars, pixels;
    hand_zoom as onehot.encode's."""
    poses = jax.vmap(reference_pose)(keypoints, confidence, shape_keypoints, shape_confidence,
                                     known)
    return encode(*poses, width, height, bins, hand_zoom)
