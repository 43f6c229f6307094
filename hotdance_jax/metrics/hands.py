"""Hand figures of the hand-aware variant: finger keypoints in hand lengths, their jitter, and
per-hand pose features (finger spread and curl) for a hand FID.

A hand is OpenPose's 21 keypoints (the wrist, then four per finger from thumb to pinky, palm
out). Positions are taken relative to the hand's wrist, so the figures are the fingers' own
motion, not the arm's; the unit is the dancer's hand length: the 90th percentile over frames of
the wrist to middle finger tip distance (an open hand, robust to curled and foreshortened ones).
"""

from __future__ import annotations

import warnings

import numpy as np

from hotdance_jax.metrics.smoothness import jitter
from hotdance_jax.pose.skeletons import HAND_SIDES, Skeleton

MIDDLE_TIP = 12  # the middle finger's tip in OpenPose's hand order (0: the wrist)
_FINGERS = np.arange(1, 21).reshape(5, 4)  # per finger (thumb .. pinky) its joints, palm out
_LENGTH_PERCENTILE = 90
# Per-hand features of one frame: 5 curls (thumb .. pinky), 4 spreads (adjacent fingers).
HAND_FEATURES = 9


def hand_lengths(keypoints: np.ndarray, confidence: np.ndarray, skeleton: Skeleton
                 ) -> np.ndarray:
    """(..., 2) the left and the right hand's length in pixels in (..., T, K, 2) keypoints with
    (..., T, K) confidence: over the T frames, the 90th percentile of the wrist to middle finger
    tip distance where both are seen; NaN for a hand never seen so."""
    out = []
    for side in HAND_SIDES:
        hand = skeleton.hand(side)
        joints, seen = keypoints[..., hand, :], confidence[..., hand] > 0
        reach = np.linalg.norm(joints[..., MIDDLE_TIP, :] - joints[..., 0, :], axis=-1)
        reach = np.where(seen[..., MIDDLE_TIP] & seen[..., 0], reach, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a hand never seen: NaN
            out.append(np.nanpercentile(reach, _LENGTH_PERCENTILE, axis=-1))
    return np.stack(out, axis=-1)


def hand_frames(keypoints: np.ndarray, confidence: np.ndarray, skeleton: Skeleton
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hand (left, right) of `skeleton`: positions (T, 21, 2) relative to its wrist in hand
    lengths (x toward the thumb side of a hand hanging in front of the body: the left hand
    mirrored) and visible (T, 21), every joint invisible in a frame whose wrist is. A hand never
    seen open enough to measure is all invisible."""
    out = []
    for side, length in zip(HAND_SIDES, hand_lengths(keypoints, confidence, skeleton),
                            strict=True):
        joints = np.asarray(keypoints[:, skeleton.hand(side)], np.float64)
        seen = np.asarray(confidence[:, skeleton.hand(side)]) > 0
        seen &= seen[:, :1]
        relative = joints - joints[:, :1]
        if side == "left":
            relative[..., 0] = -relative[..., 0]
        if not length > 0:
            seen[:] = False
            length = 1.0
        out.append((np.where(seen[..., None], relative / length, np.nan), seen))
    return out


def hand_jitter(hands: list[tuple[np.ndarray, np.ndarray]], fps: float) -> float:
    """Mean |acceleration| of the finger keypoints relative to their wrists, in hand lengths per
    s^2, over both `hands` (hand_frames of a dance; metrics.jitter of each); NaN when no hand
    is seen."""
    values = [jitter(positions, visible, fps) for positions, visible in hands]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def hand_pose_features(positions: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(T, 9) per frame of one hand's (T, 21, 2) wrist-relative positions: each finger's curl
    (1 - its base-to-tip distance over the sum of its three bone lengths in that frame: 0
    straight, toward 1 folded) and the angle in radians between adjacent fingers' base-to-tip
    directions (their spread); NaN where a finger is not seen."""
    base, tip = positions[:, _FINGERS[:, 0]], positions[:, _FINGERS[:, 3]]
    bones = np.linalg.norm(np.diff(positions[:, _FINGERS], axis=2), axis=-1).sum(axis=-1)
    reach = tip - base
    curl = 1.0 - np.linalg.norm(reach, axis=-1) / np.where(bones > 0, bones, np.nan)
    angle = np.arctan2(reach[..., 0], reach[..., 1])
    spread = np.abs((np.diff(angle, axis=-1) + np.pi) % (2 * np.pi) - np.pi)
    finger_seen = visible[:, _FINGERS].all(axis=-1)
    curl = np.where(finger_seen, curl, np.nan)
    spread = np.where(finger_seen[:, 1:] & finger_seen[:, :-1], spread, np.nan)
    return np.concatenate([curl, spread], axis=-1)


def hand_window_features(positions: np.ndarray, visible: np.ndarray, span: slice
                         ) -> np.ndarray | None:
    """(18,) the mean and the std over the frames of `span` of hand_pose_features: one sample
    of the hand FID; None when some feature is never seen in the window."""
    features = hand_pose_features(positions[span], visible[span])
    seen = np.isfinite(features)
    if not seen.any(axis=0).all():
        return None
    return np.concatenate([np.nanmean(features, axis=0), np.nanstd(features, axis=0)])
