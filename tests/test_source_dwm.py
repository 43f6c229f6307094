"""Dance with Melody source: the 33 real performances (HOTDANCE_SHARED) and small tmp files."""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from configs.base import get_config
from data_pipeline.sources import dwm
from data_pipeline.sources.base import SPLITS
from hotdance_jax.errors import InputError
from hotdance_jax.pose.skeletons import DWM_23, OPENPOSE_18
from tests.conftest import shared_file

J = OPENPOSE_18.index
HIDDEN = [J("nose"), J("right_eye"), J("left_eye")]
MARGIN_PX = 50  # every real keypoint stays this far inside the 1920 x 1080 frame
# The 33 performances of ../shared/data/dwm: the published 18 and 15 waltzes added later.
ADDED = tuple(f"DANCE_W_{n}" for n in (15, 16, 17, 18, 21, 22, 23, 25, 26, 28, 29, 31, 32, 33, 34))


@pytest.fixture(scope="module")
def root() -> Path:
    return shared_file("data/dwm/DANCE_C_2/config.json").parent.parent


@pytest.fixture(scope="module")
def loaded(root):
    """(performances by name, stats) of the real data at the default 1920 x 1080."""
    stats = collections.Counter()
    perfs = list(dwm.performances(root, get_config().data, stats))
    return {p.sequence_id: p for p in perfs}, stats


@pytest.fixture(scope="module")
def worlds(root):
    """Raw (N, 23, 3) cm world joints per performance name."""
    return {name: dwm.read_world(root / name) for name in dwm.PUBLISHED + ADDED}


FOLLOW_PX_PER_CM = get_config().data.dwm.follow_px_per_cm  # the default, at 1080 px high


def _data_config(width: int = 1920, height: int = 1080, camera: str = "fixed",
                 follow_seconds: float = 1.5, follow_px_per_cm: float = FOLLOW_PX_PER_CM):
    config = get_config().data
    config.dwm.width, config.dwm.height = width, height
    config.dwm.camera, config.dwm.follow_seconds = camera, follow_seconds
    config.dwm.follow_px_per_cm = follow_px_per_cm
    return config


# ---------------------------------------------------------------- the real data


def test_all_performances_load(loaded, worlds):
    perfs, stats = loaded
    assert sorted(perfs) == sorted(dwm.PUBLISHED + ADDED)
    assert stats["dwm_performances"] == 33
    assert stats["dwm_keypoints_out_of_frame"] == 0
    for name, p in perfs.items():
        assert p.num_frames == len(worlds[name])
        assert p.keypoints.shape == (p.num_frames, 18, 2)
        assert p.keypoints.dtype == p.confidence.dtype == np.float32
        assert (p.fps, p.width, p.height, p.source) == (25.0, 1920, 1080, "dwm")


def test_every_keypoint_inside_the_frame_with_margin(loaded):
    for p in loaded[0].values():
        visible = p.keypoints[p.confidence > 0]
        assert np.all(visible >= MARGIN_PX), p.sequence_id
        assert np.all(visible <= np.array([p.width, p.height]) - MARGIN_PX), p.sequence_id


def test_fifteen_visible_joints_nose_and_eyes_hidden(loaded):
    for p in loaded[0].values():
        visible = p.confidence > 0
        assert np.all(visible.sum(axis=1) == 15), p.sequence_id
        assert not visible[:, HIDDEN].any()
        assert np.all(np.isnan(p.keypoints[:, HIDDEN]))
        assert np.all(np.isfinite(p.keypoints[visible]))


def test_dancers_upright(loaded):
    for p in loaded[0].values():
        y = p.keypoints[..., 1]
        head = y[:, [J("right_ear"), J("left_ear")]].mean(axis=1)
        hips = y[:, [J("right_hip"), J("left_hip")]].mean(axis=1)
        ankles = y[:, [J("right_ankle"), J("left_ankle")]].mean(axis=1)
        assert np.mean((head < hips) & (hips < ankles)) > 0.95, p.sequence_id


def test_one_scale_for_every_dancer(loaded, worlds):
    """Orthographic: a bone's pixel length is at most PX_PER_CM x its 3D length, with equality
    when it lies in the image plane (thighs often do); median thighs are human-sized."""
    hip, knee = DWM_23.index("right_hip"), DWM_23.index("right_knee")
    for name, p in loaded[0].items():
        thigh_px = np.linalg.norm(p.keypoints[:, J("right_knee")] - p.keypoints[:, J("right_hip")],
                                  axis=-1)
        ratio = thigh_px / np.linalg.norm(worlds[name][:, knee] - worlds[name][:, hip], axis=-1)
        assert dwm.PX_PER_CM * 0.99 < ratio.max() < dwm.PX_PER_CM * 1.0001, name
        assert 35 * dwm.PX_PER_CM < np.median(thigh_px) < 60 * dwm.PX_PER_CM, name


def test_feet_on_one_floor_line(loaded):
    floor_px = dwm.project(np.zeros(3), 1920, 1080)[1]  # image y of world height 0
    medians = []
    for p in loaded[0].values():
        lower_ankle = p.keypoints[:, [J("right_ankle"), J("left_ankle")], 1].max(axis=1)
        height_cm = (floor_px - lower_ankle) / dwm.PX_PER_CM
        assert np.percentile(height_cm, 95) < 25, p.sequence_id
        medians.append(np.median(height_cm))
    assert min(medians) > 3
    assert max(medians) < 15
    assert np.ptp(medians) < 6  # cm


def test_audio_offset_is_start_position(loaded, root):
    for name, p in loaded[0].items():
        start = json.loads((root / name / "config.json").read_text())["start_position"]
        assert p.audio_offset == pytest.approx(start / 25)
        assert Path(p.audio_path) == root / name / "audio.mp3"


def test_splits_fixed_disjoint_and_covering(loaded):
    by_split = collections.defaultdict(set)
    for name, p in loaded[0].items():
        assert p.split == dwm.split_of(name) in SPLITS
        by_split[p.split].add(name)
    assert sum(map(len, by_split.values())) == 33
    assert by_split["test"] == {"DANCE_C_6", "DANCE_R_5", "DANCE_W_5", "DANCE_W_10",
                                "DANCE_W_15", "DANCE_W_21", "DANCE_W_31"}
    assert by_split["val"] == {"DANCE_W_8", "DANCE_W_28"}
    assert "DANCE_T_5" in by_split["train"]
    assert len(by_split["train"]) == 24


def test_real_performances_at_another_frame_size(root, loaded):
    small = next(dwm.performances(root, _data_config(960, 540), collections.Counter()))
    full = loaded[0][small.sequence_id]
    np.testing.assert_allclose(small.keypoints, full.keypoints / 2, atol=1e-3)


@pytest.fixture(scope="module")
def followed(root):
    """(performances by name, stats) of the real data seen by the following camera, 1080 x 1080."""
    stats = collections.Counter()
    config = _data_config(1080, 1080, camera="follow")
    return {p.sequence_id: p for p in dwm.performances(root, config, stats)}, stats


def test_follow_camera_keeps_every_dancer_in_a_square_frame(followed):
    perfs, stats = followed
    assert len(perfs) == 33
    assert stats["dwm_keypoints_out_of_frame"] == 0
    for p in perfs.values():
        assert (p.width, p.height) == (1080, 1080)
        assert np.all((p.confidence > 0).sum(axis=1) == 15), p.sequence_id
        visible = p.keypoints[p.confidence > 0]
        assert np.all(visible >= 40), p.sequence_id
        assert np.all(visible <= 1080 - 40), p.sequence_id


def test_follow_camera_pans_with_the_smoothed_hips(followed, worlds):
    """x is the fixed scale times the distance along the floor axis from `follow_track`, which
    follows the hips smoothly; the body is about two thirds of the frame height."""
    axis = np.deg2rad(dwm.FLOOR_AXIS_DEG)
    for name, p in followed[0].items():
        world = dwm.ground(worlds[name])
        track = dwm.follow_track(world, dwm.FLOOR_AXIS_DEG, 1.5)
        across = world[..., 0] * np.cos(axis) + world[..., 2] * np.sin(axis)
        hips = across[:, list(dwm.HIP_JOINTS)].mean(axis=1)
        seen = p.confidence[:, J("right_hip")] > 0
        expected = 540 + FOLLOW_PX_PER_CM * (across[:, dwm.HIP_JOINTS[0]] - track)
        np.testing.assert_allclose(p.keypoints[seen, J("right_hip"), 0], expected[seen],
                                   atol=1e-2)
        assert np.abs(hips - track).max() < 60, name  # cm: the camera keeps up
        assert np.abs(np.diff(track, 2)).max() < np.abs(np.diff(hips, 2)).max() / 5, name
        ears = p.keypoints[:, [J("right_ear"), J("left_ear")], 1].mean(axis=1)
        floor_px = 540 + FOLLOW_PX_PER_CM * dwm.CAMERA_CENTRE_CM[1]
        assert 0.55 < np.median(floor_px - ears) / 1080 < 0.72, name


def test_follow_scale_zooms_about_the_frame_centre(worlds):
    """Half the px/cm: every keypoint half as far from the frame's centre, the pan unchanged."""
    world = dwm.ground(worlds["DANCE_W_1"])
    full = dwm.view(world, (1080, 1080), (1.5, 4.6))
    half = dwm.view(world, (1080, 1080), (1.5, 2.3))
    seen = np.isfinite(full).all(-1)
    assert seen.mean() > 0.9
    np.testing.assert_allclose(half[seen] - 540, (full[seen] - 540) / 2, atol=1e-3)


@pytest.mark.parametrize(("camera", "seconds", "scale", "match"), [
    ("pan", 1.5, 4.6, r"camera: 'pan'; expected one of \['fixed', 'follow'\]"),
    ("follow", 0.0, 4.6, "follow_seconds: 0; expected > 0"),
    ("follow", 1.5, 0.0, "follow_px_per_cm: 0; expected > 0")])
def test_bad_camera_settings_are_refused(root, camera, seconds, scale, match):
    with pytest.raises(InputError, match=match):
        dwm.performances(root, _data_config(camera=camera, follow_seconds=seconds,
                                            follow_px_per_cm=scale), collections.Counter())


# ---------------------------------------------------------------- small files


def _standing(n: int = 60) -> np.ndarray:
    """(n, 23, 3) cm root-relative: a dancer standing, root 95 cm up, feet 5 cm above the floor."""
    heights = {"head": 75, "spine": 45, "shoulder": 45, "elbow": 20, "forearm": 10, "wrist": 0,
               "hand": -5, "hip": 0, "knee": -45, "ankle": -85, "heel": -90, "toe": -90}
    joints = []
    for name in DWM_23.joints:
        side = "right" if "right" in name else "left" if "left" in name else ""
        part = name.replace(side, "").strip("_")
        x = {"right": -15, "left": 15, "": 0}[side]
        joints.append([x, heights[part], 10 if part == "toe" else 0])
    return np.tile(np.array(joints, float), (n, 1, 1))


def _write(
    folder: Path,
    skeletons: np.ndarray | None = None,
    center: np.ndarray | None = None,
    length: int | None = None,
    start: float = 50,
    gz: bool = True,
) -> Path:
    """Writes a DANCE_* performance folder; defaults: 60 standing frames at the floor's origin."""
    skeletons = _standing() if skeletons is None else skeletons
    center = np.tile([0.0, 95.0, 0.0], (len(skeletons), 1)) if center is None else center
    doc = {"length": len(skeletons) if length is None else length, "center": center.tolist(),
           "skeletons": skeletons.tolist()}
    folder.mkdir(parents=True)
    text = json.dumps(doc).encode()
    if gz:
        (folder / "skeletons.json.gz").write_bytes(gzip.compress(text))
    else:
        (folder / "skeletons.json").write_bytes(text)
    (folder / "config.json").write_text(json.dumps({"start_position": start, "end_position": 0}))
    (folder / "audio.mp3").write_bytes(b"")
    return folder


def _load(root: Path, stats: collections.Counter | None = None) -> list:
    return list(dwm.performances(root, _data_config(), collections.Counter() if stats is None
                                 else stats))


def test_small_performance_plain_json(tmp_path):
    _write(tmp_path / "DANCE_X_1", gz=False, start=12)
    (p,) = _load(tmp_path)
    assert (p.sequence_id, p.num_frames, p.audio_offset) == ("DANCE_X_1", 60, 12 / 25)
    assert p.split == dwm.split_of("DANCE_X_1")
    ankles = p.keypoints[:, [J("right_ankle"), J("left_ankle")], 1]
    floor_px = dwm.project(np.zeros(3), 1920, 1080)[1]
    np.testing.assert_allclose(ankles, floor_px - 5 * dwm.PX_PER_CM, atol=1e-3)


def test_nan_joints_and_frames_become_invisible(tmp_path):
    skeletons, center = _standing(), np.tile([0.0, 95.0, 0.0], (60, 1))
    skeletons[3, DWM_23.index("right_elbow")] = np.nan
    center[5] = np.nan
    _write(tmp_path / "DANCE_X_1", skeletons, center)
    (p,) = _load(tmp_path)
    assert p.confidence[3, J("right_elbow")] == 0
    assert (p.confidence[3] > 0).sum() == 14
    assert not p.confidence[5].any()
    assert np.isnan(p.keypoints[5]).all()
    assert (p.confidence[6] > 0).sum() == 15


def test_keypoints_outside_the_frame_are_hidden_and_counted(tmp_path):
    center = np.tile([0.0, 95.0, 0.0], (60, 1))
    center[:10, 0] = 5000  # 50 m away along world x
    _write(tmp_path / "DANCE_X_1", center=center)
    stats = collections.Counter()
    (p,) = _load(tmp_path, stats)
    assert not p.confidence[:10].any()
    assert stats["dwm_keypoints_out_of_frame"] == 10 * 15


def test_follow_camera_without_hips_names_the_folder(tmp_path):
    skeletons = _standing()
    skeletons[:, list(dwm.HIP_JOINTS)] = np.nan
    _write(tmp_path / "DANCE_X_1", skeletons)
    config = _data_config(1080, 1080, camera="follow")
    with pytest.raises(InputError, match=r"DANCE_X_1: no frame shows both hips") as error:
        list(dwm.performances(tmp_path, config, collections.Counter()))
    assert "\n" not in str(error.value)


def test_ground_removes_drift_keeps_hops():
    n = 2000
    world = _standing(n) + np.array([0, 95, 0])
    world[..., 1] += np.linspace(0, 40, n)[:, None]  # the capture's root drift: 40 cm
    hop = slice(1000, 1010)
    world[hop, :, 1] += 20  # a 0.4 s hop
    lowest = dwm.ground(world)[:, dwm.FOOT_JOINTS, 1].min(axis=1)
    assert lowest.min() >= -1e-9  # no foot below the floor
    assert np.all(np.delete(lowest, np.arange(n)[hop]) < 1.0)  # drift gone (lag < 1 cm)
    assert np.all(lowest[hop] > 18)


def test_unknown_folders_get_a_stable_split():
    names = [f"DANCE_X_{i}" for i in range(2000)]
    splits = [dwm.split_of(n) for n in names]
    assert splits == [dwm.split_of(n) for n in names]
    counts = collections.Counter(splits)
    assert set(counts) == set(SPLITS)
    assert abs(counts["train"] / 2000 - dwm.TRAIN_PERCENT / 100) < 0.05


@pytest.mark.parametrize(
    ("remove", "match"),
    [("audio.mp3", r"DANCE_X_1: missing the song \(audio.mp3, audio.ogg, audio.flac or audio.wav"),
     ("config.json", "config.json: missing"),
     ("skeletons.json.gz", "skeletons.json: missing")],
)
def test_missing_file(tmp_path, remove, match):
    (_write(tmp_path / "DANCE_X_1") / remove).unlink()
    with pytest.raises(InputError, match=match):
        _load(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"skeletons": np.zeros((60, 22, 3))}, r"skeletons must be \(N, 23, 3\), got \(60, 22, 3\)"),
     ({"skeletons": np.zeros((60, 23, 2))}, r"skeletons must be \(N, 23, 3\)"),
     ({"center": np.zeros((59, 3))}, r"center must be \(60, 3\)"),
     ({"length": 61}, "length 61 but 60 skeleton frames"),
     ({"skeletons": np.full((60, 23, 3), np.nan)}, "every coordinate is NaN"),
     ({"start": -1}, "start_position >= 0")],
)
def test_bad_file(tmp_path, kwargs, match):
    _write(tmp_path / "DANCE_X_1", **kwargs)
    with pytest.raises(InputError, match=match) as error:
        _load(tmp_path)
    assert "DANCE_X_1" in str(error.value)
    assert "\n" not in str(error.value)


def test_unreadable_skeletons(tmp_path):
    (_write(tmp_path / "DANCE_X_1") / "skeletons.json.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match=r"skeletons.json.gz: unreadable"):
        _load(tmp_path)


def test_root_without_performances(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="no DANCE_"):
        dwm.performances(tmp_path, _data_config(), collections.Counter())
    with pytest.raises(InputError, match="not a directory"):
        dwm.performances(tmp_path / "absent", _data_config(), collections.Counter())
