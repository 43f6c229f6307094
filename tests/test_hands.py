"""The hand-aware variant: config.pose.skeleton = "openpose18_hands" through the data stages."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline import build, precompute, segments
from data_pipeline.sources import synthetic
from hotdance_jax.errors import InputError
from hotdance_jax.pose import OPENPOSE_18, OPENPOSE_18_HANDS, flip_horizontal, skeleton_of
from hotdance_jax.pose.shape import shape_pose
from hotdance_jax.vae import image_channels
from tests.conftest import tiny_config

LEFT, RIGHT = OPENPOSE_18_HANDS.hand("left"), OPENPOSE_18_HANDS.hand("right")


def hands_config(**data_overrides):
    config = tiny_config(**data_overrides)
    config.pose.skeleton = OPENPOSE_18_HANDS.name
    return config


def hand_span(keypoints: np.ndarray, hand: slice) -> np.ndarray:
    """(T,) mean distance of a hand's five finger tips from its wrist, pixels."""
    joints = keypoints[:, hand]
    tips = joints[:, [4, 8, 12, 16, 20]]
    return np.linalg.norm(tips - joints[:, :1], axis=-1).mean(axis=-1)


def test_the_layout_of_poses_follows_their_joint_count():
    assert skeleton_of(18) is OPENPOSE_18
    assert skeleton_of(60) is OPENPOSE_18_HANDS
    with pytest.raises(InputError, match="poses of 25 keypoints; expected 18 or 60"):
        skeleton_of(25)
    assert image_channels("openpose18_hands") == 120
    with pytest.raises(InputError, match=r"config\.pose\.skeleton = 'coco17'"):
        image_channels("coco17")
    keypoints = np.random.default_rng(0).uniform(0, 100, (3, 60, 2)).astype(np.float32)
    flipped, _ = flip_horizontal(keypoints, np.ones((3, 60)), 100.0)
    np.testing.assert_allclose(flipped[:, LEFT, 0], 100.0 - keypoints[:, RIGHT, 0])
    np.testing.assert_allclose(flipped[:, 4, 0], 100.0 - keypoints[:, 7, 0])
    np.testing.assert_allclose(flipped[:, 4, 1], keypoints[:, 7, 1])


def test_synthetic_hands_hang_from_the_wrists_and_close_on_the_beats():
    body = synthetic.synthesize_performance(5, seconds=8.0)
    perf = synthetic.synthesize_performance(5, seconds=8.0, hands=True)
    assert perf.keypoints.shape == (240, 60, 2)
    assert np.isfinite(perf.keypoints).all()
    np.testing.assert_array_equal(perf.keypoints[:, LEFT.start], perf.keypoints[:, 7])
    np.testing.assert_array_equal(perf.keypoints[:, RIGHT.start], perf.keypoints[:, 4])
    # The body moves as without hands: the same poses up to where the dancer is placed.
    a, b = body.keypoints - body.keypoints.mean(1, keepdims=True), \
        perf.keypoints[:, :18] - perf.keypoints[:, :18].mean(1, keepdims=True)
    ratio = np.linalg.norm(b) / np.linalg.norm(a)
    np.testing.assert_allclose(b, ratio * a, atol=0.05)
    # A fist on the beats: every time the finger tips come nearest the wrist is on a beat.
    beat_frames = perf.beat_times * perf.fps
    for hand in (LEFT, RIGHT):
        span = hand_span(perf.keypoints, hand)
        assert span.max() > 1.3 * span.min()
        nearest = np.flatnonzero((span[1:-1] < span[:-2]) & (span[1:-1] <= span[2:])) + 1
        assert len(nearest) >= 3
        assert np.abs(nearest[:, None] - beat_frames[None]).min(axis=1).max() <= 1.0

def test_a_hands_build_has_sixty_keypoints_and_a_body_source_is_refused(tmp_path):
    config = hands_config()
    manifest = build.build("synthetic", tmp_path / "raw", tmp_path / "segments", config)
    assert manifest["config"]["pose"]["skeleton"] == "openpose18_hands"
    record = segments.SegmentStore(tmp_path / "segments", "train")[0]
    assert record["keypoints"].shape == (64, 60, 2)
    assert record["shape_keypoints"].shape == (60, 2)
    assert (record["shape_confidence"][18:] == 1).all()
    with pytest.raises(InputError, match="source dwm has no hands"):
        build.build("dwm", tmp_path, tmp_path / "dwm", config)
    # What was built for hands is refused by a body-only config's later stages, in one line.
    with pytest.raises(InputError, match=r"built with pose\.skeleton = 'openpose18_hands', "
                                         r"the config has 'openpose18'"):
        precompute._check_segments(tmp_path / "segments", manifest, tiny_config())


def test_the_shape_pose_hangs_each_hand_from_its_wrist_fingers_down():
    perf = synthetic.synthesize_performance(2, seconds=4.0, hands=True)
    keypoints, confidence = shape_pose(perf.keypoints, perf.confidence)
    assert keypoints.shape == (60, 2)
    assert confidence.sum() == 60
    for hand, wrist in ((LEFT, 7), (RIGHT, 4)):
        joints = keypoints[hand]
        assert joints[0, 1] >= keypoints[wrist, 1]  # the hand's wrist at or below the arm's
        assert (joints[[4, 8, 12, 16, 20], 1] > joints[0, 1]).all()  # every finger tip below
