"""Poses a user gives the sampler: reference poses, keyframes and a dance to continue."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hotdance_jax.choreography import (
    WARP_SECONDS,
    Keyframe,
    read_keyframes,
    read_opening,
    read_reference,
    warp_to_keyframes,
)
from hotdance_jax.errors import InputError
from hotdance_jax.pose import OPENPOSE_18_HANDS

POSE = np.arange(36, dtype=np.float32).reshape(18, 2) + 10


def test_references_in_every_format(tmp_path):
    keypoints = np.arange(36, dtype=np.float32).reshape(18, 2) + 10
    confidence = np.ones(18, np.float32)
    confidence[3] = 0
    flat = np.concatenate([keypoints, confidence[:, None]], 1).ravel().tolist()
    (tmp_path / "op.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    (tmp_path / "list.json").write_text(json.dumps(keypoints.tolist()))
    np.savez(tmp_path / "pose.npz", keypoints=keypoints[None], confidence=confidence[None])
    for name in ("op.json", "pose.npz"):
        got_keypoints, got_confidence = read_reference(tmp_path / name)
        np.testing.assert_array_equal(got_keypoints, keypoints)
        np.testing.assert_array_equal(got_confidence, confidence)
    np.testing.assert_array_equal(read_reference(tmp_path / "list.json")[1], 1.0)
    body25 = np.concatenate([np.zeros((25, 2)) + 50, np.ones((25, 1))], 1)
    (tmp_path / "body25.json").write_text(json.dumps(body25.tolist()))
    assert read_reference(tmp_path / "body25.json")[0].shape == (18, 2)
    (tmp_path / "bad.json").write_text(json.dumps(keypoints[:17].tolist()))
    with pytest.raises(InputError, match=r"bad\.json: 17 keypoints; expected 18"):
        read_reference(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(InputError, match=r"junk\.json: not a readable pose"):
        read_reference(tmp_path / "junk.json")


def test_keyframes_in_every_pose_form_sorted_by_time(tmp_path):
    person = {"pose_keypoints_2d": np.concatenate([POSE, np.ones((18, 1))], 1).ravel().tolist()}
    dance = np.stack([POSE, POSE + 100])  # a two-frame dance
    np.savez(tmp_path / "dance.npz", keypoints=dance, confidence=np.ones((2, 18)))
    (tmp_path / "keys.json").write_text(json.dumps([
        {"time": 4.0, "pose": "dance.npz", "frame": 1},
        {"time": 1.5, "pose": person},
        {"time": 2.0, "pose": (POSE + 1).tolist()},
    ]))
    keyframes = read_keyframes(tmp_path / "keys.json", seconds=5.0, fps=30.0)
    assert [k.time for k in keyframes] == [1.5, 2.0, 4.0]
    np.testing.assert_array_equal(keyframes[0].keypoints, POSE)
    np.testing.assert_array_equal(keyframes[1].keypoints, POSE + 1)
    np.testing.assert_array_equal(keyframes[2].keypoints, POSE + 100)
    assert all((k.confidence == 1).all() for k in keyframes)


@pytest.mark.parametrize(("entries", "message"), [
    ([{"time": 5.0, "pose": POSE.tolist()}],
     r"keys\.json keyframe 0: time 5 s is outside the dance \(0 to 5 s\)"),
    ([{"time": -1, "pose": POSE.tolist()}], "outside the dance"),
    ([{"time": 1.0, "pose": POSE.tolist()}, {"time": 1.01, "pose": (POSE + 1).tolist()}],
     r"two different poses at 1 s and 1.01 s, frame 30 at 30 fps"),
    ([{"time": 1.0, "pose": POSE[:17].tolist()}], "keyframe 0: 17 keypoints; expected 18"),
    ([{"pose": POSE.tolist()}], r"keyframe 0: expected \{"),
    ({"time": 1.0}, "expected a non-empty JSON list"),
    ([{"time": 1.0, "pose": "missing.json"}], "missing.json: no such pose file"),
])
def test_bad_keyframes_are_refused_in_one_line(tmp_path, entries, message):
    (tmp_path / "keys.json").write_text(json.dumps(entries))
    with pytest.raises(InputError, match=message):
        read_keyframes(tmp_path / "keys.json", seconds=5.0, fps=30.0)


def test_one_pose_given_twice_for_one_frame_is_allowed(tmp_path):
    (tmp_path / "keys.json").write_text(json.dumps(
        [{"time": 1.0, "pose": POSE.tolist()}, {"time": 1.01, "pose": POSE.tolist()}]))
    assert len(read_keyframes(tmp_path / "keys.json", seconds=5.0, fps=30.0)) == 2


def dance_file(path, fps=30.0, skeleton="openpose18", keypoints=None):
    keypoints = np.stack([POSE] * 12) if keypoints is None else keypoints
    np.savez(path, keypoints=keypoints, confidence=np.ones(keypoints.shape[:-1]),
             fps=np.float32(fps), width=np.int32(640), height=np.int32(480),
             skeleton=np.str_(skeleton), music_path=np.str_("song.wav"),
             music_offset=np.float32(2.5))
    return path


def test_a_dance_to_continue_and_its_refusals(tmp_path):
    opening = read_opening(dance_file(tmp_path / "d.npz"), 30.0)
    assert opening.keypoints.shape == (12, 18, 2)
    assert (opening.width, opening.height, opening.music_offset) == (640, 480, 2.5)
    assert opening.music_path.name == "song.wav"
    with pytest.raises(InputError, match=r"d25\.npz: 25 fps; the run is at 30"):
        read_opening(dance_file(tmp_path / "d25.npz", fps=25.0), 30.0)
    with pytest.raises(InputError, match="skeleton coco17; this run dances openpose18"):
        read_opening(dance_file(tmp_path / "coco.npz", skeleton="coco17"), 30.0)
    with pytest.raises(InputError, match=r"keypoints \(12, 17, 2\); expected"):
        read_opening(dance_file(tmp_path / "k.npz", keypoints=np.zeros((12, 17, 2))), 30.0)
    with pytest.raises(InputError, match="no such dance file"):
        read_opening(tmp_path / "none.npz", 30.0)


HANDS_POSE = np.arange(120, dtype=np.float32).reshape(60, 2) + 10


def hands_person(pose: np.ndarray = HANDS_POSE, left_joints: int = 21) -> dict:
    """An OpenPose JSON person of the (60, 2) `pose`, confidence 1, its left hand cut to
    `left_joints` keypoints."""
    values = np.concatenate([pose, np.ones((60, 1))], 1)
    return {"pose_keypoints_2d": values[:18].ravel().tolist(),
            "hand_left_keypoints_2d": values[18:18 + left_joints].ravel().tolist(),
            "hand_right_keypoints_2d": values[39:].ravel().tolist()}


def test_hands_references_keyframes_and_openings(tmp_path):
    (tmp_path / "op.json").write_text(json.dumps({"people": [hands_person()]}))
    np.savez(tmp_path / "pose.npz", keypoints=HANDS_POSE[None], confidence=np.ones((1, 60)))
    for name in ("op.json", "pose.npz"):
        keypoints, confidence = read_reference(tmp_path / name, skeleton=OPENPOSE_18_HANDS)
        np.testing.assert_array_equal(keypoints, HANDS_POSE)
        np.testing.assert_array_equal(confidence, 1.0)
    body, _ = read_reference(tmp_path / "op.json")  # a body-only run reads the body
    np.testing.assert_array_equal(body, HANDS_POSE[:18])
    (tmp_path / "keys.json").write_text(json.dumps([
        {"time": 1.0, "pose": hands_person(HANDS_POSE + 1)},
        {"time": 2.0, "pose": (HANDS_POSE + 2).tolist()}]))
    keyframes = read_keyframes(tmp_path / "keys.json", 5.0, 30.0, OPENPOSE_18_HANDS)
    np.testing.assert_array_equal(keyframes[0].keypoints, HANDS_POSE + 1)
    np.testing.assert_array_equal(keyframes[1].keypoints, HANDS_POSE + 2)
    opening = read_opening(dance_file(tmp_path / "h.npz", skeleton="openpose18_hands",
                                      keypoints=np.stack([HANDS_POSE] * 12)), 30.0,
                           OPENPOSE_18_HANDS)
    assert opening.keypoints.shape == (12, 60, 2)
    with pytest.raises(InputError, match=r"skeleton openpose18_hands; this run dances openpose18$"):
        read_opening(tmp_path / "h.npz", 30.0)


def test_a_hands_run_refuses_body_only_and_short_hands_in_one_line(tmp_path):
    (tmp_path / "body.json").write_text(json.dumps(POSE.tolist()))
    (tmp_path / "op.json").write_text(json.dumps(
        {"people": [{"pose_keypoints_2d": hands_person()["pose_keypoints_2d"]}]}))
    (tmp_path / "keys.json").write_text(json.dumps(
        [{"time": 1.0, "pose": hands_person(left_joints=20)}]))
    for call, message in [
        (lambda: read_reference(tmp_path / "body.json", skeleton=OPENPOSE_18_HANDS),
         r"body\.json: 18 keypoints; expected 60 \(openpose18_hands\)$"),
        (lambda: read_reference(tmp_path / "op.json", skeleton=OPENPOSE_18_HANDS),
         r"^\S*op\.json: no hand_left_keypoints_2d in the person \(a body-only pose"),
        (lambda: read_keyframes(tmp_path / "keys.json", 5.0, 30.0, OPENPOSE_18_HANDS),
         r"^\S*keys\.json keyframe 0: hand_left_keypoints_2d has 20 keypoints; expected 21$"),
    ]:
        with pytest.raises(InputError, match=message) as error:
            call()
        assert "\n" not in str(error.value)


def test_warping_passes_exactly_through_keyframes_and_stays_smooth():
    fps, frames = 30.0, 200
    t = np.arange(frames)[:, None, None] / fps
    dance = (POSE[None] + 40 * np.sin(2 * np.pi * t * [0.7, 1.1])).astype(np.float32)
    confidence = np.ones((frames, 18), np.float32)
    confidence[:, 5] = 0  # a keypoint the dance never shows stays where it is
    keyframes = [Keyframe(2.0, POSE + 30, np.ones(18)), Keyframe(2.2, POSE - 20, np.ones(18)),
                 Keyframe(5.0, POSE + 25, np.ones(18)), Keyframe(0.3, POSE, np.ones(18))]
    warped = warp_to_keyframes(dance, confidence, keyframes, fps, start=20)
    seen = confidence[0] > 0
    for keyframe in keyframes[:3]:  # 2.0 and 2.2 s, 6 frames apart: each hit exactly
        frame = round(keyframe.time * fps)
        np.testing.assert_allclose(warped[frame, seen], keyframe.keypoints[seen], atol=1e-3)
    np.testing.assert_array_equal(warped[:20], dance[:20])  # the kept opening (0.3 s inside it)
    np.testing.assert_array_equal(warped[:, 5], dance[:, 5])
    np.testing.assert_array_equal(warped[181:], dance[181:])  # beyond 5 s + WARP_SECONDS
    # The raised cosine adds at most |shift| (pi / reach)^2 / 2 to a keypoint's second difference.
    frame, reach = 150, round(WARP_SECONDS * fps)
    shift = np.abs(keyframes[2].keypoints - dance[frame]).max()
    added = np.abs(np.diff(warped - dance, 2, axis=0))[frame - reach:frame + reach - 2]
    assert added.max() <= shift * (np.pi / reach) ** 2 / 2 * 1.01
