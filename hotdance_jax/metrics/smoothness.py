"""Smoothness of a dance: jitter (mean keypoint acceleration) and the speed jump at the seams
where sampled segments join. Positions are in body lengths L (`features.body_frame`), so the
figures compare across frame sizes and dancers: jitter in L/s^2, speed changes in L/s."""

from __future__ import annotations

import numpy as np


def mean_keypoint_speed(keypoints: np.ndarray, confidence: np.ndarray, fps: float) -> np.ndarray:
    """(T,) mean speed in units (pixels, L) per second of the joints visible in consecutive frames.

    Frame t holds the speed between frames t-1 and t (frame 0 repeats frame 1's).
    """
    step = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1) * fps  # (T-1, K)
    both = (confidence[1:] > 0) & (confidence[:-1] > 0)
    speed = np.where(both, step, 0.0).sum(-1) / np.maximum(both.sum(-1), 1)
    return np.concatenate([speed[:1], speed])


def jitter(positions: np.ndarray, visible: np.ndarray, fps: float,
           frames: np.ndarray | None = None) -> float:
    """Mean |acceleration| (L/s^2) over every keypoint and frame t of (T, K, 2) positions where
    the keypoint is seen in frames t-1, t and t+1 (the second difference times fps^2), and
    `frames` (T,) bool holds t when given; NaN when there is none."""
    acceleration = np.linalg.norm(np.diff(positions, 2, axis=0), axis=-1) * fps**2
    seen = visible[2:] & visible[1:-1] & visible[:-2]
    if frames is not None:
        seen = seen & frames[1:-1, None]
    return float(acceleration[seen].mean()) if seen.any() else float("nan")


def seam_frames(num_frames: int, segment_frames: int, overlap: int) -> np.ndarray:
    """Frames where a dance sampled by segment-and-stitch changes segment: segment k >= 1 starts
    at k (segment_frames - overlap) and is cross-faded in over `overlap` frames, so its first
    frame and the first frame after the fade are seams. (S,) sorted, inside [1, num_frames - 2].
    """
    starts = np.arange(segment_frames - overlap, num_frames, segment_frames - overlap)
    seams = np.unique(np.concatenate([starts, starts + overlap]))
    return seams[(seams >= 1) & (seams <= num_frames - 2)]


def speed_changes(positions: np.ndarray, visible: np.ndarray, fps: float) -> np.ndarray:
    """(T,) |speed out of frame t - speed into frame t| in L/s, the speeds being the mean over
    the keypoints seen in both frames of a step (NaN at the first and last frame)."""
    speed = mean_keypoint_speed(positions, visible.astype(np.float32), fps)
    change = np.full(len(speed), np.nan)
    change[1:-1] = np.abs(speed[2:] - speed[1:-1])
    return change


def seam_jump(positions: np.ndarray, visible: np.ndarray, fps: float,
              seams: np.ndarray) -> tuple[float, float]:
    """(mean speed change at the `seams` frames, mean speed change at frames at least 2 frames
    from every seam), both in L/s, for (T, K, 2) positions; NaN where a set is empty."""
    change = speed_changes(positions, visible, fps)
    near = np.zeros(len(change), bool)
    for offset in (-1, 0, 1):
        near[np.clip(seams + offset, 0, len(change) - 1)] = True
    return _nanmean(change[seams]), _nanmean(change[~near])


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
