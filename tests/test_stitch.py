"""The cross-fade that stitches a sampled segment onto the dance before it (sample._blend)."""

from __future__ import annotations

import numpy as np

from hotdance_jax import sample

T, OVERLAP = 32, 16


def _segment(x: float, unseen: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(1, T, 1, 2) keypoints standing at (x, 0) and (1, T, 1) confidence 0.8, 0 at `unseen`."""
    keypoints = np.zeros((1, T, 1, 2), np.float32)
    keypoints[..., 0] = x
    confidence = np.full((1, T, 1), 0.8, np.float32)
    confidence[0, unseen] = 0.0
    return keypoints, confidence


def test_the_fade_moves_a_joint_seen_by_both_from_the_old_place_to_the_new():
    keypoints, confidence = sample._blend(*_segment(0.0, []), *_segment(10.0, []), OVERLAP)
    x = keypoints[0, :, 0, 0]
    assert (confidence > 0).all()
    assert 0 < x[0] < 0.1
    assert 9.9 < x[OVERLAP - 1] < 10
    assert (np.diff(x[:OVERLAP]) > 0).all()
    np.testing.assert_array_equal(x[OVERLAP:], 10.0)


def test_a_joint_one_segment_loses_in_the_fade_is_hidden_rather_than_jumping():
    """The old segment loses the joint at fade frames 3-4 (new weight 0.11-0.19), the new one at
    1 (keep the old) and 12-13 (new weight 0.92-0.96): shown at the one segment's place beside
    blended frames, the joint would jump by the segments' 60 px disagreement."""
    keypoints, confidence = sample._blend(*_segment(100.0, [3, 4]), *_segment(160.0, [1, 12, 13]),
                                          OVERLAP)
    seen = confidence[0, :, 0] > 0
    np.testing.assert_array_equal(np.flatnonzero(~seen), [3, 4, 12, 13])
    assert keypoints[0, 1, 0, 0] == 100.0  # the old segment's place while it weighs the most
    x = keypoints[0, :, 0, 0]
    steps = np.abs(np.diff(x))[seen[1:] & seen[:-1]]
    assert steps.max() < 15.0  # the fade's own steps: 60 px x at most 0.2 of weight a frame
