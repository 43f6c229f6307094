"""Beat alignment: motion beats of a dance and the beat align score (BAS) against music beats."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from hotdance_jax.metrics.smoothness import mean_keypoint_speed

SIGMA_FRAMES_AT_60FPS = 3.0  # BAS's sigma (Bailando, EDGE): 3 frames at 60 fps
SPEED_SMOOTHING_FRAMES = 1.0  # Gaussian sigma of the speed curve, in frames


def motion_beats(keypoints: np.ndarray, confidence: np.ndarray, fps: float) -> np.ndarray:
    """(M,) frame indices of motion beats: local minima of the Gaussian-smoothed mean keypoint
    speed of a (T, K, 2) pixel sequence with (T, K) confidence."""
    speed = gaussian_filter1d(mean_keypoint_speed(np.nan_to_num(keypoints), confidence, fps),
                              SPEED_SMOOTHING_FRAMES)
    return np.flatnonzero((speed[1:-1] < speed[:-2]) & (speed[1:-1] < speed[2:])) + 1


def beat_align_score(keypoints: np.ndarray, confidence: np.ndarray, beat_times: np.ndarray,
                     fps: float) -> float:
    """BAS: the mean over music beats (seconds, those inside the dance) of exp(-d^2 / (2 s^2)),
    d the distance in frames to the nearest motion beat, s = 3 frames at 60 fps scaled to `fps`.
    NaN when no music beat falls inside the dance; 0 when the dance has no motion beat."""
    beats = np.asarray(beat_times, np.float64) * fps
    beats = beats[(beats >= 1) & (beats <= len(keypoints) - 2)]
    if beats.size == 0:
        return float("nan")
    motion = motion_beats(keypoints, confidence, fps)
    if motion.size == 0:
        return 0.0
    distance = np.abs(beats[:, None] - motion[None, :]).min(axis=1)
    sigma = SIGMA_FRAMES_AT_60FPS * fps / 60.0
    return float(np.exp(-(distance**2) / (2 * sigma**2)).mean())
