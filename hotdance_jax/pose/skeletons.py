"""Skeleton layouts and converters into the canonical OpenPose-18 body layout (and into
OpenPose-18 with OpenPose's two 21-keypoint hands).

Keypoint arrays are (..., T, J, D): T frames, J joints of the source layout, D = 2 (pixels, x right,
y down) or 3 (a 3D skeleton before projection). Confidence arrays are (..., T, J) in [0, 1]; an
invisible joint has confidence 0 and its coordinates are meaningless (often NaN).
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np

from hotdance_jax.errors import InputError

HAND_SIDES = ("left", "right")  # the hands' order in a skeleton with hands


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A keypoint layout: joint names, limbs drawn between joints, and left/right joint pairs.

    The body's joints come first; a skeleton with hands (`hand_joints` > 0) follows them with the
    left hand's `hand_joints` joints, then the right hand's, each in OpenPose's hand order.
    """

    name: str
    joints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    limb_colors: tuple[tuple[int, int, int], ...] = ()
    joint_colors: tuple[tuple[int, int, int], ...] = ()
    hand_joints: int = 0  # joints per hand; 0: no hands, every joint is the body

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def num_body_joints(self) -> int:
        """The number of body joints: joints [0, num_body_joints) are the body."""
        return self.num_joints - 2 * self.hand_joints

    @property
    def body(self) -> slice:
        """The body's joints, as a slice of the joint axis."""
        return slice(0, self.num_body_joints)

    @property
    def has_hands(self) -> bool:
        return self.hand_joints > 0

    def hand(self, side: str) -> slice:
        """The joints of the `side` (of HAND_SIDES) hand, as a slice of the joint axis."""
        start = self.num_body_joints + (0 if side == "left" else self.hand_joints)
        return slice(start, start + self.hand_joints)

    def is_hand_limb(self, limb: int) -> bool:
        """Whether limb `limb` joins two hand joints (it is drawn as OpenPose draws hands)."""
        return min(self.limbs[limb]) >= self.num_body_joints

    def index(self, joint: str) -> int:
        return self.joints.index(joint)

    def flip_permutation(self) -> np.ndarray:
        """(J,) int: joint j of a mirrored pose is joint perm[j] of the original."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


# RGB colours of OpenPose's renderer (and of the ControlNet-OpenPose training images).
_OPENPOSE_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

OPENPOSE_18 = Skeleton(
    name="openpose18",
    joints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
        "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
    ),
    # The 17 limbs OpenPose draws, in its drawing order (neck-shoulders first, face last).
    limbs=(
        (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
        (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    ),
    flip_pairs=((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
    # OpenPose's conventional rendering colours: limb i and joint j in colour i and j.
    limb_colors=_OPENPOSE_COLORS[:17],
    joint_colors=_OPENPOSE_COLORS,
)

COCO_17 = Skeleton(
    name="coco17",
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
        "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    limbs=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
)

BODY_25 = Skeleton(
    name="body25",
    joints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
        "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
        "right_heel",
    ),
    limbs=(
        (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
        (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19),
        (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
    ),
    flip_pairs=(
        (2, 5), (3, 6), (4, 7), (9, 12), (10, 13), (11, 14), (15, 16), (17, 18), (19, 22),
        (20, 23), (21, 24),
    ),
)

# Dance with Melody (Tang et al. 2018): 23 motion-capture joints, root-relative, y up, in cm.
# The dataset ships no joint names; these were identified from the data (rigid bone lengths over
# all 18 performances, heights in upright frames, and the heel->toe direction for facing): two
# head points (right and left side of the head, 11 cm apart), a spine point, per arm shoulder /
# elbow / a forearm marker / wrist / hand, per leg hip / knee / ankle / heel / toe. Left and right
# assume a right-handed coordinate frame (left = up x forward).
DWM_23 = Skeleton(
    name="dwm23",
    joints=(
        "head_right", "head_left", "spine", "right_shoulder", "right_elbow", "right_forearm",
        "right_wrist", "right_hip", "right_knee", "right_ankle", "right_heel", "right_toe",
        "left_shoulder", "left_elbow", "left_hand", "left_wrist", "left_hip", "left_knee",
        "left_ankle", "left_heel", "left_toe", "left_forearm", "right_hand",
    ),
    limbs=(
        (3, 12), (3, 4), (4, 6), (6, 22), (12, 13), (13, 15), (15, 14), (2, 3), (2, 12),
        (2, 7), (2, 16), (7, 16), (7, 8), (8, 9), (9, 10), (10, 11), (16, 17), (17, 18),
        (18, 19), (19, 20), (0, 1),
    ),
    flip_pairs=(
        (0, 1), (3, 12), (4, 13), (5, 21), (6, 15), (22, 14), (7, 16), (8, 17), (9, 18),
        (10, 19), (11, 20),
    ),
)

# OpenPose's hand (and COCO-WholeBody's, DWPose's): the wrist, then per finger from thumb to
# pinky its four joints from the palm out.
_HAND_JOINTS = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
# The 20 edges OpenPose draws per hand: wrist -> each finger's base, then along the finger.
_HAND_LIMBS = tuple((0 if j % 4 == 1 else j - 1, j) for j in range(1, 21))
# OpenPose draws hand edge i in hue i / 20 at full saturation and value, each hand's joints in
# (0, 0, 255) (blue in ControlNet-OpenPose images).
_HAND_LIMB_COLORS = tuple(
    tuple(round(255 * c) for c in colorsys.hsv_to_rgb(i / len(_HAND_LIMBS), 1.0, 1.0))
    for i in range(len(_HAND_LIMBS))
)
_HAND_JOINT_COLOR = (0, 0, 255)


def _with_hands(body: Skeleton, name: str) -> Skeleton:
    """`body` followed by a left and a right OpenPose hand (21 joints, 20 limbs each)."""
    per_hand = len(_HAND_JOINTS)
    left, right = body.num_joints, body.num_joints + per_hand
    return Skeleton(
        name=name,
        joints=body.joints + tuple(f"{side}_hand_{joint}" for side in ("left", "right")
                                   for joint in _HAND_JOINTS),
        limbs=body.limbs + tuple((start + a, start + b) for start in (left, right)
                                 for a, b in _HAND_LIMBS),
        flip_pairs=body.flip_pairs + tuple((left + j, right + j) for j in range(per_hand)),
        limb_colors=body.limb_colors + 2 * _HAND_LIMB_COLORS,
        joint_colors=body.joint_colors + (_HAND_JOINT_COLOR,) * (2 * per_hand),
        hand_joints=per_hand,
    )


OPENPOSE_18_HANDS = _with_hands(OPENPOSE_18, "openpose18_hands")

SKELETONS = {s.name: s for s in (OPENPOSE_18, OPENPOSE_18_HANDS, COCO_17, BODY_25, DWM_23)}

# COCO-WholeBody (DWPose's output): 133 keypoints, the COCO-17 body, 6 foot, 68 face, then the left
# and the right hand in OpenPose's hand order.
WHOLEBODY_133_JOINTS = 133
_WHOLEBODY_BODY = slice(0, COCO_17.num_joints)
_WHOLEBODY_HANDS = slice(91, 133)


def skeleton_by_name(name: str) -> Skeleton:
    """The skeleton called `name` (a key of SKELETONS); InputError naming it otherwise."""
    if name not in SKELETONS:
        raise InputError(f"unknown skeleton {name!r}; expected one of {sorted(SKELETONS)}")
    return SKELETONS[name]


# The layouts the pipeline trains on (config.pose.skeleton), by joint count: every source
# converts into one, and an array of poses tells its layout by its number of joints.
PIPELINE_SKELETONS = {s.num_joints: s for s in (OPENPOSE_18, OPENPOSE_18_HANDS)}


def pipeline_skeleton(name: str, where: str = "config.pose.") -> Skeleton:
    """The training layout called `name` (config.pose.skeleton's values); InputError naming it,
    after `where`, otherwise."""
    names = {s.name: s for s in PIPELINE_SKELETONS.values()}
    if name not in names:
        raise InputError(f"{where}skeleton {name!r}; expected one of {sorted(names)}")
    return names[name]


def skeleton_of(num_joints: int) -> Skeleton:
    """The pipeline layout of poses with `num_joints` joints (18: openpose18, 60:
    openpose18_hands); InputError for another count."""
    if num_joints not in PIPELINE_SKELETONS:
        raise InputError(f"poses of {num_joints} keypoints; expected "
                         f"{' or '.join(map(str, PIPELINE_SKELETONS))} (openpose18, with hands)")
    return PIPELINE_SKELETONS[num_joints]


def body_of(keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The body's keypoints (..., K_body, 2) and confidence (..., K_body) of pipeline poses
    (..., K, 2), (..., K) in either skeleton."""
    body = skeleton_of(np.shape(keypoints)[-2]).body
    return keypoints[..., body, :], confidence[..., body]


# For each OpenPose-18 joint, the source joints whose mean it is; () = no counterpart (invisible).
# A joint built from several source joints is visible only when all of them are.
_TO_OPENPOSE_18: dict[str, tuple[tuple[int, ...], ...]] = {
    # COCO-17 has every OpenPose-18 joint but the neck, which is the shoulders' midpoint.
    "coco17": (
        (0,), (5, 6), (6,), (8,), (10,), (5,), (7,), (9,), (12,), (14,), (16,), (11,), (13,),
        (15,), (2,), (1,), (4,), (3,),
    ),
    # BODY_25's first 19 joints minus mid_hip (8) are OpenPose-18; feet and mid_hip are dropped.
    "body25": (
        (0,), (1,), (2,), (3,), (4,), (5,), (6,), (7,), (9,), (10,), (11,), (12,), (13,), (14,),
        (15,), (16,), (17,), (18,),
    ),
    # Dance with Melody: no nose or eyes (invisible); ears are the two side-of-head points; the
    # neck is the shoulders' midpoint as for COCO; wrists are the wrist joints, not the hands.
    "dwm23": (
        (), (3, 12), (3,), (4,), (6,), (12,), (13,), (15,), (7,), (8,), (9,), (16,), (17,), (18,),
        (), (), (0,), (1,),
    ),
}


def to_openpose18(
    keypoints: np.ndarray, confidence: np.ndarray | None, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Converts (..., T, J, D) keypoints of layout `source` to OpenPose-18 (..., T, 18, D).

    `confidence` (..., T, J) defaults to 1 where the coordinates are finite. A source joint with
    non-finite coordinates counts as invisible. Returns keypoints (NaN where invisible) and
    confidence (..., T, 18) (0 where invisible; the minimum over the joints averaged).
    """
    if source not in _TO_OPENPOSE_18:
        raise InputError(f"unknown skeleton {source!r}; expected one of {sorted(_TO_OPENPOSE_18)}")
    keypoints, confidence = _checked(keypoints, confidence, source,
                                     SKELETONS[source].num_joints)
    out_xy = np.full((*keypoints.shape[:-2], OPENPOSE_18.num_joints, keypoints.shape[-1]), np.nan,
                     dtype=np.float32)
    out_conf = np.zeros((*keypoints.shape[:-2], OPENPOSE_18.num_joints), dtype=np.float32)
    for target, sources in enumerate(_TO_OPENPOSE_18[source]):
        if not sources:
            continue
        idx = list(sources)
        conf = confidence[..., idx].min(axis=-1)
        out_conf[..., target] = conf
        out_xy[..., target, :] = np.where(
            conf[..., None] > 0, keypoints[..., idx, :].mean(axis=-2), np.nan
        )
    return out_xy, out_conf


def wholebody_to_openpose18_hands(
    keypoints: np.ndarray, confidence: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Converts (..., T, 133, D) COCO-WholeBody keypoints (DWPose) to OpenPose-18 with hands.

    The body is its COCO-17 part (joints 0-16) through `to_openpose18`, the hands its joints
    91-111 (left) and 112-132 (right); feet and face are dropped. `confidence` (..., T, 133)
    defaults to 1 where the coordinates are finite. Returns keypoints (..., T, 60, D) (NaN where
    invisible) and confidence (..., T, 60).
    """
    keypoints, confidence = _checked(keypoints, confidence, "whole-body", WHOLEBODY_133_JOINTS)
    body = to_openpose18(keypoints[..., _WHOLEBODY_BODY, :], confidence[..., _WHOLEBODY_BODY],
                         COCO_17.name)
    return with_hands(*body, keypoints[..., _WHOLEBODY_HANDS, :],
                      confidence[..., _WHOLEBODY_HANDS])


def with_hands(
    body: np.ndarray, body_confidence: np.ndarray, hands: np.ndarray, hands_confidence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose-18 body (..., 18, D), (..., 18) and hands (..., 42, D), (..., 42) (the left hand's
    21 joints, then the right's, in OpenPose's order) -> OPENPOSE_18_HANDS keypoints (..., 60, D)
    and confidence (..., 60). A hand joint with confidence 0 or non-finite coordinates is
    invisible: NaN, confidence 0."""
    hands, hands_confidence = _checked(hands, hands_confidence, "hands",
                                       2 * OPENPOSE_18_HANDS.hand_joints)
    hands = np.where(hands_confidence[..., None] > 0, hands, np.nan)
    return (np.concatenate([np.asarray(body, np.float32), hands], axis=-2),
            np.concatenate([np.asarray(body_confidence, np.float32), hands_confidence], axis=-1))


def _checked(
    keypoints: np.ndarray, confidence: np.ndarray | None, what: str, joints: int
) -> tuple[np.ndarray, np.ndarray]:
    """float32 (..., joints, D) keypoints and (..., joints) confidence, 0 where the coordinates
    are not finite (`confidence` None: 1 where they are); InputError for another joint count."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim < 2 or keypoints.shape[-2] != joints:
        raise InputError(f"{what} keypoints must have shape (..., {joints}, D), "
                         f"got {keypoints.shape}")
    finite = np.all(np.isfinite(keypoints), axis=-1)
    if confidence is None:
        confidence = finite.astype(np.float32)
    return keypoints, np.where(finite, np.asarray(confidence, dtype=np.float32), 0.0)


def flip_horizontal(
    keypoints: np.ndarray, confidence: np.ndarray, width: float, skeleton: Skeleton | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mirrors (..., T, J, 2) pixel keypoints about the frame's vertical centre line.

    x -> width - x, and every left joint trades places with its right twin, so the result is the
    pose a mirrored video would show. Confidence (..., T, J) is permuted the same way. `skeleton`
    defaults to the pipeline layout of J joints (skeleton_of).
    """
    perm = (skeleton or skeleton_of(np.shape(keypoints)[-2])).flip_permutation()
    flipped = np.asarray(keypoints, dtype=np.float32)[..., perm, :].copy()
    flipped[..., 0] = width - flipped[..., 0]
    return flipped, np.asarray(confidence)[..., perm]
