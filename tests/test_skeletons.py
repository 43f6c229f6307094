"""Skeletons as data: the registry, OpenPose-18 with hands, the COCO-WholeBody converter, and
OpenPose JSON people with hands read and written."""

from __future__ import annotations

import json

import matplotlib.colors
import numpy as np
import pytest

from hotdance_jax import sample
from hotdance_jax.errors import InputError
from hotdance_jax.pose import (
    OPENPOSE_18,
    OPENPOSE_18_HANDS,
    body_of,
    flip_horizontal,
    skeleton_by_name,
    wholebody_to_openpose18_hands,
)
from hotdance_jax.pose.openpose_json import person_json, read_person

# OpenPose's hand edges (draw_handpose), written out: wrist to each finger's base, then along it.
OPENPOSE_HAND_EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
    (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
]


def hand_edge_color(edge: int) -> np.ndarray:
    """OpenPose's colour of hand edge `edge`: hue edge / 20, full saturation and value (RGB)."""
    return matplotlib.colors.hsv_to_rgb([edge / 20, 1.0, 1.0]) * 255


# --- the registry and the hands skeleton ---------------------------------------------------------


def test_skeletons_are_found_by_name_and_an_unknown_name_is_one_line():
    assert skeleton_by_name("openpose18") is OPENPOSE_18
    assert skeleton_by_name("openpose18_hands") is OPENPOSE_18_HANDS
    with pytest.raises(InputError, match=r"unknown skeleton 'smplx'; expected one of \[.*"
                                         r"'openpose18', 'openpose18_hands'") as error:
        skeleton_by_name("smplx")
    assert "\n" not in str(error.value)


def test_hands_skeleton_is_the_body_then_two_openpose_hands():
    s = OPENPOSE_18_HANDS
    assert (s.num_joints, s.num_body_joints, s.hand_joints) == (60, 18, 21)
    assert (OPENPOSE_18.num_body_joints, OPENPOSE_18.has_hands) == (18, False)
    assert s.has_hands
    assert s.joints[:18] == OPENPOSE_18.joints
    assert s.limbs[:17] == OPENPOSE_18.limbs
    assert s.limb_colors[:17] == OPENPOSE_18.limb_colors
    assert s.joint_colors[:18] == OPENPOSE_18.joint_colors
    assert s.flip_pairs[:8] == OPENPOSE_18.flip_pairs
    poses = np.arange(3 * 60 * 2, dtype=np.float32).reshape(3, 60, 2)
    body, confidence = body_of(poses, poses[..., 0])
    assert (body.shape, confidence.shape) == ((3, 18, 2), (3, 18))
    np.testing.assert_array_equal(body, poses[:, :18])
    assert body_of(poses[:, :18], poses[:, :18, 0])[0].shape == (3, 18, 2)
    with pytest.raises(InputError, match="poses of 20 keypoints"):
        body_of(poses[:, :20], poses[:, :20, 0])
    assert (s.hand("left"), s.hand("right")) == (slice(18, 39), slice(39, 60))
    assert s.joints[18] == "left_hand_wrist"
    assert s.joints[39] == "right_hand_wrist"
    tips = [s.joints[18 + j] for j in (4, 8, 12, 16, 20)]
    assert tips == [f"left_hand_{f}_tip" for f in ("thumb", "index", "middle", "ring", "pinky")]
    for start in (18, 39):  # each hand: OpenPose's 20 edges in its order and colours
        limbs = [i for i, (a, b) in enumerate(s.limbs) if min(a, b) >= start
                 and max(a, b) < start + 21]
        assert [(s.limbs[i][0] - start, s.limbs[i][1] - start) for i in limbs] == \
            OPENPOSE_HAND_EDGES
        for edge, i in enumerate(limbs):
            np.testing.assert_allclose(s.limb_colors[i], hand_edge_color(edge), atol=0.51)
            assert s.is_hand_limb(i)
    assert not any(s.is_hand_limb(i) for i in range(17))
    assert set(s.joint_colors[18:]) == {(0, 0, 255)}


def test_flipping_a_hands_pose_swaps_the_hands():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 640, (3, 60, 2)).astype(np.float32)
    conf = rng.uniform(0, 1, (3, 60)).astype(np.float32)
    fxy, fconf = flip_horizontal(xy, conf, 640, OPENPOSE_18_HANDS)
    np.testing.assert_allclose(fxy[:, 18:39, 0], 640 - xy[:, 39:60, 0])  # left <- mirrored right
    np.testing.assert_allclose(fxy[:, 39:60, 1], xy[:, 18:39, 1])
    np.testing.assert_array_equal(fconf[:, 18:39], conf[:, 39:60])
    np.testing.assert_allclose(fxy[:, 2, 0], 640 - xy[:, 5, 0])  # the body as before


# --- COCO-WholeBody (DWPose) ---------------------------------------------------------------------


def test_wholebody_converter_on_a_hand_built_array():
    # Joint j of frame t at (j + 1000 t, 2 j); feet (17-22) and face (23-90) far outside.
    j = np.arange(133, dtype=np.float32)
    keypoints = np.stack([np.stack([j + 1000 * t, 2 * j], -1) for t in range(2)])
    keypoints[:, 17:91] = -999.0
    confidence = np.full((2, 133), 0.9, np.float32)
    confidence[1, 91 + 8] = 0.0  # frame 1: left index fingertip missing
    keypoints[0, 112 + 20] = np.nan  # frame 0: right pinky tip not finite
    out, conf = wholebody_to_openpose18_hands(keypoints, confidence)
    assert out.shape == (2, 60, 2)
    assert conf.shape == (2, 60)
    assert not (out == -999.0).any()
    np.testing.assert_array_equal(out[0, 0], [0, 0])  # nose = COCO 0
    np.testing.assert_array_equal(out[0, 1], [5.5, 11])  # neck = mid-shoulders (COCO 5, 6)
    np.testing.assert_array_equal(out[0, 2], [6, 12])  # right shoulder = COCO 6
    np.testing.assert_array_equal(out[1, 14], [1002, 4])  # right eye = COCO 2
    np.testing.assert_array_equal(out[0, 17], [3, 6])  # left ear = COCO 3
    np.testing.assert_array_equal(out[0, 18], [91, 182])  # left wrist of the hand = 91
    np.testing.assert_array_equal(out[1, 38], [1111, 222])  # left pinky tip = 111
    np.testing.assert_array_equal(out[0, 39], [112, 224])  # right hand = 112-132
    np.testing.assert_array_equal(out[1, 59], [1132, 264])
    assert conf[1, 18 + 8] == 0
    assert np.isnan(out[1, 18 + 8]).all()
    assert conf[0, 59] == 0
    assert np.isnan(out[0, 59]).all()
    assert np.count_nonzero(conf == 0) == 2
    np.testing.assert_allclose(conf[conf > 0], 0.9)


def test_wholebody_converter_refuses_another_length_in_one_line():
    with pytest.raises(InputError, match=r"whole-body keypoints must have shape \(\.\.\., 133, "
                                         r"D\), got \(4, 132, 2\)$"):
        wholebody_to_openpose18_hands(np.zeros((4, 132, 2)), None)


# --- OpenPose JSON with hands ------------------------------------------------------------------


def triples(keypoints: np.ndarray, confidence: np.ndarray) -> list[float]:
    return np.concatenate([keypoints, confidence[:, None]], 1).ravel().tolist()


def hands_person(body_joints: int = 18) -> tuple[dict, np.ndarray]:
    """An OpenPose JSON person with hands, and its (J + 42, 3) values: joint j at (j, j + 100)."""
    j = np.arange(body_joints + 42, dtype=np.float32)
    values = np.stack([j, j + 100, np.full_like(j, 0.5)], -1)
    values[body_joints + 21 + 3] = 0  # right thumb ip: missing, as OpenPose writes it
    return {"pose_keypoints_2d": values[:body_joints].ravel().tolist(),
            "hand_left_keypoints_2d": values[body_joints:body_joints + 21].ravel().tolist(),
            "hand_right_keypoints_2d": values[body_joints + 21:].ravel().tolist()}, values


def test_a_person_with_hands_reads_into_the_hands_skeleton():
    person, values = hands_person()
    keypoints, confidence = read_person(person, OPENPOSE_18_HANDS, "f.json")
    assert keypoints.shape == (60, 2)
    assert confidence.shape == (60,)
    np.testing.assert_array_equal(keypoints[:42], values[:42, :2])  # body and the left hand
    np.testing.assert_array_equal(keypoints[43:], values[43:, :2])
    assert confidence[42] == 0
    assert np.isnan(keypoints[42]).all()
    np.testing.assert_array_equal(np.delete(confidence, 42), 0.5)
    body, body_confidence = read_person(person, OPENPOSE_18, "f.json")  # hands ignored
    np.testing.assert_array_equal(body, values[:18, :2])
    assert body_confidence.shape == (18,)


def test_a_body25_person_with_hands_keeps_its_hands():
    person, values = hands_person(body_joints=25)
    keypoints, _ = read_person(person, OPENPOSE_18_HANDS, "f.json")
    np.testing.assert_array_equal(keypoints[8], values[9, :2])  # right hip: BODY_25 9, not 8
    np.testing.assert_array_equal(keypoints[18:39], values[25:46, :2])


@pytest.mark.parametrize(("change", "message"), [
    ({"hand_left_keypoints_2d": list(range(60))},
     r"^f\.json: hand_left_keypoints_2d has 20 keypoints; expected 21$"),
    ({"hand_right_keypoints_2d": []}, r"^f\.json: no hand_right_keypoints_2d in the person"),
    ({"hand_left_keypoints_2d": list(range(62))}, "x, y, confidence triples"),
    ({"pose_keypoints_2d": list(range(51))}, r"^f\.json: 17 keypoints; expected 18"),
])
def test_bad_hands_are_refused_in_one_line(change, message):
    person = {**hands_person()[0], **change}
    with pytest.raises(InputError, match=message) as error:
        read_person(person, OPENPOSE_18_HANDS, "f.json")
    assert "\n" not in str(error.value)


def test_a_body_only_person_is_refused_for_the_hands_skeleton():
    person = {"pose_keypoints_2d": hands_person()[0]["pose_keypoints_2d"]}
    with pytest.raises(InputError, match=r"no hand_left_keypoints_2d in the person \(a body-only"):
        read_person(person, OPENPOSE_18_HANDS, "f.json")


def test_written_people_read_back_and_body_only_stays_as_before():
    rng = np.random.default_rng(4)
    keypoints = rng.uniform(0, 640, (60, 2)).round(3).astype(np.float32)
    confidence = rng.uniform(0.1, 1, 60).round(3).astype(np.float32)
    keypoints[50], confidence[50] = np.nan, 0.0
    person = json.loads(json.dumps(person_json(keypoints, confidence, OPENPOSE_18_HANDS)))
    assert [len(person[k]) for k in ("pose_keypoints_2d", "hand_left_keypoints_2d",
                                     "hand_right_keypoints_2d")] == [54, 63, 63]
    assert person["hand_right_keypoints_2d"][3 * 11:3 * 12] == [0, 0, 0]
    back, back_confidence = read_person(person, OPENPOSE_18_HANDS, "written")
    np.testing.assert_allclose(back, keypoints, atol=1e-3)
    np.testing.assert_allclose(back_confidence, confidence, atol=1e-6)
    body = person_json(keypoints[:18], confidence[:18], OPENPOSE_18)
    assert set(body) == {"person_id", "pose_keypoints_2d"}
    assert body["pose_keypoints_2d"] == person["pose_keypoints_2d"]


def test_the_sampler_writes_hands_into_openpose_json_and_the_dance(tmp_path):
    rng = np.random.default_rng(5)
    keypoints = rng.uniform(0, 480, (3, 60, 2)).astype(np.float32)
    confidence = np.ones((3, 60), np.float32)
    song = sample.Song(path=None, start=0.0, audio=np.zeros(100, np.float32), sample_rate=22050,
                       features=np.zeros((3, 35), np.float32), beats=np.zeros(0), bpm=120.0)
    dance = sample.Dance(song, 0, keypoints, confidence, 30.0, 640, 480, 64, OPENPOSE_18_HANDS)
    sample.save_openpose(tmp_path / "op", dance, "d")
    frame = json.loads((tmp_path / "op" / "d_000000000002_keypoints.json").read_text())
    read = read_person(frame["people"][0], OPENPOSE_18_HANDS, "frame 2")[0]
    np.testing.assert_allclose(read, keypoints[2], atol=1e-3)
    sample.save_dance(tmp_path / "d.npz", dance)
    with np.load(tmp_path / "d.npz") as saved:
        assert str(saved["skeleton"]) == "openpose18_hands"
