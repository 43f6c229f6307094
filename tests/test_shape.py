"""The dancer's neutral shape pose."""

import numpy as np

from hotdance_jax.pose import OPENPOSE_18
from hotdance_jax.pose.shape import shape_pose

J = OPENPOSE_18.index


def random_dancer(rng, lengths, frames=200, origin=(300.0, 200.0)):
    """Frames of a 2D stick figure with fixed limb lengths and random limb angles."""
    kp = np.zeros((frames, 18, 2), np.float32)
    kp[:, 1] = np.asarray(origin) + rng.normal(0, 5, (frames, 2))
    for a, b in OPENPOSE_18.limbs:
        angle = rng.uniform(0, 2 * np.pi, frames)
        kp[:, b] = kp[:, a] + lengths[(a, b)] * np.stack([np.cos(angle), np.sin(angle)], -1)
    return kp, np.ones((frames, 18), np.float32)


def test_limb_lengths_position_and_posture():
    rng = np.random.default_rng(0)
    lengths = {limb: float(rng.uniform(10, 60)) for limb in OPENPOSE_18.limbs}
    kp, conf = random_dancer(rng, lengths)
    shape, shape_conf = shape_pose(kp, conf)
    np.testing.assert_array_equal(shape_conf, 1.0)
    for (a, b), length in lengths.items():
        np.testing.assert_allclose(np.linalg.norm(shape[a] - shape[b]), length, rtol=1e-4)
    # Upright and facing the camera: wrists under elbows under shoulders, ankles under knees,
    # the dancer's right on the image's left, the nose above the neck.
    for s, e, w in [("right_shoulder", "right_elbow", "right_wrist"),
                    ("left_hip", "left_knee", "left_ankle")]:
        assert shape[J(s), 1] < shape[J(e), 1] < shape[J(w), 1]
    assert shape[J("right_shoulder"), 0] < shape[J("neck"), 0] < shape[J("left_shoulder"), 0]
    assert shape[J("nose"), 1] < shape[J("neck"), 1]
    # Placed where the dancer is: the neck near the dancer's median neck.
    assert np.linalg.norm(shape[J("neck")] - np.median(kp[:, J("neck")], 0)) < 60


def test_missing_face_uses_neck_to_ear_and_keeps_unseen_joints_invisible():
    rng = np.random.default_rng(1)
    kp, conf = random_dancer(rng, dict.fromkeys(OPENPOSE_18.limbs, 30.0))
    face = [J("nose"), J("right_eye"), J("left_eye")]
    conf[:, face] = 0
    kp[:, face] = np.nan
    shape, shape_conf = shape_pose(kp, conf)
    assert shape_conf[face].sum() == 0
    assert np.isnan(shape[face]).all()
    assert shape_conf[[J("right_ear"), J("left_ear")]].tolist() == [1.0, 1.0]
    ear_distance = np.linalg.norm(shape[J("right_ear")] - shape[J("neck")])
    expected = np.percentile(np.linalg.norm(kp[:, J("right_ear")] - kp[:, J("neck")], axis=1), 90)
    np.testing.assert_allclose(ear_distance, expected, rtol=1e-4)


def test_single_reference_frame():
    rng = np.random.default_rng(2)
    kp, conf = random_dancer(rng, dict.fromkeys(OPENPOSE_18.limbs, 25.0), frames=1)
    shape, shape_conf = shape_pose(kp, conf)
    assert shape_conf.sum() == 18
    np.testing.assert_allclose(np.linalg.norm(shape[J("neck")] - shape[J("right_hip")]), 25, 1e-4)


def test_no_dancer_gives_empty_shape():
    shape, conf = shape_pose(np.full((5, 18, 2), np.nan), np.zeros((5, 18)))
    assert conf.sum() == 0
    assert np.isnan(shape).all()
