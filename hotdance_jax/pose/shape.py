"""The dancer's shape pose: a neutral standing pose with their limb lengths and on-screen scale.

Shape-only references (docs/design.md section 1) show the model who is dancing without telling it
how: the same neutral posture for every dancer, drawn with this dancer's limbs, where they stand.
"""

from __future__ import annotations

import numpy as np

from hotdance_jax.pose.skeletons import OPENPOSE_18

# Unit directions (x right, y down) of each OpenPose-18 limb in the neutral pose, parent -> child,
# for a dancer facing the camera (their right on the image's left). Hip and face limbs are
# diagonal; arms and legs hang straight down.
_DOWN = (0.0, 1.0)
_LIMB_DIRECTIONS = {
    (1, 2): (-1.0, 0.0), (1, 5): (1.0, 0.0),  # neck -> shoulders
    (2, 3): _DOWN, (3, 4): _DOWN, (5, 6): _DOWN, (6, 7): _DOWN,  # arms
    (1, 8): (-0.3, 1.0), (1, 11): (0.3, 1.0),  # neck -> hips
    (8, 9): _DOWN, (9, 10): _DOWN, (11, 12): _DOWN, (12, 13): _DOWN,  # legs
    (1, 0): (0.0, -1.0),  # neck -> nose
    (0, 14): (-0.6, -0.8), (0, 15): (0.6, -0.8),  # nose -> eyes
    (14, 16): (-1.0, 0.3), (15, 17): (1.0, 0.3),  # eyes -> ears
    (1, 16): (-0.5, -1.0), (1, 17): (0.5, -1.0),  # neck -> ears, when nose and eyes are unseen
}
_NECK = 1
# Parent -> child edges in the order a child is placed; the neck -> ear edges come last and are
# used only for an ear the face chain could not reach.
_TREE = (*OPENPOSE_18.limbs, (1, 16), (1, 17))
# A joint counts as part of the dancer if it is seen in at least this fraction of frames.
_MIN_SEEN_FRACTION = 0.2
# Limb length = this percentile of its projected length: near the true length, since a limb is
# foreshortened in most frames but not in all, and robust to a few bad detections.
_LENGTH_PERCENTILE = 90


def limb_lengths(keypoints: np.ndarray, confidence: np.ndarray) -> dict[tuple[int, int], float]:
    """Projected length in pixels of every limb of `_TREE` seen in some frame.

    keypoints: (N, 18, 2) pixels; confidence: (N, 18).
    """
    lengths = {}
    for a, b in _TREE:
        both = (confidence[:, a] > 0) & (confidence[:, b] > 0)
        if both.any():
            d = np.linalg.norm(keypoints[both, a] - keypoints[both, b], axis=-1)
            lengths[(a, b)] = float(np.percentile(d, _LENGTH_PERCENTILE))
    return lengths


def shape_pose(keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The neutral pose of the dancer seen in (N, 18, 2) pixel keypoints with (N, 18) confidence.

    N may be 1 (a single reference frame). Returns keypoints (18, 2) pixels (NaN where the dancer
    has no such joint) and confidence (18,) (1 where present, 0 where not). The pose is placed so
    that its joints sit, in the median, where the dancer's joints were.
    """
    keypoints = np.asarray(keypoints, np.float32)
    confidence = np.asarray(confidence, np.float32)
    seen = (confidence > 0).mean(axis=0) >= _MIN_SEEN_FRACTION
    lengths = limb_lengths(keypoints, confidence)
    local = np.full((OPENPOSE_18.num_joints, 2), np.nan, np.float32)
    local[_NECK] = 0.0
    for a, b in _TREE:
        if np.isnan(local[a, 0]) or not np.isnan(local[b, 0]) or not seen[b]:
            continue
        if (a, b) in lengths:
            direction = np.asarray(_LIMB_DIRECTIONS[(a, b)], np.float32)
            local[b] = local[a] + lengths[(a, b)] * direction / np.linalg.norm(direction)
    placed = ~np.isnan(local[:, 0])
    if not placed[_NECK] or placed.sum() < 2:
        return np.full_like(local, np.nan), np.zeros(OPENPOSE_18.num_joints, np.float32)
    usable = (confidence > 0) & placed[None, :]
    offset = np.median((keypoints - local[None])[usable], axis=0)
    return np.where(placed[:, None], local + offset, np.nan), placed.astype(np.float32)
