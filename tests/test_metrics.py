"""The 2D dance metrics on cases worked out by hand (hotdance_jax/metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from hotdance_jax.errors import InputError
from hotdance_jax.metrics import (
    GEOMETRIC_FEATURES,
    beat_align_score,
    body_frame,
    diversity,
    fid,
    frechet_distance,
    geometric_features,
    jitter,
    kinetic_features,
    seam_frames,
    seam_jump,
    standardise,
)

# A dancer (pixels, y down) whose neck-to-hip limbs are 3-4-5 triangles: body length L = 100 px.
POSE = np.array([
    [0, -40], [0, 0], [-50, 0], [-80, 50], [-90, 100], [50, 0], [100, 10], [60, -30],  # arms
    [-60, 80], [-60, 150], [-70, 220], [60, 80], [70, 150], [110, 200],  # legs
    [-10, -50], [10, -50], [-20, -45], [20, -45],  # face
], np.float32)
L = 100.0
FPS = 30.0


def moving(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pose translated by (T, 2) pixel offsets, placed in a frame; nose and eyes unseen."""
    keypoints = POSE[None] + np.asarray(offsets, np.float32)[:, None] + [400, 300]
    confidence = np.ones(keypoints.shape[:2], np.float32)
    confidence[:, [0, 14, 15]] = 0
    keypoints[:, [0, 14, 15]] = np.nan
    return keypoints, confidence


def wavy(T: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """A pose whose joints each move on their own sinusoid (pixels)."""
    t = np.arange(T)[:, None, None] / FPS
    phase = np.arange(18)[None, :, None] * [0.7, 1.3]
    keypoints = POSE[None] + [400, 300] + 30 * np.sin(2 * np.pi * 0.8 * t + phase)
    return keypoints.astype(np.float32), np.ones((T, 18), np.float32)


def test_body_frame_puts_the_root_at_zero_in_body_lengths_with_y_up():
    keypoints, confidence = moving(np.zeros((5, 2)))
    positions, visible = body_frame(keypoints, confidence)
    np.testing.assert_allclose(positions[0, 8:12:3].mean(axis=0), [0, 0], atol=1e-6)
    np.testing.assert_allclose(positions[0, 1], [0, 0.8], atol=1e-6)  # neck: 80 px above
    assert not visible[:, 0].any()
    assert visible[:, 1].all()
    with pytest.raises(InputError, match="neck and both hips"):
        body_frame(keypoints, confidence * (np.arange(18) != 8))
    alternating = confidence.copy()  # each hip seen with the neck, never both hips together
    alternating[::2, 8], alternating[1::2, 11] = 0, 0
    with pytest.raises(InputError, match="no frame shows both hips"):
        body_frame(keypoints, alternating)


def test_kinetic_features_of_constant_velocity_are_the_squared_velocity():
    velocity = np.array([120.0, -45.0])  # px/s
    keypoints, confidence = moving(np.arange(90)[:, None] / FPS * velocity)
    confidence[10:20, 4] = 0  # an unseen stretch of the right wrist changes nothing
    features = kinetic_features(*body_frame(keypoints, confidence), FPS).reshape(18, 3)
    seen = [j for j in range(18) if j not in (0, 14, 15)]
    expected = [(120 / L) ** 2, (45 / L) ** 2, 0.0]  # L^2/s^2, L^2/s^2, L/s^2
    np.testing.assert_allclose(features[seen], np.broadcast_to(expected, (15, 3)), atol=1e-6)
    np.testing.assert_array_equal(features[[0, 14, 15]], 0)  # never seen: 0


def test_kinetic_energy_uses_the_frame_time():
    keypoints, confidence = moving(np.arange(120)[:, None] * [2.0, 0.0])  # 2 px per frame
    at_30 = kinetic_features(*body_frame(keypoints, confidence), 30.0).reshape(18, 3)
    at_60 = kinetic_features(*body_frame(keypoints, confidence), 60.0).reshape(18, 3)
    np.testing.assert_allclose(at_30[1, 0], (60 / L) ** 2, rtol=1e-6)
    np.testing.assert_allclose(at_60[1, 0], (120 / L) ** 2, rtol=1e-6)


def test_features_do_not_change_with_translation_or_scale():
    keypoints, confidence = wavy()
    moved = keypoints * 2.5 + [-310.0, 75.0]
    for extract in (kinetic_features, geometric_features):
        np.testing.assert_allclose(extract(*body_frame(moved, confidence), FPS),
                                   extract(*body_frame(keypoints, confidence), FPS), atol=1e-5)


def test_geometric_features_of_a_still_pose():
    keypoints, confidence = moving(np.zeros((30, 2)))
    features = dict(zip(GEOMETRIC_FEATURES, geometric_features(
        *body_frame(keypoints, confidence), FPS), strict=True))
    assert len(GEOMETRIC_FEATURES) == 20
    # the left wrist (y = -30 px) is above the neck (y = 0), the right one is not
    assert (features["left_wrist_above_neck"], features["right_wrist_above_neck"]) == (1, 0)
    # right arm: elbow angle 160 deg (not < 110), upper arm 31 deg from the torso's down (< 45)
    assert (features["right_elbow_bent"], features["right_arm_lifted"]) == (0, 0)
    # left arm: elbow angle 34 deg, upper arm 79 deg from the torso's downward direction
    assert (features["left_elbow_bent"], features["left_arm_lifted"]) == (1, 1)
    # knee angles: left 149 deg (< 160), right 172; thighs 8 and 0 deg from down (< 30)
    assert (features["left_knee_bent"], features["right_knee_bent"]) == (1, 0)
    assert features["left_thigh_lifted"] == features["right_thigh_lifted"] == 0
    # the left ankle is 20 px = 0.2 L above the right one (> 0.1 L); they are 1.8 L apart
    assert (features["left_foot_raised"], features["right_foot_raised"]) == (1, 0)
    assert features["feet_apart"] == 1
    assert features["wrists_apart"] == 1  # 198 px = 1.98 L > 1.5 L
    assert features["torso_leaning"] == 0  # neck straight above the root
    assert max(features[k] for k in GEOMETRIC_FEATURES if k.endswith(("fast", "travelling"))) == 0


def test_jitter_of_constant_acceleration_is_that_acceleration():
    t = np.arange(60)[:, None] / FPS
    keypoints, confidence = moving(0.5 * np.array([300.0, 400.0]) * t**2)  # |a| = 500 px/s^2
    confidence[5:8, 2] = 0
    assert jitter(*body_frame(keypoints, confidence), FPS) == pytest.approx(500 / L, rel=1e-4)
    still = moving(np.zeros((10, 2)))
    assert jitter(*body_frame(*still), FPS) == pytest.approx(0, abs=1e-9)


def test_seam_frames_and_the_speed_jump_across_them():
    # segments of 64 frames overlapping by 16 start at 48, 96, ...; fades end 16 frames later
    np.testing.assert_array_equal(seam_frames(150, 64, 16), [48, 64, 96, 112, 144])
    steps = np.where(np.arange(1, 150) <= 50, 1.0, 3.0)  # px per frame into frames 1..149
    steps[100:] = 2.0  # into frames 101..149
    offsets = np.concatenate([[0], np.cumsum(steps)])[:, None] * [1.0, 0.0]
    positions, visible = body_frame(*moving(offsets))
    at_seams, inside = seam_jump(positions, visible, FPS, np.array([50, 100]))
    assert at_seams == pytest.approx((2 * FPS / L + 1 * FPS / L) / 2)  # L/s
    assert inside == pytest.approx(0, abs=1e-6)


def test_frechet_distance_by_hand():
    a = np.random.default_rng(0).normal(size=(40, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0.5])
    assert frechet_distance(a + shift, a) == pytest.approx(shift @ shift, rel=1e-9)
    # 1-D: unbiased variances 2 and 8, equal means: (sqrt 2 - sqrt 8)^2 = 2
    assert frechet_distance(np.array([[-1.0], [1.0]]), np.array([[-2.0], [2.0]])) == \
        pytest.approx(2.0)


def test_fid_standardises_by_the_reference():
    reference = np.array([[0.0, 0, 5], [2, 0, 5], [0, 20, 5], [2, 20, 5]])  # std 1, 10, 0
    shifted = reference + np.array([3, 40, 7])
    assert fid(reference, reference) == pytest.approx(0, abs=1e-12)
    # a shift of (3, 40) is (3, 4) reference standard deviations; the constant column drops out
    assert fid(reference, shifted) == pytest.approx(25.0)
    standard, other = standardise(reference, shifted)
    np.testing.assert_allclose(standard.std(axis=0), [1, 1])
    np.testing.assert_allclose(other.mean(axis=0), [3, 4])


def test_diversity_is_the_mean_pairwise_distance():
    assert diversity(np.array([[0.0, 0], [3, 0], [0, 4]])) == pytest.approx((3 + 4 + 5) / 3)


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_bas_is_one_on_the_beat_and_falls_as_the_beats_drift(fps):
    period = round(fps * 2 / 3)  # frames per oscillation: a speed minimum every period / 2
    t = np.arange(round(20 * fps))
    x = 40 * (1 - np.cos(2 * np.pi * (t + 0.5) / period))  # speed ~ |sin(2 pi t / period)|
    keypoints = np.broadcast_to(x[:, None, None] * [1.0, 0.0], (len(t), 18, 2)) + 200
    confidence = np.ones((len(t), 18))
    beats = np.arange(period / 2, len(t) - 2, period / 2) / fps  # seconds, on the minima
    sigma = 3 * fps / 60  # frames
    drifts = np.arange(0, 9) * fps / 60  # frames
    scores = [beat_align_score(keypoints, confidence, beats + d / fps, fps) for d in drifts]
    assert scores[0] == pytest.approx(1.0)
    np.testing.assert_allclose(scores, np.exp(-drifts**2 / (2 * sigma**2)), atol=1e-9)
    assert all(np.diff(scores) < 0)
