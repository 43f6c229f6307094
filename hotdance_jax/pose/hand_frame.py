"""Hands in their wrists' frames: the one-hot channels of a hand hold its offsets from the wrist.

A hand is a few percent of the frame (a synthetic hand 15 to 35 pixels of 512, a real one about 75
of 1080), so at B bins across the frame its fingers span a handful of bins, and an autoencoder's
error of a bin or two is a large part of a hand; decoded on their own, a generated hand's
keypoints can also drift away from its arm. With a zoom z > 0 each hand keypoint j is encoded at
(p_j - p_wrist) z + S / 2 (S the frame size, p in pixels, the wrist the body's keypoint on that
side): the hand at z times the frame's resolution, centred, so a hand keypoint farther than
S / 2z from its wrist, or whose wrist is invisible, is invisible. Decoding inverts it about the
decoded wrist, so a decoded hand always hangs from its arm. Zoom 0 leaves every keypoint in the
frame's coordinates (the paper's image); poses without hands are left as they are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hotdance_jax.pose.skeletons import HAND_SIDES, skeleton_of


def frame_size(width, height) -> jax.Array:
    """(..., 2) pixels: the frame's width and height, scalars or arrays broadcast together."""
    return jnp.stack(jnp.broadcast_arrays(jnp.asarray(width, jnp.float32),
                                          jnp.asarray(height, jnp.float32)), axis=-1)


def to_wrist_frames(keypoints: jax.Array, confidence: jax.Array, width, height,
                    zoom: float) -> tuple[jax.Array, jax.Array]:
    """Poses in the frame -> poses whose hands are in their wrists' frames (module docstring).

    Args:
      keypoints: (..., T, K, 2) pixels; confidence: (..., T, K).
      width, height: frame size in pixels (scalars or arrays broadcastable to (...,)).
      zoom: z; 0 returns the poses unchanged.
    Returns:
      keypoints (..., T, K, 2) and confidence (..., T, K), a hand's confidence 0 where its
      wrist's is.
    """
    centre = frame_size(width, height)[..., None, None, :] / 2
    return _move_hands(keypoints, confidence, zoom,
                       lambda hand, wrist: (hand - wrist) * zoom + centre,
                       lambda wrist, wrist_confidence: wrist_confidence > 0)


def from_wrist_frames(keypoints: jax.Array, confidence: jax.Array, width, height,
                      zoom: float) -> tuple[jax.Array, jax.Array]:
    """The inverse of to_wrist_frames for decoded poses (NaN where invisible): each hand placed
    about its decoded wrist, invisible (NaN, confidence 0) where the wrist is."""
    centre = frame_size(width, height)[..., None, None, :] / 2
    return _move_hands(keypoints, confidence, zoom,
                       lambda hand, wrist: wrist + (hand - centre) / zoom,
                       lambda wrist, wrist_confidence: jnp.isfinite(wrist).all(axis=-1))


def _move_hands(keypoints: jax.Array, confidence: jax.Array, zoom: float, move, seen):
    """Each hand's keypoints (..., T, 21, 2) replaced by move(hand, wrist (..., T, 1, 2)), its
    confidence 0 where seen(wrist, wrist_confidence (..., T, 1)) is False; poses without hands,
    or zoom 0, unchanged."""
    if not zoom:  # before skeleton_of: the codec takes any K at zoom 0
        return keypoints, confidence
    skeleton = skeleton_of(keypoints.shape[-2])
    if not skeleton.has_hands:
        return keypoints, confidence
    for side in HAND_SIDES:
        wrist, hand = skeleton.index(f"{side}_wrist"), skeleton.hand(side)
        wrist_keypoint = keypoints[..., wrist, None, :]
        keypoints = keypoints.at[..., hand, :].set(move(keypoints[..., hand, :], wrist_keypoint))
        visible = seen(wrist_keypoint, confidence[..., wrist, None])
        confidence = confidence.at[..., hand].set(jnp.where(visible, confidence[..., hand], 0.0))
    return keypoints, confidence
