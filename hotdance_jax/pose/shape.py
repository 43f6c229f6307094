"""The dancer's shape pose: a neutral standing pose with their limb lengths and on-screen scale.

Shape-only references (docs/design.md section 1) show the model who is dancing without telling it
how: the same neutral posture for every dancer, drawn with this dancer's limbs, where they stand.
"""

from __future__ import annotations

import functools

import numpy as np

from hotdance_jax.pose.skeletons import OPENPOSE_18, Skeleton, skeleton_of

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
# A hanging hand: each finger (thumb to pinky) points this many radians from straight down
# toward the body's centre line, its joints along that line.
_FINGER_INWARD = (0.6, 0.25, 0.05, -0.1, -0.25)
_WRISTS = {"left": OPENPOSE_18.index("left_wrist"), "right": OPENPOSE_18.index("right_wrist")}
# A joint counts as part of the dancer if it is seen in at least this fraction of frames.
_MIN_SEEN_FRACTION = 0.2
# Limb length = this percentile of its projected length: near the true length, since a limb is
# foreshortened in most frames but not in all, and robust to a few bad detections.
_LENGTH_PERCENTILE = 90


@functools.cache
def _tree(skeleton: Skeleton) -> dict[tuple[int, int], tuple[float, float]]:
    """Parent -> child edges of `skeleton` in the order a child is placed, each with its neutral
    direction. The neck -> ear edges come after the face chain and place only an ear it could not
    reach; a hand hangs from its body wrist (body wrist -> hand wrist, then the fingers)."""
    tree = {edge: _LIMB_DIRECTIONS[edge] for edge in (*OPENPOSE_18.limbs, (1, 16), (1, 17))}
    for side, inward in (("right", 1.0), ("left", -1.0)):  # the right hand is on the image's left
        if not skeleton.has_hands:
            break
        root = skeleton.hand(side).start
        tree[(_WRISTS[side], root)] = _DOWN
        for a, b in skeleton.limbs:
            if a >= root and b < root + skeleton.hand_joints:
                angle = inward * _FINGER_INWARD[(b - root - 1) // 4]
                tree[(a, b)] = (float(np.sin(angle)), float(np.cos(angle)))
    return tree


def limb_lengths(keypoints: np.ndarray, confidence: np.ndarray) -> dict[tuple[int, int], float]:
    """Projected length in pixels of every limb of the skeleton's tree seen in some frame.

    keypoints: (N, K, 2) pixels; confidence: (N, K); K = 18 or 60 (skeleton_of).
    """
    lengths = {}
    for a, b in _tree(skeleton_of(keypoints.shape[1])):
        both = (confidence[:, a] > 0) & (confidence[:, b] > 0)
        if both.any():
            d = np.linalg.norm(keypoints[both, a] - keypoints[both, b], axis=-1)
            lengths[(a, b)] = float(np.percentile(d, _LENGTH_PERCENTILE))
    return lengths


def shape_pose(keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The neutral pose of the dancer seen in (N, K, 2) pixel keypoints with (N, K) confidence,
    K = 18 (OpenPose-18) or 60 (with hands: each hangs from its wrist, fingers down).

    N may be 1 (a single reference frame). Returns keypoints (K, 2) pixels (NaN where the dancer
    has no such joint) and confidence (K,) (1 where present, 0 where not). The pose is placed so
    that its joints sit, in the median, where the dancer's joints were.
    """
    keypoints = np.asarray(keypoints, np.float32)
    confidence = np.asarray(confidence, np.float32)
    num_joints = keypoints.shape[1]
    seen = (confidence > 0).mean(axis=0) >= _MIN_SEEN_FRACTION
    lengths = limb_lengths(keypoints, confidence)
    local = np.full((num_joints, 2), np.nan, np.float32)
    local[_NECK] = 0.0
    for (a, b), direction in _tree(skeleton_of(num_joints)).items():
        if np.isnan(local[a, 0]) or not np.isnan(local[b, 0]) or not seen[b]:
            continue
        if (a, b) in lengths:
            direction = np.asarray(direction, np.float32)
            local[b] = local[a] + lengths[(a, b)] * direction / np.linalg.norm(direction)
    placed = ~np.isnan(local[:, 0])
    if not placed[_NECK] or placed.sum() < 2:
        return np.full_like(local, np.nan), np.zeros(num_joints, np.float32)
    usable = (confidence > 0) & placed[None, :]
    offset = np.median((keypoints - local[None])[usable], axis=0)
    return np.where(placed[:, None], local + offset, np.nan), placed.astype(np.float32)
