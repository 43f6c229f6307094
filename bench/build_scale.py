"""The segment build at scale: synthetic in-the-wild videos in, throughput and where the time goes.

  python bench/build_scale.py [--videos 2000] [--seconds 5] [--config configs/tiny_cpu.py] \
      [--workers 1,2] [--reader-videos 200] [--keep DIR]

Writes `--videos` synthetic wild videos (`write_corpus`: per-frame OpenPose JSON folders as
data_pipeline/sources/wild.py reads them, at 24, 25, 30 and 50 fps, with missing frame files,
occluded joints, bystanders, BODY_25 and OpenPose-18 layouts and shot changes; their music is 16
synthetic drum songs, linked into each folder), then prints, all measured in this one run:

  - the one-process build (data_pipeline.build, --workers 1) with its stages timed as it runs
    them: listing and reading the per-frame JSON, cleaning, resampling, music analysis (loading
    the audio and its features), serialising, writing ArrayRecord; segments, frames and videos
    per second, and each stage's seconds per video, per input frame and share of the build;
  - the same build with each other --workers W (processes; their start-up included), and its
    speed-up over one process;
  - the JSON reader (json, the standard library) against orjson on the same frame files.

Timings are wall clock on whatever the machine is doing beside; say what that was when you quote
them (docs/data_at_scale.md does).
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from data_pipeline import build, segments
from data_pipeline.sources import wild
from data_pipeline.sources.synthetic import synthesize_performance
from hotdance_jax.audio import load_audio, music_features
from hotdance_jax.cli import CONFIGS
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.io import save_wav

FPS = (24.0, 25.0, 30.0, 50.0)  # the videos' frame rates, in turn
SONGS = 16  # distinct synthetic songs (and dancers) the videos share
SAMPLE_RATE = 22050  # Hz, the songs' (configs/base.py's audio rate: no resampling on load)
BODY25_OF_18 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
MISSING_FRAMES = 0.02  # fraction of frame files not written (empty frames, gap-filled)
BYSTANDER_FRAMES = 0.1  # fraction of frames that also show a less confident second person
SHOT_CHANGE_VIDEOS = 0.5  # fraction of videos whose dancer jumps half a frame away midway


def write_corpus(root: Path, num_videos: int, seconds: float, seed: int = 0) -> Path:
    """Writes `num_videos` wild videos of `seconds` s under `root`/wild and their songs under
    `root`/songs; returns the wild source's root (`root`/wild). Same arguments, same files."""
    songs = _write_songs(root / "songs", seconds + 2.0)
    dances = {}
    for i in range(num_videos):
        song, fps = i % SONGS, FPS[(i + i // SONGS) % len(FPS)]
        if (song, fps) not in dances:
            dances[song, fps] = synthesize_performance(song, seconds + 2.0, fps=fps).keypoints
        _write_video(root / "wild" / f"video{i:05d}", dances[song, fps], fps, seconds,
                     songs[song], np.random.default_rng([seed, i]))
    return root / "wild"


def _write_songs(folder: Path, seconds: float) -> list[Path]:
    """SONGS synthetic drum songs of `seconds` s as wav files; their paths."""
    paths = []
    for song in range(SONGS):
        perf = synthesize_performance(song, seconds, sample_rate=SAMPLE_RATE)
        paths.append(folder / f"song{song:02d}.wav")
        save_wav(paths[-1], perf.audio, perf.sample_rate)
    return paths


def _write_video(folder: Path, dance: np.ndarray, fps: float, seconds: float, song: Path,
                 rng: np.random.Generator) -> None:
    """One video folder: `seconds` s of `dance` ((N, 18, 2) px at `fps`) from a random start,
    as per-frame OpenPose JSON with its meta.json and a link to its song."""
    start = int(rng.integers(0, int(fps)))
    keypoints = dance[start:start + int(seconds * fps)] + rng.uniform(-40, 40, 2)
    confidence = rng.uniform(0.5, 1.0, keypoints.shape[:2]).astype(np.float32)
    for _ in range(3):  # occlusions: a joint unseen for up to 12 frames
        t, joint = int(rng.integers(len(confidence))), int(rng.integers(18))
        confidence[t:t + int(rng.integers(1, 13)), joint] = 0
    if rng.random() < SHOT_CHANGE_VIDEOS:  # the camera cuts to the dancer 200 px aside
        cut = int(rng.integers(len(keypoints) // 3, 2 * len(keypoints) // 3))
        keypoints[cut:, :, 0] += 200 if keypoints[..., 0].mean() < 256 else -200
    folder.mkdir(parents=True)
    body25, first = bool(rng.random() < 0.25), int(rng.integers(2))
    for t in range(len(keypoints)):
        if rng.random() >= MISSING_FRAMES:
            people = [_person(keypoints[t], confidence[t], body25)]
            if rng.random() < BYSTANDER_FRAMES:
                people.insert(0, _person(keypoints[t] + 150, confidence[t] / 3, body25))
            frame = {"version": 1.3, "people": people}
            (folder / f"{folder.name}_{first + t:012d}_keypoints.json").write_text(
                json.dumps(frame))
    meta = {"fps": fps, "width": 512, "height": 512, "audio_offset": start / fps}
    (folder / "meta.json").write_text(json.dumps(meta))
    os.symlink(os.path.relpath(song, folder), folder / "audio.wav")


def _person(keypoints: np.ndarray, confidence: np.ndarray, body25: bool) -> dict:
    """An OpenPose person of one (18, 2) px pose and its (18,) confidence; unseen joints 0, 0, 0,
    as OpenPose writes them; BODY_25 adds a mid-hip and six foot points."""
    xyc = np.concatenate([keypoints, confidence[:, None]], axis=1)
    xyc[confidence <= 0] = 0
    if body25:
        full = np.zeros((25, 3), np.float32)
        full[BODY25_OF_18] = xyc
        full[8] = (*keypoints[[8, 11]].mean(0), 0.9)
        full[19:] = (*keypoints[10], 0.8)
        xyc = full
    return {"person_id": [-1], "pose_keypoints_2d": np.round(xyc, 3).ravel().tolist()}


# ---------------------------------------------------------------- measuring

STAGES = (  # (module, function, stage): what each wrapped call's time is booked to
    (wild, "_read_json_frames", "read JSON"),
    (wild, "_clean", "clean"),
    (segments, "resample", "resample"),
    (build, "frame_music", "music"),
    (segments, "serialize", "serialise"),
    (segments.SegmentWriter, "write", "write"),
)


def _timed(function, stage: str, times: collections.Counter):
    """`function` that adds its seconds to times[stage] (a generator's: drawn to the end)."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            result = function(*args, **kwargs)
            return list(result) if inspect.isgenerator(result) else result
        finally:
            times[stage] += time.perf_counter() - start
    return wrapper


def time_stages(root: Path, out: Path, config) -> tuple[dict, float, dict]:
    """Builds the wild videos under `root` into `out` with every stage of STAGES timed:
    ({stage: seconds}, total seconds, manifest). Nested stages (serialise inside write) are
    booked to both; `write` is reported less `serialise`."""
    times = collections.Counter()
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in STAGES]
    for (owner, name, stage), (_, _, original) in zip(STAGES, originals, strict=True):
        setattr(owner, name, _timed(original, stage, times))
    try:
        start = time.perf_counter()
        manifest = build.build("wild", root, out, config)
        total = time.perf_counter() - start
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    times["write"] -= times["serialise"]
    return dict(times), total, manifest


READERS = {  # name: (bytes of a path -> parsed JSON)
    "json": lambda path: json.loads(path.read_text()),
    "orjson": lambda path: orjson.loads(path.read_bytes()),
}


def time_readers(folders: list[Path], repeats: int = 2) -> dict[str, float]:
    """Best seconds over `repeats` to read every frame of `folders`: the bytes alone, then each
    reader of READERS parsing alone and inside the wild source's frame reading (which picks the
    person, checks and stacks the keypoints)."""
    files = [p for f in folders for p in sorted(f.glob("*_keypoints.json"))]
    steps = {"bytes only": lambda: [p.read_bytes() for p in files]}
    for name, read in READERS.items():
        steps[f"parse, {name}"] = lambda read=read: [read(p) for p in files]
        steps[f"wild frames, {name}"] = lambda read=read: _wild_frames(folders, read)
    times = {}
    for name, step in steps.items():
        times[name] = min(_seconds(step) for _ in range(repeats))
    return times | {"files": len(files)}


def _wild_frames(folders: list[Path], read) -> None:
    """The wild source's reading of every folder's frames with `read` as its JSON reader."""
    original = wild._read_json
    wild._read_json = read
    try:
        for folder in folders:
            wild._read_json_frames(folder)
    finally:
        wild._read_json = original


def _seconds(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def warm_up(song: Path, config) -> float:
    """Seconds of the first music analysis in this process (librosa compiles its numba code)."""
    start = time.perf_counter()
    audio = load_audio(song, config.audio.sample_rate, duration=3.0)
    music_features(audio, config.audio.sample_rate, config.pose.fps, int(3 * config.pose.fps))
    return time.perf_counter() - start


def print_build(times: dict, total: float, manifest: dict, frames: int, videos: int) -> None:
    """The build's throughput and each stage's seconds and share of the build."""
    count = sum(manifest["counts"]["segments"].values())
    hours = manifest["counts"]["hours"]
    print(f"build, 1 process: {count} segments, {hours:.2f} h kept of {videos} videos "
          f"({frames} frame files) in {total:.1f} s: {count / total:.1f} segments/s, "
          f"{frames / total:.0f} frames/s, {videos / total:.2f} videos/s")
    print(f"  {'stage':12s} {'seconds':>8s} {'ms/video':>9s} {'us/frame':>9s} {'share':>6s}")
    rows = [*times.items(), ("other", total - sum(times.values()))]
    for stage, seconds in rows:
        print(f"  {stage:12s} {seconds:8.2f} {1e3 * seconds / videos:9.2f} "
              f"{1e6 * seconds / frames:9.1f} {seconds / total:6.1%}")


def time_workers(root: Path, work: Path, config, workers: int) -> tuple[float, dict]:
    """(seconds, manifest) of the build of `root` with `workers` processes into a new folder."""
    start = time.perf_counter()
    manifest = build.build("wild", root, work / f"segments-{workers}", config, workers=workers)
    return time.perf_counter() - start, manifest


def print_workers(workers: int, seconds: float, manifest: dict, one: float, one_hash: str) -> None:
    """Throughput with `workers` processes and its speed-up over one (`one` seconds)."""
    count = sum(manifest["counts"]["segments"].values())
    same = "the same" if manifest["content_hash"] == one_hash else "OTHER"
    print(f"build, {workers} processes: {count} segments in {seconds:.1f} s: "
          f"{count / seconds:.1f} segments/s, {one / seconds:.2f}x one process's speed; "
          f"{same} content hash")


def print_readers(times: dict) -> None:
    """Each reader's seconds and microseconds per file; orjson's speed against json's."""
    files = times.pop("files")
    print(f"JSON readers on the same {files} frame files (best of 2, files in the page cache):")
    for name, seconds in times.items():
        ratio = f"{times[name.replace('orjson', 'json')] / seconds:5.2f}x json's speed"
        print(f"  {name:20s} {seconds:7.2f} s {1e6 * seconds / files:7.1f} us/file "
              f"{ratio if 'orjson' in name else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each video")
    parser.add_argument("--config", default=str(CONFIGS / "tiny_cpu.py"))
    parser.add_argument("--workers", default="1,2", help="process counts to build with")
    parser.add_argument("--reader-videos", type=int, default=200,
                        help="videos whose frames the JSON readers read")
    parser.add_argument("--keep", help="write the corpus and builds here and keep them")
    args = parser.parse_args()
    config = sibling_config(args.config, Path(args.config).stem)
    work = Path(args.keep or tempfile.mkdtemp(prefix="build-scale-"))
    try:
        start = time.perf_counter()
        root = write_corpus(work, args.videos, args.seconds)
        frames = sum(1 for _ in root.glob("*/*_keypoints.json"))
        print(f"corpus: {args.videos} videos of {args.seconds:g} s, {frames} frame files, "
              f"written in {time.perf_counter() - start:.1f} s under {work}")
        first = warm_up(work / "songs" / "song00.wav", config)
        print(f"start-up: the first music analysis takes {first:.1f} s (librosa compiles)")
        times, total, manifest = time_stages(root, work / "segments", config)
        print_build(times, total, manifest, frames, args.videos)
        for workers in [int(w) for w in args.workers.split(",") if int(w) > 1]:
            seconds, other = time_workers(root, work, config, workers)
            print_workers(workers, seconds, other, total, manifest["content_hash"])
        print_readers(time_readers(sorted(root.iterdir())[:args.reader_videos]))
    finally:
        if not args.keep:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
