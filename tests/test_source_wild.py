"""The wild source: OpenPose/DWPose JSON folders and npz files in, cleaned OpenPose-18 runs out
(with OpenPose's two 21-keypoint hands for config.skeleton "openpose18_hands")."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_pipeline import build, segments
from data_pipeline.sources import wild
from data_pipeline.sources.base import SPLITS
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.errors import InputError
from hotdance_jax.pose import OPENPOSE_18, OPENPOSE_18_HANDS
from tests.conftest import tiny_config

# A standing OpenPose-18 pose in pixels: y from 35 (eyes) to 220 (ankles), body height 185 px.
TEMPLATE = np.array([
    (100, 40), (100, 70), (80, 70), (70, 100), (65, 130), (120, 70), (130, 100), (135, 130),
    (90, 140), (90, 180), (90, 220), (110, 140), (110, 180), (110, 220), (95, 35), (105, 35),
    (90, 38), (110, 38),
], np.float32) + np.float32([200, 100])
BODY_HEIGHT = 185.0
# BODY_25 index of each OpenPose-18 joint (BODY_25 adds mid_hip at 8 and six foot points).
BODY25_OF_18 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
# OpenPose-18 index of each COCO-17 joint (the body of COCO-WholeBody, DWPose's 133 keypoints).
OPENPOSE18_OF_COCO = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]
HAND = 21  # keypoints per hand
LEFT, RIGHT = OPENPOSE_18_HANDS.hand("left"), OPENPOSE_18_HANDS.hand("right")
# A hand's 21 keypoints about its wrist, pixels (the wrist itself at 0, 0).
HAND_SHAPE = np.r_[[[0, 0]], np.random.default_rng(0).uniform(-15, 15, (HAND - 1, 2))]


def _config(min_frames: int = 8, hands: bool = False, **wild_overrides) -> object:
    data = sibling_config(str(Path(__file__).parents[1] / "configs" / "base.py"), "base").data
    data.min_frames = min_frames
    data.skeleton = (OPENPOSE_18_HANDS if hands else OPENPOSE_18).name
    data.wild.update(wild_overrides)
    return data


def _dance(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 18, 2) gently swaying poses and (n, 18) confidences, 0.5 + j / 100 for joint j."""
    sway = 5 * np.sin(2 * np.pi * np.arange(n) / 30)[:, None]
    keypoints = np.repeat(TEMPLATE[None], n, axis=0)
    keypoints[..., 0] += sway
    confidence = np.tile(0.5 + np.arange(18, dtype=np.float32) / 100, (n, 1))
    return keypoints.astype(np.float32), confidence


def _hands(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 42, 2) left then right hands at the wrists of (n, 18, 2) poses and (n, 42) confidences,
    0.4 + j / 200 for hand joint j."""
    wrists = keypoints[:, [OPENPOSE_18.index("left_wrist"), OPENPOSE_18.index("right_wrist")]]
    hands = wrists[:, :, None] + np.stack([HAND_SHAPE, HAND_SHAPE * [-1, 1]])[None]
    confidence = np.tile(0.4 + np.arange(2 * HAND, dtype=np.float32) / 200, (len(keypoints), 1))
    return hands.reshape(len(keypoints), 2 * HAND, 2).astype(np.float32), confidence


def _wholebody(keypoints: np.ndarray, confidence: np.ndarray, hands: np.ndarray,
               hands_confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 133, 2) COCO-WholeBody poses and (n, 133) confidences of OpenPose-18 poses and hands;
    feet and face at (999, 999) (dropped by the conversion)."""
    n = len(keypoints)
    whole, whole_confidence = np.full((n, 133, 2), 999, np.float32), np.ones((n, 133), np.float32)
    whole[:, :17], whole_confidence[:, :17] = (keypoints[:, OPENPOSE18_OF_COCO],
                                               confidence[:, OPENPOSE18_OF_COCO])
    whole[:, 91:], whole_confidence[:, 91:] = hands, hands_confidence
    return whole, whole_confidence


def _flat(keypoints: np.ndarray, confidence: np.ndarray, body25: bool) -> list[float]:
    """pose_keypoints_2d of one (18, 2) pose; missing joints (confidence 0) written as 0, 0, 0."""
    xyc = np.concatenate([keypoints, confidence[:, None]], axis=1)
    xyc[confidence <= 0] = 0
    if body25:
        full = np.zeros((25, 3), np.float32)
        full[BODY25_OF_18] = xyc
        full[8] = (*keypoints[[8, 11]].mean(0), 0.9)  # mid_hip
        full[19:] = (333, 444, 0.95)  # feet: dropped by the mapping
        xyc = full
    return [round(float(v), 4) for v in xyc.ravel()]


def _wav(path: Path, seconds: float = 0.1) -> None:
    """`seconds` of a quiet 440 Hz tone (the build refuses silence) at 8 kHz."""
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(round(8000 * seconds)) / 8000)
    sf.write(path, tone.astype(np.float32), 8000)


def _write_folder(
    root: Path, name: str, keypoints: np.ndarray, confidence: np.ndarray, *, fps: float = 30.0,
    body25: bool = False, numbers: list[int] | None = None, audio_offset: float | None = None,
    hands: tuple[np.ndarray, np.ndarray] | None = None, handless: Iterable[int] = (),
) -> Path:
    """A `root/name/` OpenPose JSON folder with meta.json and audio.wav; with `hands` ((N, 42, 2)
    and (N, 42): left then right) its people have hand lists, but in the frames `handless`."""
    folder = root / name
    folder.mkdir(parents=True)
    numbers = list(range(len(keypoints))) if numbers is None else numbers
    for t, (number, kp, conf) in enumerate(zip(numbers, keypoints, confidence, strict=True)):
        people = [{"pose_keypoints_2d": _flat(kp, conf, body25)}] if conf.any() else []
        if people and hands is not None and t not in handless:
            for i, side in enumerate(("left", "right")):
                joints = slice(i * HAND, (i + 1) * HAND)
                people[0][f"hand_{side}_keypoints_2d"] = _flat(hands[0][t, joints],
                                                               hands[1][t, joints], False)
        frame = {"version": 1.3, "people": people}
        (folder / f"{name}_{number}_keypoints.json").write_text(json.dumps(frame))
    meta = {"fps": fps, "width": 640, "height": 480}
    if audio_offset is not None:
        meta["audio_offset"] = audio_offset
    (folder / "meta.json").write_text(json.dumps(meta))
    _wav(folder / "audio.wav")
    return folder


def _write_npz(root: Path, name: str, keypoints: np.ndarray, confidence: np.ndarray,
               **fields) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.npz"
    header = {"fps": 30.0, "width": 640, "height": 480, **fields}
    np.savez(path, keypoints=keypoints, confidence=confidence, **header)
    _wav(root / f"{name}.wav")
    return path


def _run(root: Path, config=None, stats=None) -> list:
    return list(wild.performances(root, config or _config(), collections.Counter()
                                  if stats is None else stats))


@pytest.mark.parametrize("body25", [False, True])
def test_json_folder_parses_and_maps_to_openpose18(tmp_path, body25):
    keypoints, confidence = _dance(12)
    # Unpadded frame numbers starting at 3: numeric order, the lowest is frame 0.
    _write_folder(tmp_path, "clip", keypoints, confidence, body25=body25,
                  numbers=list(range(3, 15)), audio_offset=1.5)
    (perf,) = _run(tmp_path)
    np.testing.assert_allclose(perf.keypoints, keypoints, atol=1e-3)
    np.testing.assert_allclose(perf.confidence, confidence, atol=1e-4)
    assert perf.keypoints.dtype == np.float32
    assert perf.keypoints.shape == (12, 18, 2)
    assert (perf.sequence_id, perf.fps, perf.width, perf.height) == ("clip_0", 30.0, 640, 480)
    assert perf.audio_path == str(tmp_path / "clip" / "audio.wav")
    assert perf.audio_offset == 1.5
    assert perf.source == "wild"
    assert perf.split in SPLITS


def test_most_confident_person_is_kept(tmp_path):
    keypoints, confidence = _dance(10)
    folder = _write_folder(tmp_path, "duo", keypoints, confidence)
    # Frame 4 also shows a full-body bystander at confidence 0.3, listed first.
    bystander = {"pose_keypoints_2d": _flat(keypoints[4] + 300, np.full(18, 0.3), False)}
    frame = folder / "duo_4_keypoints.json"
    data = json.loads(frame.read_text())
    data["people"].insert(0, bystander)
    frame.write_text(json.dumps(data))
    (perf,) = _run(tmp_path)
    np.testing.assert_allclose(perf.keypoints[4], keypoints[4], atol=1e-3)


def test_short_gaps_are_interpolated_long_gaps_not(tmp_path):
    keypoints, confidence = _dance(20)
    keypoints[4, 4], confidence[4, 4] = (100, 50), 0.8  # right wrist before its 3-frame gap ...
    keypoints[8, 4], confidence[8, 4] = (140, 90), 0.6  # ... and after it
    confidence[5:8, 4] = 0
    confidence[5:10, 7] = 0  # left wrist: a 5-frame gap
    confidence[:2, 0] = 0  # nose: missing from the start, no left end
    _write_folder(tmp_path, "gaps", keypoints, confidence)
    stats = collections.Counter()
    (perf,) = _run(tmp_path, _config(max_gap_frames=3), stats)
    np.testing.assert_allclose(perf.keypoints[5:8, 4], [(110, 60), (120, 70), (130, 80)], atol=1e-3)
    np.testing.assert_allclose(perf.confidence[5:8, 4], 0.6)
    assert np.isnan(perf.keypoints[5:10, 7]).all()
    assert not perf.confidence[5:10, 7].any()
    assert np.isnan(perf.keypoints[:2, 0]).all()
    assert stats["wild_joints_interpolated"] == 3


def test_mostly_missing_sequence_is_dropped(tmp_path):
    keypoints, confidence = _dance(20)
    confidence[:, 6:] = 0  # 6 of 18 joints seen
    _write_folder(tmp_path, "sparse", keypoints, confidence)
    _write_folder(tmp_path, "fine", *_dance(20))
    stats = collections.Counter()
    perfs = _run(tmp_path, stats=stats)
    assert [p.sequence_id for p in perfs] == ["fine_0"]
    assert stats["wild_dropped_mostly_missing"] == 1
    assert stats["wild_videos"] == 2


def test_sparse_frames_break_runs(tmp_path):
    keypoints, confidence = _dance(30)
    confidence[14:16, 4:] = 0  # two frames with only 4 joints: breaks
    _write_folder(tmp_path, "dip", keypoints, confidence)
    stats = collections.Counter()
    perfs = _run(tmp_path, _config(max_gap_frames=1), stats)
    assert [(p.sequence_id, p.num_frames) for p in perfs] == [("dip_0", 14), ("dip_1", 14)]
    assert stats["wild_sparse_frames"] == 2


def test_pose_jump_cuts_shots_and_short_runs_are_dropped(tmp_path):
    keypoints, confidence = _dance(60)
    keypoints[30:50, :, 0] += 2 * BODY_HEIGHT  # teleport 2 body heights at 30, back at 50
    _write_folder(tmp_path, "cuts", keypoints, confidence, audio_offset=2.0)
    stats = collections.Counter()
    perfs = _run(tmp_path, _config(min_frames=15), stats)
    assert [(p.sequence_id, p.num_frames) for p in perfs] == [("cuts_0", 30), ("cuts_1", 20)]
    np.testing.assert_allclose(perfs[1].keypoints, keypoints[30:50], atol=1e-3)
    assert perfs[1].audio_offset == pytest.approx(2.0 + 30 / 30.0)
    assert stats["wild_shot_cuts"] == 2
    assert stats["wild_runs_too_short"] == 1
    assert stats["wild_runs_kept"] == 2
    assert stats["wild_frames_kept"] == 50


def test_videos_outside_the_fps_range_are_dropped(tmp_path):
    for name, fps in (("slow", 15.0), ("fast", 90.0), ("ok", 30.0)):
        _write_folder(tmp_path, name, *_dance(10), fps=fps)
    stats = collections.Counter()
    assert [p.sequence_id for p in _run(tmp_path, stats=stats)] == ["ok_0"]
    assert stats["wild_dropped_fps"] == 2


def test_npz_route(tmp_path):
    keypoints, confidence = _dance(12)
    body25 = np.zeros((12, 25, 2), np.float32)
    body25[:, BODY25_OF_18] = keypoints
    body25_conf = np.ones((12, 25), np.float32)
    body25_conf[:, BODY25_OF_18] = confidence
    _write_npz(tmp_path, "a25", body25, body25_conf, audio_offset=0.5)
    coco = keypoints.copy()
    coco[:, 17] = np.nan  # left ear never seen: NaN coordinates make it invisible
    _write_npz(tmp_path, "b18", coco, confidence, fps=25.0)
    a, b = _run(tmp_path)
    assert (a.sequence_id, a.audio_offset) == ("a25_0", 0.5)
    assert a.audio_path == str(tmp_path / "a25.wav")
    np.testing.assert_allclose(a.keypoints, keypoints)
    np.testing.assert_allclose(a.confidence, confidence)
    assert (b.sequence_id, b.fps) == ("b18_0", 25.0)
    assert np.isnan(b.keypoints[:, 17]).all()
    assert not b.confidence[:, 17].any()
    np.testing.assert_allclose(b.keypoints[:, :17], keypoints[:, :17])


def test_split_is_stable_and_splits_json_overrides(tmp_path):
    names = [f"video{i:03d}" for i in range(200)]
    splits = [wild._split(n, None, tmp_path) for n in names]
    assert splits == [wild._split(n, None, tmp_path) for n in names]
    assert 160 <= splits.count("train") <= 195
    assert {"val", "test"} <= set(splits)
    _write_folder(tmp_path, "clip", *_dance(10))
    (tmp_path / "splits.json").write_text(json.dumps({"clip": "test"}))
    assert _run(tmp_path)[0].split == "test"


BAD = "bad_video"


def _malformed_frame(root: Path) -> str:
    folder = _write_folder(root, BAD, *_dance(10))
    (folder / f"{BAD}_3_keypoints.json").write_text("{not json")
    return f"{BAD}/{BAD}_3_keypoints.json"


def _wrong_count_json(root: Path) -> str:
    folder = _write_folder(root, BAD, *_dance(10))
    (folder / f"{BAD}_5_keypoints.json").write_text(json.dumps(
        {"people": [{"pose_keypoints_2d": [1.0] * 60}]}))
    return f"{BAD}/{BAD}_5_keypoints.json"


def _wrong_count_npz(root: Path) -> str:
    _write_npz(root, BAD, np.zeros((10, 17, 2)), np.ones((10, 17)))
    return f"{BAD}.npz"


def _missing_meta(root: Path) -> str:
    (_write_folder(root, BAD, *_dance(10)) / "meta.json").unlink()
    return f"{BAD}/meta.json"


def _meta_without_fps(root: Path) -> str:
    folder = _write_folder(root, BAD, *_dance(10))
    (folder / "meta.json").write_text(json.dumps({"width": 640, "height": 480}))
    return f"{BAD}/meta.json"


def _missing_music_folder(root: Path) -> str:
    (_write_folder(root, BAD, *_dance(10)) / "audio.wav").unlink()
    return f"root/{BAD}"


def _missing_music_npz(root: Path) -> str:
    _write_npz(root, BAD, *_dance(10))
    (root / f"{BAD}.wav").unlink()
    return f"{BAD}.npz"


def _wrong_count_wholebody_npz(root: Path) -> str:
    _write_npz(root, BAD, np.zeros((10, 130, 2)), np.ones((10, 130)))
    return f"{BAD}.npz"


def _nan_only_npz(root: Path) -> str:
    _write_npz(root, BAD, np.full((10, 18, 2), np.nan), np.ones((10, 18)))
    return f"{BAD}.npz"


def _empty_root(root: Path) -> str:
    _wav(root / "stray.wav")
    return str(root)


def _unlisted_in_splits(root: Path) -> str:
    _write_folder(root, BAD, *_dance(10))
    (root / "splits.json").write_text(json.dumps({"other": "train"}))
    return "root/splits.json"


@pytest.mark.parametrize("make_bad", [
    _malformed_frame, _wrong_count_json, _wrong_count_npz, _wrong_count_wholebody_npz,
    _missing_meta, _meta_without_fps, _missing_music_folder, _missing_music_npz, _nan_only_npz,
    _empty_root, _unlisted_in_splits,
])
def test_bad_input_raises_one_line_naming_the_file(tmp_path, make_bad):
    root = tmp_path / "root"
    root.mkdir()
    name = make_bad(root)
    with pytest.raises(InputError) as error:
        _run(root)
    message = str(error.value)
    assert name in message
    assert "\n" not in message


# ---------------------------------------------------------------- hands (openpose18_hands)


def test_json_hands_are_read_beside_the_body(tmp_path):
    keypoints, confidence = _dance(12)
    hands = _hands(keypoints)
    _write_folder(tmp_path, "clip", keypoints, confidence, body25=True, hands=hands)
    (perf,) = _run(tmp_path, _config(hands=True))
    assert perf.keypoints.shape == (12, 60, 2)
    assert perf.keypoints.dtype == np.float32
    np.testing.assert_allclose(perf.keypoints[:, :18], keypoints, atol=1e-3)
    np.testing.assert_allclose(perf.keypoints[:, 18:], hands[0], atol=1e-3)
    np.testing.assert_allclose(perf.confidence, np.c_[confidence, hands[1]], atol=1e-4)
    # The body-only skeleton reads the same folder as before: the hands' lists are not read.
    (body,) = _run(tmp_path)
    assert body.keypoints.shape == (12, 18, 2)
    np.testing.assert_allclose(body.keypoints, keypoints, atol=1e-3)


def test_hands_unseen_in_a_frame_are_filled_over_short_gaps_and_break_nothing(tmp_path):
    keypoints, confidence = _dance(30)
    hands = _hands(keypoints)
    # OpenPose wrote no hand lists in frames 5-6 (a short gap) and 12-21 (longer than 3 frames).
    _write_folder(tmp_path, "clip", keypoints, confidence, hands=hands,
                  handless=[5, 6, *range(12, 22)])
    _write_folder(tmp_path, "handless", keypoints, confidence)  # OpenPose run without hands
    stats = collections.Counter()
    clip, handless = _run(tmp_path, _config(hands=True, max_gap_frames=3), stats)
    assert (clip.sequence_id, clip.num_frames) == ("clip_0", 30)  # one run: hands break nothing
    weight = np.array([1, 2])[:, None, None] / 3
    np.testing.assert_allclose(clip.keypoints[5:7, 18:],
                               (1 - weight) * hands[0][4] + weight * hands[0][7], atol=1e-3)
    np.testing.assert_allclose(clip.confidence[5:7, 18:], hands[1][5:7], atol=1e-4)
    assert np.isnan(clip.keypoints[12:22, 18:]).all()
    assert not clip.confidence[12:22, 18:].any()
    np.testing.assert_allclose(clip.keypoints[22:, 18:], hands[0][22:], atol=1e-3)
    np.testing.assert_allclose(clip.keypoints[:, :18], keypoints, atol=1e-3)
    assert (handless.sequence_id, handless.num_frames) == ("handless_0", 30)
    assert np.isnan(handless.keypoints[:, 18:]).all()
    assert not handless.confidence[:, 18:].any()
    np.testing.assert_allclose(handless.keypoints[:, :18], keypoints, atol=1e-3)
    assert stats["wild_hand_joints_interpolated"] == 2 * 2 * HAND
    assert stats["wild_joints_interpolated"] == 0
    assert stats["wild_sparse_frames"] == 0
    assert stats["wild_runs_kept"] == 2


@pytest.mark.parametrize("hands", [True, False])
def test_wholebody_npz_and_json_convert_to_the_skeleton(tmp_path, hands):
    keypoints, confidence = _dance(12)
    hand_keypoints, hand_confidence = _hands(keypoints)
    hand_confidence[3:5, :HAND] = 0  # the left hand unseen for two frames: filled
    whole = _wholebody(keypoints, confidence, hand_keypoints, hand_confidence)
    _write_npz(tmp_path, "dwpose_npz", *whole)
    _write_folder(tmp_path, "dwpose_json", *whole)  # pose_keypoints_2d of 133 triples
    stats = collections.Counter()
    for perf in _run(tmp_path, _config(hands=hands), stats):
        assert perf.keypoints.shape == (12, 60 if hands else 18, 2)
        np.testing.assert_allclose(perf.keypoints[:, :18], keypoints, atol=1e-3)
        neck = OPENPOSE_18.index("neck")  # the shoulders' midpoint, their lower confidence
        np.testing.assert_allclose(np.delete(perf.confidence[:, :18], neck, axis=1),
                                   np.delete(confidence, neck, axis=1), atol=1e-4)
        np.testing.assert_allclose(perf.confidence[:, neck], confidence[:, [2, 5]].min(1))
        if hands:
            left = whole[0][:, 91:112].copy()
            weight = np.array([1, 2])[:, None, None] / 3
            left[3:5] = (1 - weight) * left[2] + weight * left[5]
            np.testing.assert_allclose(perf.keypoints[:, LEFT], left, atol=1e-3)
            np.testing.assert_allclose(perf.keypoints[:, RIGHT], whole[0][:, 112:], atol=1e-3)
            np.testing.assert_allclose(perf.confidence[:, 18:], _hands(keypoints)[1], atol=1e-4)
    assert stats["wild_hand_joints_interpolated"] == (2 * 2 * HAND if hands else 0)


def test_bad_hands_and_whole_body_poses_name_the_file(tmp_path):
    keypoints, confidence = _dance(10)
    hands = _hands(keypoints)
    folder = _write_folder(tmp_path / "json", BAD, keypoints, confidence, hands=hands)
    frame = folder / f"{BAD}_4_keypoints.json"
    data = json.loads(frame.read_text())
    data["people"][0]["hand_left_keypoints_2d"] = data["people"][0]["hand_left_keypoints_2d"][:60]
    frame.write_text(json.dumps(data))
    npz = _write_npz(tmp_path / "npz", BAD, np.zeros((10, 130, 2)), np.ones((10, 130)))
    expected = {"json": f"{frame}: hand_left_keypoints_2d has 20 keypoints; expected 21",
                "npz": f"{npz}: keypoints of 130 joints; expected 18, 25 or 133"}
    for root, message in expected.items():
        with pytest.raises(InputError) as error:
            _run(tmp_path / root, _config(hands=True))
        assert str(error.value) == message


def test_a_hands_build_of_wild_videos_holds_sixty_keypoints(tmp_path):
    root = tmp_path / "wild"
    keypoints, confidence = _dance(80)
    hands = _hands(keypoints)
    good = _write_folder(root, "good", keypoints, confidence, hands=hands, handless=[40])
    _wav(good / "audio.wav", seconds=4.0)
    bad = _write_folder(root, BAD, keypoints, confidence,
                        hands=(hands[0][:, 1:], hands[1][:, 1:]))  # a right hand of 20
    (root / "splits.json").write_text(json.dumps({"good": "train", BAD: "train"}))
    config = tiny_config()
    config.pose.skeleton = OPENPOSE_18_HANDS.name
    manifest = build.build("wild", root, tmp_path / "segments", config)
    (skipped,) = manifest["skipped"]
    assert f"{bad / BAD}_0_keypoints.json: hand_right_keypoints_2d has 20 keypoints" in skipped
    store = segments.SegmentStore(tmp_path / "segments", "train")
    assert len(store) == manifest["counts"]["segments"]["train"] >= 1
    cleaned = hands[0].copy()
    cleaned[40] = (cleaned[39] + cleaned[41]) / 2  # the frame without hands: filled
    for record in (store[i] for i in range(len(store))):
        assert record["keypoints"].shape == (config.pose.segment_frames, 60, 2)
        start = int(record["start_frame"])
        written = cleaned[start:start + config.pose.segment_frames]
        np.testing.assert_allclose(record["keypoints"][:, 18:], written, atol=1e-3)
    assert manifest["stats"]["wild_hand_joints_interpolated"] == 2 * HAND
