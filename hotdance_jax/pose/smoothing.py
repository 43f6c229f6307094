"""Temporal smoothing of decoded keypoints: a Savitzky-Golay filter over each visible run.

A one-hot image holds a keypoint only to the bin, so a decoded trajectory is a staircase: its
quantisation error (up to half a bin) changes from frame to frame and shows as acceleration.
A Savitzky-Golay filter (a least-squares polynomial of degree `order` over a sliding window of
`window` frames) removes most of it and keeps the motion: on Dance with Melody's 120 test
segments at B = 256 and 30 fps, window 9 and order 3 take the bare codec's jitter from 42.2 to
10.6 body lengths/s^2 (the real dances: 7.1, and 6.3 after the same filter) and its mean error
from 0.25 to 0.14 bins.
"""

from __future__ import annotations

import jax
import numpy as np
from scipy.signal import savgol_filter

from hotdance_jax.errors import InputError
from hotdance_jax.pose.onehot import decode_settings, jit_decode

DEFAULT_SMOOTH_WINDOW = 9  # frames (0: no smoothing)
DEFAULT_SMOOTH_ORDER = 3


def smooth_settings(pose_config) -> dict:
    """smooth's keyword arguments from a config's `pose` section (a run's saved config may
    predate them: those take the defaults)."""
    return {"window": pose_config.get("smooth_window", DEFAULT_SMOOTH_WINDOW),
            "order": pose_config.get("smooth_order", DEFAULT_SMOOTH_ORDER)}


def decoded_poses(images: jax.Array, width, height, pose_config) -> tuple[np.ndarray, np.ndarray]:
    """One-hot-space images (..., B, T, 2K) -> keypoints (..., T, K, 2) pixels and confidence
    (..., T, K), decoded and smoothed in time as a config's `pose` section (or a dict with its
    keys) asks: what the sampler outputs."""
    keypoints, confidence = jit_decode(images, width, height, **decode_settings(pose_config))
    confidence = np.asarray(confidence)
    return smooth(keypoints, confidence, **smooth_settings(pose_config)), confidence


def smooth(keypoints: np.ndarray, confidence: np.ndarray, window: int = DEFAULT_SMOOTH_WINDOW,
           order: int = DEFAULT_SMOOTH_ORDER) -> np.ndarray:
    """Keypoints (..., T, K, 2) with confidence (..., T, K) -> smoothed keypoints, same shape.

    Every run of consecutive frames in which a keypoint is visible (confidence > 0) is filtered
    on its own (the ends by the polynomial fitted there, scipy's mode "interp"); a run shorter
    than `window` takes the longest odd window that fits it, and one of `order` + 1 frames or
    fewer is left as it is, as are the invisible frames. window 0 returns a copy.
    """
    if window and (window < 3 or window % 2 == 0 or not 0 <= order < window):
        raise InputError(f"pose.smooth_window {window}, pose.smooth_order {order}: expected an "
                         "odd window >= 3 and 0 <= order < window (or window 0: no smoothing)")
    out = np.array(keypoints, dtype=np.float32, copy=True)
    if not window:
        return out
    frames = out.shape[-3]
    tracks = out.reshape(-1, frames, out.shape[-2], 2)
    seen = np.broadcast_to(confidence > 0, out.shape[:-1]).reshape(tracks.shape[:-1])
    for b, k in zip(*np.nonzero(seen.any(axis=1)), strict=True):
        for start, stop in _runs(seen[b, :, k]):
            length = min(window, stop - start - (1 - (stop - start) % 2))  # odd, fits the run
            if length > order + 1:
                tracks[b, start:stop, k] = savgol_filter(tracks[b, start:stop, k], length, order,
                                                         axis=0, mode="interp")
    return out


def _runs(visible: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], visible.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))
