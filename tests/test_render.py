"""The skeleton renderer: hands drawn as OpenPose draws them."""

from __future__ import annotations

import numpy as np

from hotdance_jax.pose import OPENPOSE_18, OPENPOSE_18_HANDS
from hotdance_jax.render import skeleton_frame
from tests.test_skeletons import hand_edge_color

SIZE = (400, 300)  # width, height in pixels: body and hand lines 2 and 1 pixels wide
HAND_BOX = (slice(40, 300), slice(240, 400))  # rows, columns holding the hands, no body


def hands_pose() -> tuple[np.ndarray, np.ndarray]:
    """(60, 2) pixels, (60,) confidence: a body left of x = 150 and two open hands right of it,
    each finger straight up from its base in 12-pixel bones (wrists at (300, 130), (300, 280))."""
    rng = np.random.default_rng(0)
    keypoints = np.zeros((60, 2))
    keypoints[:18] = rng.uniform([20, 20], [150, 280], (18, 2))
    for start, wrist_y in ((18, 130), (39, 280)):
        keypoints[start] = (300, wrist_y)
        for finger in range(5):
            for joint in range(4):
                keypoints[start + 1 + 4 * finger + joint] = (260 + 20 * finger,
                                                             wrist_y - 40 - 12 * joint)
    return keypoints, np.ones(60)


def test_hands_are_drawn_in_openpose_hand_colours_where_a_body_render_has_none():
    keypoints, confidence = hands_pose()
    hands = skeleton_frame(keypoints, confidence, SIZE, 1.0, skeleton=OPENPOSE_18_HANDS)
    body = skeleton_frame(keypoints[:18], confidence[:18], SIZE, 1.0, skeleton=OPENPOSE_18)
    assert not body[HAND_BOX].any()
    outside = np.ones(body.shape[:2], bool)
    outside[HAND_BOX] = False
    np.testing.assert_array_equal(hands[outside], body[outside])  # the body as before
    for start in (18, 39):
        for finger in range(5):
            for joint in range(3):  # the finger's bones: hand edge 1 + 4 finger + joint
                a = keypoints[start + 1 + 4 * finger + joint].astype(int)
                x, y = a[0], a[1] - 6  # the bone's midpoint, between two joint dots
                edge = 1 + 4 * finger + joint
                np.testing.assert_allclose(hands[y, x], hand_edge_color(edge), atol=1)
                assert not hands[y, [x - 1, x + 1]].any()  # 1 pixel wide, the body's 2
            tip = keypoints[start + 4 + 4 * finger].astype(int)
            np.testing.assert_array_equal(hands[tip[1], tip[0]], (0, 0, 255))  # joints: blue
            assert not hands[tip[1], [tip[0] - 2, tip[0] + 2]].any()  # dots of radius 1, not 2


def test_a_small_hand_is_drawn_without_joint_dots_so_its_fingers_stay_apart():
    """A hand whose middle finger reaches under 30 pixels from the wrist: lines only (dots of
    radius 1 would fill the gaps between its fingers)."""
    keypoints, confidence = hands_pose()
    left = OPENPOSE_18_HANDS.hand("left")
    wrist = keypoints[left][0]
    keypoints[left] = wrist + (keypoints[left] - wrist) * 0.35  # reach 76 -> 26.6 pixels
    hands = skeleton_frame(keypoints, confidence, SIZE, 1.0, skeleton=OPENPOSE_18_HANDS)
    for finger in range(5):
        tip = keypoints[left.start + 4 + 4 * finger]
        x, y = np.round(tip).astype(int)
        assert not (hands[y - 1:y + 2, x - 1:x + 2] == (0, 0, 255)).all(axis=-1).any()
        x, y = np.round(tip + np.array([0, 2])).astype(int)  # on its last bone
        np.testing.assert_allclose(hands[y, x], hand_edge_color(3 + 4 * finger), atol=1)
    right_tip = keypoints[OPENPOSE_18_HANDS.hand("right").start + 4].astype(int)
    np.testing.assert_array_equal(hands[right_tip[1], right_tip[0]], (0, 0, 255))
