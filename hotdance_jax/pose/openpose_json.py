"""One person of an OpenPose JSON file, read into a skeleton's layout and written back.

OpenPose writes a person as flat lists of x, y, confidence triples in pixels: `pose_keypoints_2d`
(18 OpenPose-18 or 25 BODY_25 keypoints) and, when it ran with hands, `hand_left_keypoints_2d`
and `hand_right_keypoints_2d` (21 keypoints each, in OpenPose's hand order). A missing keypoint
is (0, 0, 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hotdance_jax.errors import InputError
from hotdance_jax.pose.skeletons import OPENPOSE_18, Skeleton, to_openpose18, with_hands

BODY_KEY = "pose_keypoints_2d"
HAND_KEYS = {"left": "hand_left_keypoints_2d", "right": "hand_right_keypoints_2d"}
_BODY_25_JOINTS = 25


def read_person(person: Any, skeleton: Skeleton, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One OpenPose JSON person (a parsed dict) -> (K, 2) pixels and (K,) confidence of
    `skeleton` (openpose18, or openpose18_hands: the person must have both hands). InputError
    naming `where` for a missing or malformed list."""
    body = triples(person, BODY_KEY, where)
    keypoints, confidence = openpose18_body(body[:, :2], body[:, 2], where)
    if not skeleton.has_hands:
        return keypoints, confidence
    hands = np.concatenate([triples(person, HAND_KEYS[side], where, skeleton.hand_joints)
                            for side in ("left", "right")])
    return with_hands(keypoints, confidence, hands[:, :2], hands[:, 2])


def person_json(keypoints: np.ndarray, confidence: np.ndarray, skeleton: Skeleton) -> dict:
    """(K, 2) pixels (NaN where invisible) and (K,) confidence of `skeleton` -> an OpenPose JSON
    person: the body's triples, and the hands' when the skeleton has them; invisible is 0, 0, 0."""
    values = np.concatenate([np.nan_to_num(np.asarray(keypoints, np.float64)),
                             np.asarray(confidence, np.float64)[:, None]], axis=1).round(3)
    person = {"person_id": [-1], BODY_KEY: values[:skeleton.num_body_joints].ravel().tolist()}
    if skeleton.has_hands:
        for side, key in HAND_KEYS.items():
            person[key] = values[skeleton.hand(side)].ravel().tolist()
    return person


def openpose18_body(keypoints: np.ndarray, confidence: np.ndarray, where: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(J, 2) pixels and (J,) confidence of an OpenPose body, J = 18 (OpenPose-18, kept) or 25
    (BODY_25, converted) -> (18, 2) and (18,); InputError naming `where` for another J."""
    if len(keypoints) == _BODY_25_JOINTS:
        keypoints, confidence = to_openpose18(keypoints[None], confidence[None], "body25")
        return keypoints[0], confidence[0]
    if len(keypoints) != OPENPOSE_18.num_joints:
        raise InputError(f"{where}: {len(keypoints)} keypoints; expected 18 (OpenPose) or 25 "
                         "(BODY_25)")
    return keypoints, confidence


def triples(person: Any, key: str, where: str, joints: int | None = None) -> np.ndarray:
    """(J, 3) x, y, confidence of the person's flat list `key`; InputError naming `where` when
    it is missing, not numbers, not triples, or (given `joints`) not `joints` of them. The one
    parser of OpenPose JSON lists: `read_person` and the wild source's videos read through it."""
    values = person.get(key) if isinstance(person, dict) else None
    if not values:
        raise InputError(f"{where}: no {key} in the person"
                         + (" (a body-only pose; this skeleton has hands)" if joints else ""))
    try:
        flat = np.asarray(values, np.float32)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key} must be a flat list of numbers") from None
    if flat.ndim != 1 or flat.size % 3:
        raise InputError(f"{where}: {key} must be a flat list of x, y, confidence triples, got "
                         f"shape {flat.shape}")
    if joints is not None and flat.size != 3 * joints:
        raise InputError(f"{where}: {key} has {flat.size // 3} keypoints; expected {joints}")
    return flat.reshape(-1, 3)
