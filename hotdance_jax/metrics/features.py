"""Motion features of 2D dances for FID and diversity: kinetic (FACT/Bailando after Onuma et al.)
and geometric (Bailando's relational "manual" features after Mueller et al., adapted to 2D).

Every feature starts from `body_frame`: OpenPose-18 keypoints in pixels become positions in body
lengths, x right and y up, with the root (the hips' midpoint) at the origin in the first frame
where it is seen (as Bailando starts every sequence at zero root position). The body length L is
the dancer's torso, the mean of the neck-to-hip limb lengths of `pose.shape.limb_lengths` (90th
percentile of the projected length, so bending does not shrink it). Features are therefore the
same whatever the frame size, the dancer's size on screen and where they stand; they depend on
fps only through the frame time (velocities in L/s, accelerations in L/s^2).

Invisible keypoints (confidence 0 or non-finite) never enter a difference or a relation: a velocity
needs the keypoint in both frames, an acceleration in all three, a relation every joint it names.
Each per-frame quantity is averaged over the frames where it is defined; a feature defined in no
frame of the window is 0 (as for a joint that never moves). Dimensions that are constant over the
reference set, such as the nose and eyes that Dance with Melody never shows, carry no information
and are left out by `distances.standardise`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve1d

from hotdance_jax.errors import InputError
from hotdance_jax.pose.shape import limb_lengths
from hotdance_jax.pose.skeletons import OPENPOSE_18

_J = {name: i for i, name in enumerate(OPENPOSE_18.joints)}
ROOT = OPENPOSE_18.num_joints  # index of the hips' midpoint in `_with_root` arrays
_TORSO_LIMBS = ((_J["neck"], _J["right_hip"]), (_J["neck"], _J["left_hip"]))
KINETIC_WINDOW_SECONDS = 2 / 60  # FACT's sliding window: +-2 frames at 60 fps


def body_frame(keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 18, 2) pixel keypoints (y down) and (T, 18) confidence -> positions (T, 18, 2) in body
    lengths (x right, y up, root at the origin in its first visible frame) and visible (T, 18).

    InputError when no frame shows the neck with each hip (no body length) or both hips
    together (no root).
    """
    keypoints = np.asarray(keypoints, np.float64)
    visible = (np.asarray(confidence) > 0) & np.isfinite(keypoints).all(-1)
    lengths = limb_lengths(keypoints, visible.astype(np.float32))
    if not all(limb in lengths for limb in _TORSO_LIMBS):
        raise InputError("no frame shows the neck and both hips: no body length to scale by")
    body = float(np.mean([lengths[limb] for limb in _TORSO_LIMBS]))
    if not body > 0:
        raise InputError("the torso has zero length in every frame")
    root, seen = _hip_midpoint(keypoints, visible)
    if not seen.any():
        raise InputError("no frame shows both hips: no root to start from")
    origin = root[np.argmax(seen)]
    positions = (np.where(visible[..., None], keypoints, 0.0) - origin) / body * [1.0, -1.0]
    return positions, visible


def _hip_midpoint(positions: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) midpoint of the hips and (T,) where both hips are visible."""
    hips = [_J["right_hip"], _J["left_hip"]]
    return positions[:, hips].mean(axis=1), visible[:, hips].all(axis=1)


def _with_root(positions: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 19, 2) positions and (T, 19) visibility: the 18 keypoints and the root (index ROOT)."""
    root, seen = _hip_midpoint(positions, visible)
    return (np.concatenate([positions, root[:, None]], axis=1),
            np.concatenate([visible, seen[:, None]], axis=1))


def windows(num_frames: int, window: int) -> list[slice]:
    """Consecutive, non-overlapping windows of `window` frames; a partial last one is dropped."""
    return [slice(s, s + window) for s in range(0, num_frames - window + 1, window)]


# ---------------------------------------------------------------- kinetic


def kinetic_features(positions: np.ndarray, visible: np.ndarray, fps: float) -> np.ndarray:
    """(3K,) per keypoint [horizontal kinetic energy, vertical kinetic energy, energy expenditure]
    of (T, K, 2) body-length positions with (T, K) visibility (FACT's kinetic features in 2D).

    For every frame i >= 1, velocity v_i is the mean of the steps (p_t - p_{t-1}) * fps and
    acceleration a_i the mean of (p_{t+1} - 2 p_t + p_{t-1}) * fps^2 over t within +-w frames of
    i (w = 2 frames at 60 fps, scaled to fps, at least 1), using only steps where the keypoint is
    seen. Kinetic energies are the means of v_x^2 and v_y^2 (L^2/s^2; no mass, no 1/2, as FACT),
    energy expenditure the mean of |a| (L/s^2), each over the frames where it is defined.
    """
    half = max(1, round(KINETIC_WINDOW_SECONDS * fps))
    step = np.diff(positions, axis=0) * fps  # (T-1, K, 2): into frames 1..T-1
    step_seen = visible[1:] & visible[:-1]
    accel = np.diff(positions, 2, axis=0) * fps**2  # (T-2, K, 2): at frames 1..T-2
    accel_seen = visible[2:] & visible[1:-1] & visible[:-2]
    velocity, velocity_seen = _window_mean(step, step_seen, half)
    acceleration, acceleration_seen = _window_mean(_pad_one(accel), _pad_one(accel_seen), half)
    energy_h = _mean_where(velocity[..., 0] ** 2, velocity_seen)
    energy_v = _mean_where(velocity[..., 1] ** 2, velocity_seen)
    expenditure = _mean_where(np.linalg.norm(acceleration, axis=-1), acceleration_seen)
    return np.stack([energy_h, energy_v, expenditure], axis=-1).reshape(-1)


def _pad_one(x: np.ndarray) -> np.ndarray:
    """x with one zero (False) row appended along axis 0: frame T-1 has no acceleration of its
    own, only its neighbours'."""
    return np.concatenate([x, np.zeros_like(x[:1])])


def _window_mean(values: np.ndarray, seen: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of (N, K, D) `values` over the rows within +-half of each row where (N, K) `seen`,
    truncated at the ends; returns the means and where at least one row was seen."""
    kernel = np.ones(2 * half + 1)
    total = convolve1d(np.where(seen[..., None], values, 0.0), kernel, axis=0, mode="constant")
    count = convolve1d(seen.astype(np.float64), kernel, axis=0, mode="constant")
    return total / np.maximum(count, 1)[..., None], count > 0


def _mean_where(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(K,) mean over axis 0 of (N, K) values where seen; 0 for a column seen nowhere."""
    return np.where(seen, values, 0.0).sum(0) / np.maximum(seen.sum(0), 1)


# ---------------------------------------------------------------- geometric


def _side(side: str) -> list[tuple[str, str, tuple[int, ...], float]]:
    """The relations of one body side (see GEOMETRIC_FEATURES)."""
    other = "left" if side == "right" else "right"
    shoulder, elbow, wrist, hip, knee, ankle = (
        _J[f"{side}_{part}"] for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"))
    return [
        (f"{side}_wrist_above_neck", "above", (wrist, _J["neck"]), 0.0),
        (f"{side}_elbow_bent", "bent", (shoulder, elbow, wrist), 110.0),
        (f"{side}_arm_lifted", "lifted", (shoulder, elbow), 45.0),
        (f"{side}_wrist_fast", "fast", (wrist,), 2.0),
        (f"{side}_knee_bent", "bent", (hip, knee, ankle), 160.0),
        (f"{side}_thigh_lifted", "lifted", (hip, knee), 30.0),
        (f"{side}_foot_raised", "above", (ankle, _J[f"{other}_ankle"]), 0.1),
        (f"{side}_ankle_fast", "fast", (ankle,), 2.0),
    ]


# (name, kind, joints, threshold): thresholds in body lengths, L/s or degrees.
RELATIONS = (
    *_side("right"), *_side("left"),
    ("feet_apart", "apart_x", (_J["right_ankle"], _J["left_ankle"]), 0.5),
    ("wrists_apart", "apart", (_J["right_wrist"], _J["left_wrist"]), 1.5),
    ("torso_leaning", "leaning", (ROOT, _J["neck"]), 15.0),
    ("travelling", "fast", (ROOT,), 0.5),
)
GEOMETRIC_FEATURES = tuple(name for name, *_ in RELATIONS)


def geometric_features(positions: np.ndarray, visible: np.ndarray, fps: float) -> np.ndarray:
    """(20,) fractions of frames in which each relation of GEOMETRIC_FEATURES holds, for (T, 18, 2)
    body-length positions (x right, y up) with (T, 18) visibility.

    Per side (right, then left): wrist_above_neck (wrist higher than the neck); elbow_bent
    (shoulder-elbow-wrist angle < 110 deg); arm_lifted (upper arm more than 45 deg from the
    torso's downward direction, neck to root); wrist_fast (wrist speed > 2 L/s); knee_bent
    (hip-knee-ankle angle < 160 deg); thigh_lifted (thigh more than 30 deg from the torso's
    downward direction); foot_raised (ankle more than 0.1 L above the other ankle); ankle_fast
    (ankle speed > 2 L/s). Whole body: feet_apart (ankles more than 0.5 L apart horizontally);
    wrists_apart (wrists more than 1.5 L apart); torso_leaning (root-to-neck more than 15 deg
    from vertical); travelling (root speed > 0.5 L/s). Speeds are over the step into the frame.
    A relation counts in a frame only where every joint it names (and, for "lifted", the neck
    and root) is seen, for speeds also in the frame before.
    """
    p, seen = _with_root(positions, visible)
    values, defined = [], []
    for _, kind, joints, threshold in RELATIONS:
        needs = [*joints, _J["neck"], ROOT] if kind == "lifted" else list(joints)
        ok = seen[:, needs].all(axis=1)
        if kind == "fast":
            ok[1:] &= seen[:-1, needs].all(axis=1)
            ok[0] = False
        value = _relation(p, kind, joints, fps)
        values.append(value < threshold if kind == "bent" else value > threshold)
        defined.append(ok)
    return _mean_where(np.stack(values, 1).astype(np.float64), np.stack(defined, 1))


def _relation(p: np.ndarray, kind: str, joints: tuple[int, ...], fps: float) -> np.ndarray:
    """(T,) the quantity a relation compares with its threshold, from (T, 19, 2) positions."""
    a, b = p[:, joints[0]], p[:, joints[-1]]
    if kind == "above":  # height of a over b (L)
        return a[:, 1] - b[:, 1]
    if kind == "bent":  # inner angle at the middle joint (deg), compared with "<"
        return _angle(a - p[:, joints[1]], b - p[:, joints[1]])
    if kind == "lifted":  # angle of the limb a -> b from the torso's downward direction (deg)
        return _angle(b - a, p[:, ROOT] - p[:, _J["neck"]])
    if kind == "leaning":  # angle of a -> b from straight up (deg)
        return _angle(b - a, np.broadcast_to([0.0, 1.0], a.shape))
    if kind == "fast":  # speed over the step into the frame (L/s)
        return np.concatenate([[0.0], np.linalg.norm(np.diff(a, axis=0), axis=-1) * fps])
    if kind == "apart_x":  # horizontal distance (L)
        return np.abs(a[:, 0] - b[:, 0])
    return np.linalg.norm(a - b, axis=-1)  # "apart": distance (L)


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(T,) angle in degrees between (T, 2) vectors (90 where one of them is zero)."""
    norms = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
    cosine = np.sum(u * v, axis=-1) / np.maximum(norms, 1e-12)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
