"""AIST++ source on small files written in AIST++'s own formats (pkl, txt lists, wav), and on
the real keypoints2d pickles of ../shared."""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from configs.base import get_config
from data_pipeline.sources import aistpp
from hotdance_jax.errors import InputError
from tests.conftest import shared_file

TRAIN = "gBR_sBM_cAll_d04_mBR0_ch02"
TEST = "gPO_sFM_cAll_d10_mPO1_ch13"
IGNORED = "gJS_sBM_cAll_d03_mJS3_ch10"
UNSPLIT = "gHO_sBM_cAll_d19_mHO2_ch05"
F = 2.0 * 1080  # virtual camera focal length at the default 1920x1080 frame, pixels
NECK, R_SHOULDER, L_SHOULDER, L_WRIST, R_HIP, L_HIP, R_ANKLE, L_ANKLE = 1, 2, 5, 7, 8, 11, 10, 13
# The real AIST++ sequences in ../shared: one dancer's basic break dance to mBR0, whose music is
# not there. The official lists put ch02 in the test split and ch07, ch08, ch10 on the ignore
# list; the other six are in no crossmodal list.
REAL = tuple(f"gBR_sBM_cAll_d04_mBR0_ch{i:02d}" for i in range(1, 11))
REAL_IGNORED = ("gBR_sBM_cAll_d04_mBR0_ch07", "gBR_sBM_cAll_d04_mBR0_ch08",
                "gBR_sBM_cAll_d04_mBR0_ch10")


def standing(height: float, x: float = 0.0, z: float = 0.0) -> np.ndarray:
    """(17, 3) COCO-17 joints, world cm (y up), of an upright person `height` cm tall at (x, z),
    facing +z (their left is +x). Legs and torso are vertical: shoulder-to-ankle span 0.78 h."""
    h = height
    joints = {  # name: (x, y) in heights
        "nose": (0, 0.92), "left_eye": (0.02, 0.93), "right_eye": (-0.02, 0.93),
        "left_ear": (0.04, 0.92), "right_ear": (-0.04, 0.92), "left_shoulder": (0.11, 0.82),
        "right_shoulder": (-0.11, 0.82), "left_elbow": (0.12, 0.63), "right_elbow": (-0.12, 0.63),
        "left_wrist": (0.12, 0.47), "right_wrist": (-0.12, 0.47), "left_hip": (0.06, 0.52),
        "right_hip": (-0.06, 0.52), "left_knee": (0.06, 0.28), "right_knee": (-0.06, 0.28),
        "left_ankle": (0.06, 0.04), "right_ankle": (-0.06, 0.04),
    }
    return np.array([(x + jx * h, jy * h, z) for jx, jy in joints.values()], np.float32)


def write_pkl(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


def write_dataset(
    root: Path,
    keypoints2d: dict[str, np.ndarray] | None = None,
    keypoints3d: dict[str, np.ndarray | dict] | None = None,
    splits: dict[str, list[str]] | None = None,
    ignore: tuple[str, ...] = (),
) -> None:
    """AIST++ files under `root`: pkls per sequence (a keypoints3d value may be the whole pkl
    dict), split lists and ignore list (if `splits` is given), 2 s of noise per music id."""
    for name, kp in (keypoints2d or {}).items():
        n = kp.shape[1]
        write_pkl(root / "keypoints2d" / f"{name}.pkl", {
            "keypoints2d": kp, "det_scores": np.ones(kp.shape[:2], np.float32),
            "timestamps": np.arange(n) * 1e6 / 60})
    for name, kp in (keypoints3d or {}).items():
        write_pkl(root / "keypoints3d" / f"{name}.pkl",
                  kp if isinstance(kp, dict) else {"keypoints3d": kp})
    if splits is not None:
        write_lists(root / "splits", splits, ignore)
    names = {*(keypoints2d or {}), *(keypoints3d or {})}
    (root / "wav").mkdir(parents=True, exist_ok=True)
    for music in {aistpp.music_id(name) for name in names}:
        noise = np.random.default_rng(0).uniform(-0.5, 0.5, 2 * 8000).astype(np.float32)
        sf.write(root / "wav" / f"{music}.wav", noise, 8000)


def write_lists(directory: Path, splits: dict[str, list[str]], ignore: tuple[str, ...] = ()
                ) -> Path:
    """crossmodal_<split>.txt for each split and ignore_list.txt in `directory`, made here."""
    directory.mkdir(parents=True)
    for split, names in splits.items():
        (directory / f"crossmodal_{split}.txt").write_text("\n".join(names) + "\n")
    (directory / "ignore_list.txt").write_text("".join(f"{n} \n" for n in ignore))
    return directory


def real_aistpp() -> Path:
    """The shared AIST++ folder: keypoints2d/ with the 10 REAL pickles, no music, no splits/."""
    for name in REAL:
        shared_file(f"data/aistpp/keypoints2d/{name}.pkl")
    return shared_file("data/aistpp")


def views_2d(num_frames: int = 4) -> np.ndarray:
    """(9, N, 17, 3) keypoints2d: joint j of view v at x = 100 v + j, y = 10 j + frame, conf 0.9."""
    kp = np.zeros((9, num_frames, 17, 3), np.float32)
    kp[..., 0] = 100 * np.arange(9)[:, None, None] + np.arange(17)
    kp[..., 1] = 10 * np.arange(17) + np.arange(num_frames)[:, None]
    kp[..., 2] = 0.9
    return kp


def data_config(**aistpp_values):
    config = get_config().data
    config.aistpp.update(aistpp_values)
    return config


def run(root: Path, **aistpp_values) -> tuple[list, collections.Counter]:
    stats = collections.Counter()
    return list(aistpp.performances(root, data_config(**aistpp_values), stats)), stats


# ---------------------------------------------------------------- the view variant


def test_view_picks_camera_and_maps_coco_to_openpose(tmp_path):
    kp = views_2d()
    kp[2, :, 5, 2] = 0.6  # c03's left shoulder is less sure
    kp[2, 1, 9] = np.nan  # c03 misses the left wrist in frame 1
    write_dataset(tmp_path, keypoints2d={TRAIN: kp}, splits={"train": [TRAIN], "test": []})
    (perf,), _ = run(tmp_path, view="c03")

    assert perf.sequence_id == "gBR_sBM_c03_d04_mBR0_ch02"
    assert (perf.fps, perf.width, perf.height, perf.split) == (60.0, 1920, 1080, "train")
    assert perf.audio_path == str(tmp_path / "wav" / "mBR0.wav")
    assert perf.audio_offset == 0.0
    assert perf.source == "aistpp"
    assert perf.keypoints.shape == (4, 18, 2)
    assert perf.confidence.shape == (4, 18)
    # c03 = view index 2: x = 200 + COCO joint; COCO 5/6 = left/right shoulder.
    np.testing.assert_allclose(perf.keypoints[0, L_SHOULDER], [205, 50])
    np.testing.assert_allclose(perf.keypoints[0, R_SHOULDER], [206, 60])
    np.testing.assert_allclose(perf.keypoints[3, NECK], [205.5, 58])
    np.testing.assert_allclose(perf.confidence[0, [NECK, L_SHOULDER, R_SHOULDER]], [0.6, 0.6, 0.9])
    # NaN joint: invisible.
    assert perf.confidence[1, L_WRIST] == 0
    assert np.isnan(perf.keypoints[1, L_WRIST]).all()
    assert perf.confidence[0, L_WRIST] == pytest.approx(0.9)


def test_bad_pkl_shape_names_the_file(tmp_path):
    write_dataset(tmp_path, keypoints2d={TRAIN: views_2d()[:, :, :16]},
                  splits={"train": [TRAIN], "test": []})
    with pytest.raises(InputError, match=rf"{TRAIN}\.pkl 'keypoints2d' is \(9, 4, 16, 3\)"):
        run(tmp_path)


def test_bad_view_config(tmp_path):
    write_dataset(tmp_path, keypoints2d={TRAIN: views_2d()}, splits={"train": [TRAIN], "test": []})
    with pytest.raises(InputError, match=r"c01\.\.c09"):
        run(tmp_path, view="c10")


# ---------------------------------------------------------------- splits, ignore list, music


def test_ignore_list_splits_and_bad_views(tmp_path):
    broken = "gBR_sBM_cAll_d04_mBR0_ch01"  # AIST++'s unsynced c05
    write_dataset(
        tmp_path,
        keypoints2d={n: views_2d() for n in (TRAIN, TEST, IGNORED, UNSPLIT, broken)},
        splits={"train": [TRAIN, IGNORED, broken], "val": [], "test": [TEST]},
        ignore=(IGNORED,),
    )
    perfs, stats = run(tmp_path, view="c05")
    assert {p.sequence_id: p.split for p in perfs} == {
        TRAIN.replace("cAll", "c05"): "train", TEST.replace("cAll", "c05"): "test"}
    assert stats == {"aistpp_ignored": 1, "aistpp_unsplit": 1, "aistpp_bad_view": 1}
    perfs, stats = run(tmp_path, view="c01")
    assert len(perfs) == 3
    assert "aistpp_bad_view" not in stats


def test_official_split_lists_from_shared(tmp_path):
    lists = shared_file("data/aistpp_splits/crossmodal_train.txt").parent
    train = (lists / "crossmodal_train.txt").read_text().split()[0]
    test = (lists / "crossmodal_test.txt").read_text().split()[0]
    ignored = (lists / "ignore_list.txt").read_text().split()[0]
    unsplit = "gBR_sBM_cAll_d99_mBR0_ch99"
    write_dataset(tmp_path, keypoints2d={n: views_2d() for n in (train, test, ignored, unsplit)})
    perfs, stats = run(tmp_path)  # no splits/ under the root: $HOTDANCE_SHARED's lists
    assert {p.sequence_id: p.split for p in perfs} == {
        train.replace("cAll", "c01"): "train", test.replace("cAll", "c01"): "test"}
    assert stats == {"aistpp_ignored": 1, "aistpp_unsplit": 1}


def test_splits_dir_config_key(tmp_path, monkeypatch):
    monkeypatch.delenv("HOTDANCE_SHARED", raising=False)
    write_dataset(tmp_path / "aist", keypoints2d={TRAIN: views_2d(), TEST: views_2d()})
    with pytest.raises(InputError, match=r"no crossmodal_train\.txt"):
        run(tmp_path / "aist")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "crossmodal_train.txt").write_text(f"{TEST}\n")
    (lists / "crossmodal_test.txt").write_text(f"{TRAIN}\n")
    (lists / "ignore_list.txt").write_text("")
    perfs, _ = run(tmp_path / "aist", splits_dir=str(lists))
    assert [(p.sequence_id[:3], p.split) for p in perfs] == [("gBR", "test"), ("gPO", "train")]


@pytest.mark.parametrize(("name", "music"), [
    ("gBR_sBM_cAll_d04_mBR0_ch01", "mBR0"),
    ("gWA_sFM_cAll_d27_mWA2_ch21", "mWA2"),
    ("gLH_sBM_c05_d17_mLH4_ch02", "mLH4"),
])
def test_music_id(name, music):
    assert aistpp.music_id(name) == music


@pytest.mark.parametrize("name", ["gBR_sBM_cAll_d04_mBR6_ch01", "gBR_sXX_cAll_d04_mBR0_ch01",
                                  "gBR_sBM_c10_d04_mBR0_ch01", "dance_01"])
def test_bad_sequence_names(name):
    with pytest.raises(InputError, match="not an AIST\\+\\+ sequence name"):
        aistpp.music_id(name)


def test_bad_file_name_names_the_file(tmp_path):
    write_dataset(tmp_path, keypoints2d={TRAIN: views_2d()}, splits={"train": [TRAIN], "test": []})
    write_pkl(tmp_path / "keypoints2d" / "dance_01.pkl", {"keypoints2d": views_2d()})
    with pytest.raises(InputError, match=r"keypoints2d/dance_01\.pkl: .*not an AIST\+\+ sequence"):
        run(tmp_path)


def test_music_in_music_folder_or_root(tmp_path):
    write_dataset(tmp_path, keypoints2d={TRAIN: views_2d()}, splits={"train": [TRAIN], "test": []})
    (tmp_path / "wav" / "mBR0.wav").rename(tmp_path / "mBR0.wav")
    (perf,), _ = run(tmp_path)
    assert perf.audio_path == str(tmp_path / "mBR0.wav")
    (tmp_path / "music").mkdir()
    (tmp_path / "mBR0.wav").rename(tmp_path / "music" / "mBR0.wav")
    (perf,), _ = run(tmp_path)
    assert perf.audio_path == str(tmp_path / "music" / "mBR0.wav")


def test_missing_music_makes_a_motion_only_performance(tmp_path):
    write_dataset(tmp_path, keypoints2d={TRAIN: views_2d()}, splits={"train": [TRAIN], "test": []})
    os.remove(tmp_path / "wav" / "mBR0.wav")
    (perf,), stats = run(tmp_path)
    assert (perf.audio_path, perf.has_music, perf.num_frames) == ("", False, 4)
    assert not stats


# ---------------------------------------------------------------- the real keypoints2d files


def test_real_files_with_the_official_lists():
    """Of the 10 real sequences the official lists admit one, ch02 (test); ch07, ch08 and ch10
    are ignored, the six others in no crossmodal list. It comes motion-only: no mBR0 music."""
    root = real_aistpp()
    assert not (root / "splits").exists()  # the lists are the sibling aistpp_splits/
    (perf,), stats = run(root)
    assert (perf.sequence_id, perf.split) == ("gBR_sBM_c01_d04_mBR0_ch02", "test")
    assert stats == {"aistpp_ignored": 3, "aistpp_unsplit": 6}
    assert (perf.audio_path, perf.fps, perf.width, perf.height) == ("", 60.0, 1920, 1080)
    assert perf.keypoints.shape == (720, 18, 2)  # 12 s at 60 fps


def test_real_files_in_every_view(tmp_path):
    """All 10 real sequences listed (nothing ignored): every view loads 720 frames of
    OpenPose-18 inside the 1920x1080 frame, nearly every joint seen; the dancer stands (neck
    above hips above ankles) in at least 85% of the frames of the seven sequences AIST++ keeps,
    and is down in most of c01's frames of ch10, which it ignores. c05 of ch01 is dropped."""
    lists = write_lists(tmp_path / "lists", {"train": list(REAL), "test": []})
    for view in ("c01", "c05"):
        perfs, stats = run(real_aistpp(), view=view, splits_dir=str(lists))
        dropped = {"aistpp_bad_view": 1} if view == "c05" else {}
        assert stats == dropped
        assert len(perfs) == 10 - len(dropped)
        for perf, name in zip(perfs, REAL[len(dropped):], strict=True):
            assert perf.sequence_id == name.replace("cAll", view)
            assert perf.keypoints.shape == (720, 18, 2)
            assert (perf.fps, perf.width, perf.height, perf.audio_path) == (60.0, 1920, 1080, "")
            seen = perf.confidence > 0
            assert seen.mean() > 0.97
            assert ((perf.keypoints[seen] >= 0) & (perf.keypoints[seen] < [1920, 1080])).all()
            hips = perf.keypoints[:, [R_HIP, L_HIP], 1].mean(1)
            ankles = perf.keypoints[:, [R_ANKLE, L_ANKLE], 1].mean(1)
            upright = np.mean((perf.keypoints[:, NECK, 1] < hips) & (hips < ankles))
            if name not in REAL_IGNORED:
                assert upright >= 0.85, (perf.sequence_id, upright)
            elif name.endswith("ch10") and view == "c01":
                assert upright < 0.5


# ---------------------------------------------------------------- pickles


class _Exploit:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"keypoints2d": _Exploit()}))
    with pytest.raises(InputError, match=r"evil\.pkl: refusing to load (posix|nt)\.system"):
        aistpp.load_pickle(path)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_unpickler_reads_numpy_dicts(tmp_path, protocol):
    data = {"keypoints3d": np.arange(6.0).reshape(2, 3), "n": np.float32(2), "t": np.arange(3)}
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = aistpp.load_pickle(tmp_path / "ok.pkl")
    np.testing.assert_array_equal(loaded["keypoints3d"], data["keypoints3d"])
    assert loaded["n"] == 2
    assert loaded["t"].tolist() == [0, 1, 2]


# ---------------------------------------------------------------- the calibrated variant


def test_project_with_rotated_camera():
    # 90 degrees about y: camera = (z, y, -x) + t.
    matrix = [[1000.0, 0, 960], [0, 1000.0, 540], [0, 0, 1]]
    pixels = aistpp.project(np.array([[100.0, 20, 30], [600.0, 0, 0]]), matrix,
                            [0, np.pi / 2, 0], [0, 0, 500])
    np.testing.assert_allclose(pixels[0], [960 + 1000 * 30 / 400, 540 + 1000 * 20 / 400],
                               atol=1e-3)
    assert np.isnan(pixels[1]).all()  # behind the camera


def test_virtual_camera_format():
    camera = aistpp.virtual_camera(1920, 1080)
    assert set(camera) == {"name", "size", "matrix", "rotation", "translation", "distortions"}
    rotation = aistpp.rodrigues(camera["rotation"])
    np.testing.assert_allclose(rotation, np.diag([1.0, -1, -1]), atol=1e-12)
    np.testing.assert_allclose(-rotation.T @ camera["translation"], [0, 95, 600], atol=1e-9)


def test_calibrated_projection_by_hand(tmp_path):
    h = 176.0
    frames = np.stack([standing(h, 40, 20), standing(h, 40, 20), standing(h, 100, -80)])
    frames[0, 9] = np.nan  # left wrist lost in frame 0
    # keypoints3d_optim wins: the unoptimised keypoints3d here has no usable frame.
    pkl = {"keypoints3d": np.full_like(frames, np.nan), "keypoints3d_optim": frames}
    write_dataset(tmp_path, keypoints3d={TRAIN: pkl}, splits={"train": [TRAIN], "test": []})
    (perf,), _ = run(tmp_path, variant="calibrated", width=1920, height=1080)

    assert (perf.sequence_id, perf.fps, perf.width, perf.height) == (TRAIN, 60.0, 1920, 1080)
    s = 130 / (0.78 * h)  # standard span / this dancer's span
    # Stage centre = median mid-hip (40, 20); the camera is at (0, 95, 600) looking along -z.
    # Frame 2: left hip at x = 60 + s 0.06 h, y = s (0.52 - 0.04) h, z = -100: depth 700.
    np.testing.assert_allclose(
        perf.keypoints[2, L_HIP],
        [960 + F * (60 + s * 0.06 * h) / 700, 540 + F * (95 - s * 0.48 * h) / 700], atol=1e-3)
    # Frame 0 at the centre: neck 130 cm above the ankles, depth 600.
    np.testing.assert_allclose(perf.keypoints[0, NECK], [960, 540 + F * (95 - 130) / 600],
                               atol=1e-3)
    np.testing.assert_allclose(perf.keypoints[0, R_ANKLE], [960 - F * s * 0.06 * h / 600, 882],
                               atol=1e-3)
    assert perf.confidence[0, L_WRIST] == 0
    assert np.isnan(perf.keypoints[0, L_WRIST]).all()
    assert (perf.confidence[1:] == 1).all()
    assert (np.delete(perf.confidence[0], L_WRIST) == 1).all()


def test_calibrated_gives_every_dancer_one_size(tmp_path):
    tall = np.stack([standing(192, -70, 50)] * 3)
    short = np.stack([standing(148, 120, -30)] * 3)
    names = ["gBR_sBM_cAll_d04_mBR0_ch02", "gBR_sBM_cAll_d05_mBR0_ch02"]
    write_dataset(tmp_path, keypoints3d=dict(zip(names, (tall, short), strict=True)),
                  splits={"train": names, "test": []})
    perfs, _ = run(tmp_path, variant="calibrated", width=1920, height=1080)
    for perf in perfs:
        ankles = perf.keypoints[:, [R_ANKLE, L_ANKLE]].mean(1)
        np.testing.assert_allclose(ankles[:, 1] - perf.keypoints[:, NECK, 1], F * 130 / 600,
                                   rtol=1e-5)  # 468 px
        np.testing.assert_allclose(perf.keypoints[:, NECK, 0], 960, atol=1e-3)

