"""Segments, the build command and the inspect command."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import build_scale
from data_pipeline import build, segments
from data_pipeline.sources.base import Performance
from hotdance_jax.audio import NUM_BASELINE_FEATURES, ONSET_ENVELOPE, load_audio, music_features
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.errors import InputError
from tests.conftest import REPO, shared_file, tiny_config
from tests.test_source_aistpp import TEST, TRAIN, real_aistpp, views_2d, write_dataset


def build_real_aistpp(out: Path, config, lists: Path | None = None) -> Path:
    """`out`, a segment build of ../shared's real AIST++ pickles (motion-only: no music there),
    split by `lists` (default: the official lists, which admit only ch02, to the test split)."""
    if lists:
        config.data.aistpp.splits_dir = str(lists)
    build.build("aistpp", real_aistpp(), out, config)
    return out


def _perf(num_frames, fps, confidence=None):
    t = np.arange(num_frames, dtype=np.float32)
    kp = np.stack([t, 2 * t], axis=-1)[:, None, :].repeat(18, axis=1)
    conf = np.ones((num_frames, 18), np.float32) if confidence is None else confidence
    return Performance("p", kp, conf, fps, 64, 64, "a.wav", 0.0, "train", "test")


def test_resample_is_linear_in_time_and_keeps_gaps():
    conf = np.ones((25, 18), np.float32)
    conf[10, 3] = 0
    perf = segments.resample(_perf(25, 25.0, conf), 30.0)
    assert perf.fps == 30.0
    assert perf.num_frames == 29  # 24 / 25 s of motion -> frames 0 .. 28 at 30 fps
    expected_x = np.arange(29) * 25 / 30  # source frame index at each new frame
    visible = perf.confidence[:, 0] > 0
    np.testing.assert_allclose(perf.keypoints[visible, 0, 0], expected_x[visible], rtol=1e-5)
    # Joint 3 is unseen at source frame 10 (t = 0.4 s): new frames bracketing it are invisible.
    t = np.arange(29) / 30
    near = np.abs(t - 0.4) < 1 / 25
    assert (perf.confidence[near, 3] == 0).all()
    assert np.isnan(perf.keypoints[near, 3]).all()
    assert (perf.confidence[~near, 3] > 0).all()


def test_cut_segments_windows_and_offsets():
    perf = dataclasses.replace(_perf(100, 30.0), audio_offset=2.0)
    music = np.arange(100, dtype=np.float32)[:, None].repeat(35, axis=1)
    records = list(segments.cut_segments(perf, music, segment_frames=32, stride=16))
    assert [int(r["start_frame"]) for r in records] == [0, 16, 32, 48, 64]
    for r in records:
        start = int(r["start_frame"])
        np.testing.assert_array_equal(r["music"][:, 0], np.arange(start, start + 32))
        np.testing.assert_array_equal(r["keypoints"], perf.keypoints[start:start + 32])
        assert r["audio_offset"] == pytest.approx(2.0 + start / 30)
    restored = segments.deserialize(segments.serialize(records[1]))
    assert restored.keys() == records[1].keys()
    np.testing.assert_array_equal(restored["keypoints"], records[1]["keypoints"])
    assert restored["sequence_id"] == "p"


def test_synthetic_build_manifest_store_and_no_op(tmp_path, capsys):
    config = tiny_config()
    out = tmp_path / "segments"
    manifest = build.build("synthetic", tmp_path / "raw", out, config)
    counts = manifest["counts"]
    assert counts["performances"] == {"train": 2, "val": 1, "test": 1}
    # 6 s at 30 fps = 180 frames; T = 64, stride 32 -> starts 0, 32, 64, 96 -> 4 per song.
    assert counts["segments"] == {"train": 8, "val": 4, "test": 4}
    for split, n in counts["segments"].items():
        store = segments.SegmentStore(out, split)
        assert len(store) == n
        record = store[n - 1]
        assert record["split"] == split
        assert record["source"] == "synthetic"
        assert record["keypoints"].shape == (64, 18, 2)
        assert record["music"].shape == (64, 35)  # one music row per pose frame
        assert record["shape_keypoints"].shape == (18, 2)
    assert len(manifest["content_hash"]) == 64
    shard = out / segments.shard_name("train", 0)
    before = shard.stat().st_mtime_ns
    again = build.build("synthetic", tmp_path / "raw", out, config)
    assert again["fingerprint"] == manifest["fingerprint"]
    assert shard.stat().st_mtime_ns == before
    assert "up to date" in capsys.readouterr().out
    # Other settings rebuild in place.
    rebuilt = build.build("synthetic", tmp_path / "raw", out, tiny_config(segment_stride=64))
    assert rebuilt["counts"]["segments"] == {"train": 4, "val": 2, "test": 2}
    assert len(segments.SegmentStore(out, "train")) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "segments"]


def test_failed_build_leaves_previous_build_untouched(tmp_path, monkeypatch):
    config = tiny_config()
    out = tmp_path / "segments"
    build.build("synthetic", tmp_path / "raw", out, config)
    manifest_before = (out / segments.MANIFEST).read_text()

    synthetic = build.SOURCES["synthetic"]

    def broken_source(root, config, stats):
        yield from synthetic(root, config, stats)
        raise InputError("raw/xyz.json: broken")

    monkeypatch.setitem(build.SOURCES, "synthetic", broken_source)
    with pytest.raises(InputError, match=r"xyz\.json"):
        build.build("synthetic", tmp_path / "raw", out, tiny_config(segment_stride=16))
    assert (out / segments.MANIFEST).read_text() == manifest_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "segments"]


def test_a_build_of_an_older_format_is_rebuilt_in_place(tmp_path):
    out = tmp_path / "segments"
    out.mkdir()
    (out / "segments-train.array_record").write_bytes(b"format 1")
    (out / segments.MANIFEST).write_text(json.dumps({"format_version": 1, "fingerprint": "x"}))
    manifest = build.build("synthetic", tmp_path / "raw", out, tiny_config())
    assert manifest["format_version"] == segments.FORMAT_VERSION == 2
    assert not (out / "segments-train.array_record").exists()
    assert len(segments.SegmentStore(out, "train")) == 8


def test_refuses_to_overwrite_a_folder_that_is_not_a_build(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("...")
    with pytest.raises(InputError, match="not a segment build"):
        build.build("synthetic", tmp_path / "raw", out, tiny_config())
    assert (out / "thesis.tex").exists()


def test_store_detects_truncated_or_missing_shards(tmp_path):
    out = tmp_path / "segments"
    build.build("synthetic", tmp_path / "raw", out, tiny_config())
    manifest = json.loads((out / segments.MANIFEST).read_text())
    manifest["counts"]["segments"]["train"] += 1
    (out / segments.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="manifest says 9"):
        segments.SegmentStore(out, "train")
    (out / segments.shard_name("val", 0)).unlink()
    with pytest.raises(InputError, match="missing segment shard"):
        segments.SegmentStore(out, "val")
    with pytest.raises(InputError, match="not a segment build"):
        segments.SegmentStore(tmp_path, "train")


def test_dwm_segments_are_aligned_with_their_music(tmp_path):
    """On real data: music rows = frames, and the stored audio offset is right within a frame."""
    root = tmp_path / "dwm"
    root.mkdir()
    folder = shared_file("data/dwm/DANCE_C_2")
    os.symlink(folder, root / folder.name)
    start_position = json.loads((folder / "config.json").read_text())["start_position"]
    assert start_position > 0
    config = sibling_config(str(REPO / "configs" / "base.py"), "base")
    config.data.segment_stride = 1024
    manifest = build.build("dwm", root, tmp_path / "out", config)
    split = manifest["sequences"][0]["split"]
    store = segments.SegmentStore(tmp_path / "out", split)
    assert len(store) == manifest["counts"]["segments"][split] > 1
    fps = config.pose.fps
    for i in (0, len(store) - 1):
        record = store[i]
        frames = record["keypoints"].shape[0]
        assert record["music"].shape[0] == frames == config.pose.segment_frames
        expected_offset = start_position / 25 + int(record["start_frame"]) / fps
        assert record["audio_offset"] == pytest.approx(expected_offset, abs=1e-6)
        # Recompute the onset envelope from the audio at the stored offset: it lines up with
        # the stored one at lag 0 (within one frame) of the cross-correlation.
        audio = load_audio(record["audio_path"], config.audio.sample_rate,
                           offset=float(record["audio_offset"]), duration=frames / fps + 1)
        fresh = music_features(audio, config.audio.sample_rate, fps, frames)[:, ONSET_ENVELOPE]
        stored = record["music"][:, ONSET_ENVELOPE]
        lags = range(-5, 6)
        score = [np.corrcoef(np.roll(stored, lag)[8:-8], fresh[8:-8])[0, 1] for lag in lags]
        assert abs(lags[int(np.argmax(score))]) <= 1
        assert max(score) > 0.9


@pytest.mark.slow  # starts a Python process
def test_build_and_inspect_commands(tmp_path):
    """The two commands end to end: build (twice: a no-op), inspect, and bad input."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    overrides = ["--config", str(REPO / "configs" / "tiny_cpu.py"),
                 "--config.data.synthetic.num_songs=3", "--config.data.synthetic.val_songs=1",
                 "--config.data.synthetic.test_songs=1", "--config.data.synthetic.seconds=5"]
    cmd = [sys.executable, "-m", "data_pipeline.build", "--source", "synthetic",
           "--root", str(tmp_path / "raw"), "--segments", str(tmp_path / "seg"), *overrides]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "up to date" in second.stdout
    inspect = subprocess.run(
        [sys.executable, "-m", "data_pipeline.inspect", str(tmp_path / "seg"), "--num", "3"],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert inspect.returncode == 0, inspect.stderr
    stats = json.loads(inspect.stdout[: inspect.stdout.rindex("}") + 1])
    assert stats["counts"]["segments"]["train"] == 3
    assert stats["joint_visibility"]["nose"] == 1.0
    sheet = tmp_path / "seg" / "contact_sheet_train.png"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([*cmd[:4], "nope", *cmd[5:]], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: unknown source 'nope'; expected one of ['aistpp', 'dwm', 'synthetic', 'wild']"]



@pytest.mark.slow
def test_all_dwm_performances_build(tmp_path, monkeypatch):
    """Acceptance on real data: all 33 performances build and every count adds up. Their music
    is decoded and trims them; its features (half the build's time, tested in test_audio.py on
    real songs) are zeros here."""
    monkeypatch.setattr(build, "music_features", lambda audio, sample_rate, fps, num_frames:
                        np.zeros((num_frames, NUM_BASELINE_FEATURES), np.float32))
    root = shared_file("data/dwm")
    config = sibling_config(str(REPO / "configs" / "base.py"), "base")
    manifest = build.build("dwm", root, tmp_path / "dwm", config)
    sequences = manifest["sequences"]
    assert len(sequences) == 33
    t, stride = config.pose.segment_frames, config.data.segment_stride
    for seq in sequences:
        with gzip.open(root / seq["sequence_id"] / "skeletons.json.gz", "rt") as f:
            raw_frames = len(json.load(f)["skeletons"])
        assert abs(seq["frames"] - (raw_frames - 1) * 30 / 25) <= 1  # 25 -> 30 fps
        assert seq["segments"] == (seq["frames"] - t) // stride + 1
    counts = manifest["counts"]
    for split in ("train", "val", "test"):
        in_split = [s for s in sequences if s["split"] == split]
        assert counts["performances"][split] == len(in_split) > 0
        assert counts["segments"][split] == sum(s["segments"] for s in in_split)
        assert len(segments.SegmentStore(tmp_path / "dwm", split)) == counts["segments"][split]
    assert counts["frames"] == sum(s["frames"] for s in sequences)
    assert manifest["stats"]["dwm_performances"] == 33
    assert manifest["stats"]["dwm_keypoints_out_of_frame"] == 0


def test_missing_music_is_built_motion_only(tmp_path):
    """Two AIST++ sequences, the test one's music gone: it is built whole with zero music, flagged
    and counted; the train one keeps its music (2 s: one 32-frame segment)."""
    write_dataset(tmp_path / "raw", keypoints2d={TRAIN: views_2d(150), TEST: views_2d(150)},
                  splits={"train": [TRAIN], "test": [TEST]})
    os.remove(tmp_path / "raw" / "wav" / "mPO1.wav")
    config = tiny_config()
    config.pose.segment_frames = 32
    manifest = build.build("aistpp", tmp_path / "raw", tmp_path / "out", config)
    assert manifest["counts"]["motion_only"] == {"train": 0, "val": 0, "test": 1}
    assert [(s["split"], s["music"], s["frames"], s["segments"]) for s in manifest["sequences"]
            ] == [("train", True, 60, 1), ("test", False, 75, 2)]
    with_music = segments.SegmentStore(tmp_path / "out", "train")[0]
    assert with_music["has_music"]
    assert np.abs(with_music["music"]).sum() > 0
    store = segments.SegmentStore(tmp_path / "out", "test")
    for record in store.__getitems__(range(len(store))):
        assert (record["has_music"], record["audio_path"]) == (False, "")
        np.testing.assert_array_equal(record["music"], np.zeros((32, 35), np.float32))


@pytest.mark.slow  # starts a Python process
def test_the_real_aistpp_folder_builds_motion_only(tmp_path):
    """The build command on ../shared's AIST++ (no music; one sequence in the official lists):
    it succeeds, and says and records that the performance is motion-only."""
    out = tmp_path / "aistpp"
    result = subprocess.run(
        [sys.executable, "-m", "data_pipeline.build", "--source", "aistpp", "--root",
         str(real_aistpp()), "--segments", str(out), "--config",
         str(REPO / "configs" / "tiny_cpu.py")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (f"{out}: 1 of 1 performances motion-only (no music; for the autoencoder, not the "
            "DiT): {'train': 0, 'val': 0, 'test': 1}") in result.stdout.splitlines()
    manifest = segments.read_manifest(out)
    (sequence,) = manifest["sequences"]
    # 720 frames at 60 fps -> 360 at 30; 64-frame segments every 32 frames.
    assert (sequence["split"], sequence["music"], sequence["frames"], sequence["segments"]) == (
        "test", False, 360, 10)
    assert manifest["counts"]["motion_only"] == manifest["counts"]["performances"]
    store = segments.SegmentStore(out, "test")
    for record in store.__getitems__(range(len(store))):
        assert not record["has_music"]
        assert not record["music"].any()


def test_bins_do_not_invalidate_segments_but_fps_does():
    config = tiny_config()
    digest = build.settings_digest("synthetic", Path("/x"), config)
    config.pose.bins = 17
    assert build.settings_digest("synthetic", Path("/x"), config) == digest
    config.pose.fps = 25.0
    assert build.settings_digest("synthetic", Path("/x"), config) != digest


# ---------------------------------------------------------------- at scale: parts, workers, hosts


def wild_corpus(tmp_path: Path, videos: int) -> tuple[Path, object]:
    """(root, config) of `videos` synthetic wild videos of 6 s (bench/build_scale.py) built in
    parts of 2 videos at tiny shapes: configs/tiny_cpu.py, as the command reads it."""
    root = build_scale.write_corpus(tmp_path / "corpus", videos, 6.0)
    config = sibling_config(str(REPO / "configs" / "base.py"), "tiny_cpu")
    config.data.videos_per_part = 2
    return root, config


def assert_same_build(a: Path, b: Path) -> None:
    """The two builds hold the same files, byte for byte, and manifests that differ only in
    their creation time."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name != segments.MANIFEST:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    first, second = segments.read_manifest(a), segments.read_manifest(b)
    first.pop("created"), second.pop("created")
    assert first == second


def test_two_shards_merged_equal_the_one_process_build(tmp_path):
    root, config = wild_corpus(tmp_path, 8)
    one = build.build("wild", root, tmp_path / "one", config)
    assert one["parts"] == 4
    assert one["counts"]["skipped"] == 0
    store = segments.SegmentStore(tmp_path / "one", "train")
    assert len(store) == one["counts"]["segments"]["train"] > 4
    train = [s for s in one["sequences"] if s["split"] == "train"]
    assert [r["sequence_id"] for r in store.__getitems__(range(len(store)))] == [
        s["sequence_id"] for s in train for _ in range(s["segments"])]
    out, work = tmp_path / "sharded", build.work_folder(tmp_path / "sharded")
    assert build.build("wild", root, out, config, num_shards=2, shard_index=1) is None
    assert not out.exists()
    assert sorted(p.name for p in work.glob("part-*.json")) == ["part-00001.json",
                                                                "part-00003.json"]
    with pytest.raises(InputError, match=r"sharded\.parts: 2 of 4 parts not built \(0, 2\)"):
        build.merge("wild", root, out, config)
    build.build("wild", root, out, config, num_shards=2, shard_index=0)
    build.merge("wild", root, out, config)
    assert_same_build(tmp_path / "one", out)
    assert not work.exists()
    assert build.build("wild", root, out, config)["fingerprint"] == one["fingerprint"]


@pytest.mark.slow  # starts worker processes
def test_two_workers_build_what_one_process_builds(tmp_path):
    root, config = wild_corpus(tmp_path, 8)
    build.build("wild", root, tmp_path / "one", config)
    build.build("wild", root, tmp_path / "two", config, workers=2)
    assert_same_build(tmp_path / "one", tmp_path / "two")


def test_bad_videos_are_skipped_counted_and_named(tmp_path, capsys):
    root, config = wild_corpus(tmp_path, 6)
    full = build.build("wild", root, tmp_path / "full", config)
    videos = sorted({s["sequence_id"].rsplit("_", 1)[0] for s in full["sequences"]})
    frame = sorted((root / videos[0]).glob("*_keypoints.json"))[5]
    frame.write_text('{"people": [{"pose_keypoints_2d": [1, 2')
    music = root / videos[-1] / "audio.wav"
    music.unlink()
    music.write_text("not a sound")
    manifest = build.build("wild", root, tmp_path / "seg", config)
    assert manifest["counts"]["skipped"] == 2
    first, second = manifest["skipped"]
    assert first.startswith(f"{frame}: malformed JSON")
    assert str(music) in second
    assert "\n" not in first + second
    kept = [s for s in full["sequences"] if s["sequence_id"].rsplit("_", 1)[0] not in (
        videos[0], videos[-1])]
    assert manifest["sequences"] == kept
    assert sum(manifest["counts"]["segments"].values()) == sum(s["segments"] for s in kept)
    assert manifest["stats"]["wild_videos"] == full["stats"]["wild_videos"] - 2
    build.summarise(tmp_path / "seg", manifest)
    assert "2 inputs skipped for bad input" in capsys.readouterr().out


def test_a_failed_part_is_named_in_one_line_and_the_build_resumes(tmp_path, monkeypatch):
    root, config = wild_corpus(tmp_path, 6)
    build.build("wild", root, tmp_path / "one", config)
    out = tmp_path / "seg"
    build_part = build.build_part

    def full_disk(part, digest, work):
        if part.index == 1:
            raise OSError(28, "No space left on device")
        return build_part(part, digest, work)

    monkeypatch.setattr(build, "build_part", full_disk)
    with pytest.raises(InputError) as error:
        build.build("wild", root, out, config)
    assert str(error.value).startswith(
        "1 of 3 parts failed (1); part 1 (video00002 .. video00003): OSError: [Errno 28] No "
        "space left on device; the finished parts stay in ")
    assert "\n" not in str(error.value)
    work = build.work_folder(out)
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("part-*.json")}
    assert sorted(kept) == ["part-00000.json", "part-00002.json"]
    assert not out.exists()
    monkeypatch.undo()
    build.build("wild", root, out, config)
    assert_same_build(tmp_path / "one", out)


def test_a_failed_shard_leaves_the_work_folder_it_may_share(tmp_path, monkeypatch):
    """Another host may be writing its parts there; a build alone removes it when empty."""
    root, config = wild_corpus(tmp_path, 4)
    out = tmp_path / "seg"

    def broken(part, digest, work):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(build, "build_part", broken)
    with pytest.raises(InputError, match=r"^1 of 2 parts failed \(0\); part 0 \(video00000 "):
        build.build("wild", root, out, config, num_shards=2, shard_index=0)
    assert build.work_folder(out).is_dir()
    with pytest.raises(InputError, match=r"^2 of 2 parts failed \(0, 1\)"):
        build.build("wild", root, out, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


@pytest.mark.slow  # starts a Python process
def test_a_killed_build_resumes_from_its_finished_parts(tmp_path, capsys):
    root, config = wild_corpus(tmp_path, 12)
    out, work = tmp_path / "seg", build.work_folder(tmp_path / "seg")
    command = [sys.executable, "-m", "data_pipeline.build", "--source", "wild", "--root",
               str(root), "--segments", str(out), "--config", str(REPO / "configs" / "tiny_cpu.py"),
               "--config.data.videos_per_part=2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = subprocess.run([*command, "--workers", "0"], capture_output=True, text=True, env=env)
    assert (bad.returncode, bad.stderr.strip().count("\n")) == (1, 0)
    assert "--workers 0" in bad.stderr
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (work / "part-00000.json").exists():
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.kill()
    process.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("part-*.json")}
    assert 1 <= len(kept) < 6
    assert not out.exists()
    build.build("wild", root, out, config)
    assert f"6 parts, {len(kept)} of this shard's 6 built before" in capsys.readouterr().out
    build.build("wild", root, tmp_path / "one", config)
    assert_same_build(tmp_path / "one", out)
