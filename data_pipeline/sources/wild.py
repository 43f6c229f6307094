"""In-the-wild dance videos already run through OpenPose or DWPose, cleaned as in the paper.

One video per entry under `root`, either
  - a folder `root/<video>/` of per-frame OpenPose JSON (`{"people": [{"pose_keypoints_2d":
    [x0, y0, c0, x1, ...]}, ...]}`, 18 OpenPose-18, 25 BODY_25 or 133 COCO-WholeBody (DWPose's
    JSON) keypoints, the same number in every frame), ordered by the number that ends each file's
    stem (before an optional `_keypoints`); the lowest number is frame 0 and a number missing from
    the sequence is an empty frame. `meta.json` in the folder holds `fps`, `width`, `height` and
    optionally `audio_offset` (seconds, default 0); the music is the first of `audio.*` or
    `<video>.{wav,mp3,flac,ogg,m4a}` in the folder;
  - or `root/<video>.npz` with `keypoints` (N, K, 2) pixels, `confidence` (N, K), K in
    {18, 25, 133}, `fps`, `width`, `height` (optionally `audio_offset`), music in
    `root/<video>.<ext>`.
A joint with confidence <= 0 or non-finite coordinates is missing (OpenPose writes (0, 0, 0)).
Per JSON frame the person with the highest mean confidence over their visible body joints (those
of `pose_keypoints_2d`) is kept.

The skeleton is config.skeleton (config.pose.skeleton, set by the build; default "openpose18"):
  - "openpose18": the OpenPose-18 body (BODY_25 and COCO-WholeBody converted; hands ignored);
  - "openpose18_hands": the body, then the left and the right hand (21 keypoints each, OpenPose's
    order). A JSON person's hands are its `hand_left_keypoints_2d` and `hand_right_keypoints_2d`
    (21 triples each; a list that is absent, as OpenPose run without hands writes, is a hand unseen
    in that frame); a COCO-WholeBody pose's are its keypoints 91-111 and 112-132 (any hand lists
    beside it are not read); an 18- or 25-keypoint npz has no hands (unseen throughout).

Cleaning, every step counted in `stats` under a `wild_*` key:
  1. videos with fps outside [min_fps, max_fps] are dropped (wild_dropped_fps);
  2. a missing joint is filled by linear interpolation when its gap is at most max_gap_frames long
     and visible at both ends; the filled confidence is the smaller of the two ends'
     (wild_joints_interpolated counts filled body joint-frames, wild_hand_joints_interpolated
     hand joint-frames); a hand joint missing longer stays missing (NaN, confidence 0);
  3. a video whose visible fraction of body joint-frames is below min_visible_fraction is dropped
     (wild_dropped_mostly_missing); a frame with fewer than min_visible_fraction of its 18 body
     joints visible (or none) is a break (wild_sparse_frames);
  4. a shot change is cut between two frames whose mean displacement over the body joints visible
     in both (a cut when none is) exceeds shot_change_threshold body heights (wild_shot_cuts); the
     body height is the median over non-break frames of the visible joints' vertical extent;
  5. the runs between breaks and cuts shorter than min_frames are dropped (wild_runs_too_short);
     each kept run (wild_runs_kept, wild_frames_kept) is a Performance `<video>_<i>`, i counting
     kept runs from 0, whose audio_offset is the video's plus the run's start / fps.
Steps 3 to 5 read the body only: missing hands never break a run nor drop a video.

The split comes from `root/splits.json` (video name -> train/val/test; every video must be listed)
when present, else from crc32 of the video name: 90% train, 5% val, 5% test.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from data_pipeline.sources.base import SPLITS, Performance, hashed_split
from hotdance_jax.errors import InputError
from hotdance_jax.pose.openpose_json import BODY_KEY, HAND_KEYS, triples
from hotdance_jax.pose.skeletons import (
    BODY_25,
    OPENPOSE_18,
    WHOLEBODY_133_JOINTS,
    Skeleton,
    pipeline_skeleton,
    to_openpose18,
    wholebody_to_openpose18_hands,
    with_hands,
)

AUDIO_EXTENSIONS = ("wav", "mp3", "flac", "ogg", "m4a")
TRAIN_PERCENT, VAL_PERCENT = 90, 5  # crc32(name) % 100 below 90: train, below 95: val, else test
DEFAULT_MIN_FRAMES = 256  # config.min_frames, set by the caller to the segment length T
_FRAME_NUMBER = re.compile(r"(\d+)(?:_keypoints)?$")
_MIN_BODY_HEIGHT = 1.0  # pixels: floor of the shot-change scale (a collapsed pose)
# The layouts a video's poses may come in, by joint count: OpenPose-18, BODY_25, COCO-WholeBody.
_JOINT_COUNTS = (OPENPOSE_18.num_joints, BODY_25.num_joints, WHOLEBODY_133_JOINTS)
_EXPECTED_JOINTS = "expected 18, 25 or 133"
_BODY_JOINTS = OPENPOSE_18.num_joints  # the body of every pipeline skeleton: its first joints


@dataclasses.dataclass(frozen=True)
class _Video:
    """One video's header: `path` is its folder or npz file; fps in Hz, size in pixels."""

    name: str
    path: Path
    fps: float
    width: int
    height: int
    audio_path: Path
    audio_offset: float


def performances(
    root: Path, config: ml_collections.ConfigDict, stats: collections.Counter
) -> Iterator[Performance]:
    """Cleaned runs of the videos under `root`, in video-name order.

    `config` is the `data` section: `config.wild` holds the cleaning thresholds,
    `config.get("min_frames", 256)` the shortest run kept, in frames (the caller's segment
    length), and `config.get("skeleton", "openpose18")` the layout read (with hands or not;
    "openpose18_hands": keypoints (N, 60, 2)). Raises InputError (one line naming the file) for
    bad input; the root is checked before the first performance is asked for, each video as it
    is reached.
    """
    read = reader(root, config)
    return itertools.chain.from_iterable(read(entry, stats) for entry in entries(Path(root)))


def reader(
    root: Path, config: ml_collections.ConfigDict
) -> Callable[[Path, collections.Counter], Iterator[Performance]]:
    """A function from one video of `entries(root)` (and the stats to count in) to its cleaned
    runs, as `performances` gives them; reads root/splits.json once, here. What the build runs
    on each part of a large corpus."""
    splits = _read_splits(Path(root))
    return lambda entry, stats: _iterate([entry], splits, config, stats)


def _iterate(
    videos: list[Path],
    splits: dict[str, str] | None,
    config: ml_collections.ConfigDict,
    stats: collections.Counter,
) -> Iterator[Performance]:
    """The generator behind `performances`: one video at a time, in the order of `videos`."""
    wild, min_frames = config.wild, int(config.get("min_frames", DEFAULT_MIN_FRAMES))
    skeleton = pipeline_skeleton(config.get("skeleton", OPENPOSE_18.name))
    for entry in videos:
        stats["wild_videos"] += 1
        video = _open(entry)
        if not wild.min_fps <= video.fps <= wild.max_fps:
            stats["wild_dropped_fps"] += 1
            continue
        keypoints, confidence = _read_keypoints(video, skeleton)
        split = _split(video.name, splits, entry.parent)
        for i, (start, end) in enumerate(_clean(keypoints, confidence, wild, min_frames, stats)):
            yield Performance(
                sequence_id=f"{video.name}_{i}",
                keypoints=keypoints[start:end],
                confidence=confidence[start:end],
                fps=video.fps,
                width=video.width,
                height=video.height,
                audio_path=str(video.audio_path),
                audio_offset=video.audio_offset + start / video.fps,
                split=split,
                source="wild",
            )


# ---------------------------------------------------------------- videos and splits


def entries(root: Path) -> list[Path]:
    """The video folders and npz files under `root`, sorted by name; hidden entries skipped."""
    if not root.is_dir():
        raise InputError(f"{root}: wild data root is not a directory")
    videos = sorted(
        p for p in root.iterdir()
        if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".npz")
    )
    if not videos:
        raise InputError(f"{root}: no videos (expected <video>/ folders or <video>.npz files)")
    names = collections.Counter(p.stem if p.suffix == ".npz" else p.name for p in videos)
    twice = sorted(n for n, count in names.items() if count > 1)
    if twice:
        raise InputError(f"{root}: videos {twice} exist both as a folder and an npz")
    return videos


def _read_splits(root: Path) -> dict[str, str] | None:
    """`root/splits.json` as name -> split, or None when there is none."""
    path = root / "splits.json"
    if not path.exists():
        return None
    splits = _read_json(path)
    if not isinstance(splits, dict) or not all(s in SPLITS for s in splits.values()):
        raise InputError(f"{path}: must map video names to one of {list(SPLITS)}")
    return splits


def _split(name: str, splits: dict[str, str] | None, root: Path) -> str:
    """The video's split: from splits.json when given, else from crc32 of its name."""
    if splits is not None:
        if name not in splits:
            raise InputError(f"{root / 'splits.json'}: no split for video {name!r}")
        return splits[name]
    return hashed_split(name, TRAIN_PERCENT, VAL_PERCENT)


def _open(entry: Path) -> _Video:
    """The header of a video folder (its meta.json) or npz file, and its music."""
    suffixes = f"{{{','.join(AUDIO_EXTENSIONS)}}}"
    if entry.is_dir():
        meta_path = entry / "meta.json"
        if not meta_path.is_file():
            raise InputError(f"{meta_path}: missing (needs fps, width, height)")
        meta, name = _read_json(meta_path), entry.name
        if not isinstance(meta, dict):
            raise InputError(f"{meta_path}: must be a JSON object with fps, width, height")
        music = [*sorted(entry.glob("audio.*")), *_with_audio_suffixes(entry / name)]
        looked_for = f"audio.* or {name}.{suffixes} in the folder"
        return _video(name, entry, meta, meta_path, _find_music(entry, music, looked_for))
    with _load_npz(entry) as npz:
        meta = {k: npz[k] for k in ("fps", "width", "height", "audio_offset") if k in npz.files}
    music = _with_audio_suffixes(entry.with_suffix(""))
    looked_for = f"{entry.stem}.{suffixes} beside it"
    return _video(entry.stem, entry, meta, entry, _find_music(entry, music, looked_for))


def _with_audio_suffixes(stem: Path) -> list[Path]:
    return [stem.with_name(f"{stem.name}.{e}") for e in AUDIO_EXTENSIONS]


def _find_music(entry: Path, candidates: list[Path], looked_for: str) -> Path:
    """The first existing file of `candidates`, else an InputError naming `entry`."""
    music = next((p for p in candidates if p.is_file()), None)
    if music is None:
        raise InputError(f"{entry}: no music file ({looked_for})")
    return music


def _video(name: str, path: Path, meta: dict, file: Path, audio_path: Path) -> _Video:
    """Validates the header fields `meta` read from `file`."""
    for key in ("fps", "width", "height"):
        if key not in meta:
            raise InputError(f"{file}: missing {key!r}")
    return _Video(
        name=name,
        path=path,
        fps=_number(meta["fps"], "fps", file),
        width=int(_number(meta["width"], "width", file)),
        height=int(_number(meta["height"], "height", file)),
        audio_path=audio_path,
        audio_offset=_number(meta.get("audio_offset", 0.0), "audio_offset", file, positive=False),
    )


def _number(value: Any, key: str, file: Path, positive: bool = True) -> float:
    """`value` as a finite float (> 0 when `positive`), else an InputError naming `file`."""
    try:
        x = float(np.asarray(value, dtype=np.float64).item())
    except (TypeError, ValueError):
        raise InputError(f"{file}: {key} must be a number, got {value!r}") from None
    if not np.isfinite(x) or (positive and x <= 0):
        raise InputError(f"{file}: {key} must be a finite{' positive' if positive else ''} number")
    return x


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: malformed JSON ({e})") from None


def _load_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: not a readable npz ({e})") from None


# ---------------------------------------------------------------- keypoints


def _read_keypoints(video: _Video, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) float32 pixels (NaN where missing) and (N, K) confidence of a video in
    `skeleton`'s layout (K = 18, or 60 with hands)."""
    if video.path.is_dir():
        keypoints, confidence, hands = _read_json_frames(video.path, skeleton)
    else:
        (keypoints, confidence), hands = _read_npz_keypoints(video.path), None
    keypoints, confidence = _to_skeleton(keypoints, confidence, hands, skeleton)
    if not confidence[:, :_BODY_JOINTS].any():
        raise InputError(f"{video.path}: no visible keypoint in any frame")
    return keypoints, confidence


def _to_skeleton(
    keypoints: np.ndarray, confidence: np.ndarray, hands: np.ndarray | None, skeleton: Skeleton
) -> tuple[np.ndarray, np.ndarray]:
    """(N, J, 2) pixels and (N, J) confidence, J of _JOINT_COUNTS, and (N, 2 * 21, 3) triples of
    the two hands beside a pose of 18 or 25 joints (None: never seen) -> (N, K, 2) and (N, K) of
    `skeleton`, NaN and 0 where missing."""
    confidence = _clipped(confidence)
    if keypoints.shape[1] == WHOLEBODY_133_JOINTS:
        keypoints, confidence = wholebody_to_openpose18_hands(keypoints, confidence)
        return keypoints[:, :skeleton.num_joints], confidence[:, :skeleton.num_joints]
    if keypoints.shape[1] == OPENPOSE_18.num_joints:
        visible = (confidence > 0) & np.isfinite(keypoints).all(-1)
        keypoints = np.where(visible[..., None], keypoints, np.nan).astype(np.float32)
        confidence = np.where(visible, confidence, 0.0).astype(np.float32)
    else:
        keypoints, confidence = to_openpose18(keypoints, confidence, BODY_25.name)
    if not skeleton.has_hands:
        return keypoints, confidence
    if hands is None:
        hands = np.zeros((len(keypoints), 2 * skeleton.hand_joints, 3), np.float32)
    return with_hands(keypoints, confidence, hands[..., :2], _clipped(hands[..., 2]))


def _clipped(confidence: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1], 0 where it is NaN."""
    return np.clip(np.nan_to_num(confidence, nan=0.0), 0.0, 1.0)


def _read_npz_keypoints(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) keypoints and (N, K) confidence of an npz, K of _JOINT_COUNTS."""
    with _load_npz(path) as npz:
        missing = [k for k in ("keypoints", "confidence") if k not in npz.files]
        if missing:
            raise InputError(f"{path}: missing {missing}")
        keypoints, confidence = npz["keypoints"], npz["confidence"]
    if (
        keypoints.ndim != 3 or keypoints.shape[2] != 2
        or confidence.shape != keypoints.shape[:2] or len(keypoints) == 0
    ):
        raise InputError(
            f"{path}: keypoints {keypoints.shape} and confidence {confidence.shape} must be "
            "(N, K, 2) and (N, K) with N >= 1, K 18, 25 or 133"
        )
    if keypoints.shape[1] not in _JOINT_COUNTS:
        raise InputError(f"{path}: keypoints of {keypoints.shape[1]} joints; {_EXPECTED_JOINTS}")
    return keypoints.astype(np.float32), confidence.astype(np.float32)


def _read_json_frames(
    folder: Path, skeleton: Skeleton
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(N, J, 2) keypoints and (N, J) confidence of a folder of per-frame OpenPose JSON, and
    when `skeleton` has hands, (N, 2 * 21, 3) triples of the kept people's hands (0 unseen)."""
    files = sorted((_frame_number(p), p) for p in folder.glob("*.json") if p.name != "meta.json")
    if not files:
        raise InputError(f"{folder}: no OpenPose JSON frames")
    numbers = [n for n, _ in files]
    if len(set(numbers)) < len(numbers):
        raise InputError(f"{folder}: two JSON files share a frame number")
    people = {n - numbers[0]: (p, _best_person(p, skeleton)) for n, p in files}
    found = [(p, person) for p, person in people.values() if person is not None]
    if not found:
        raise InputError(f"{folder}: no person in any frame")
    num_joints = len(found[0][1][0])
    for p, (body, _) in found:
        if len(body) != num_joints:
            raise InputError(f"{p}: {len(body)} keypoints where earlier frames have {num_joints}")
    frames = numbers[-1] - numbers[0] + 1
    poses = np.zeros((frames, num_joints, 3), np.float32)
    hands = np.zeros((frames, 2 * skeleton.hand_joints, 3), np.float32)
    for t, (_, person) in people.items():
        if person is not None:
            poses[t], hands[t] = person
    return poses[..., :2], poses[..., 2], hands if skeleton.has_hands else None


def _frame_number(path: Path) -> int:
    match = _FRAME_NUMBER.search(path.stem)
    if match is None:
        raise InputError(f"{path}: no frame number at the end of the file name")
    return int(match.group(1))


def _best_person(path: Path, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray] | None:
    """(J, 3) body and (2 * 21, 3) hands' x, y, confidence (`_person`) of the frame's person with
    the highest mean visible confidence over their body."""
    data = _read_json(path)
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise InputError(f"{path}: no 'people' list")
    best, best_score = None, -1.0
    for person in people:
        body, hands = _person(person, path, skeleton)
        visible = body[:, 2] > 0
        score = float(body[visible, 2].mean()) if visible.any() else 0.0
        if score > best_score:
            best, best_score = (body, hands), score
    return best


def _person(person: Any, path: Path, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """(J, 3) x, y, confidence of one person's `pose_keypoints_2d` (J of _JOINT_COUNTS) and
    (2 * skeleton.hand_joints, 3) of their left then right hand: zeros where the skeleton has no
    hands, the list is absent or the pose is whole-body (which holds its own hands)."""
    body = triples(person, BODY_KEY, str(path))
    if len(body) not in _JOINT_COUNTS:
        raise InputError(f"{path}: {BODY_KEY} has {len(body)} keypoints; {_EXPECTED_JOINTS}")
    per_hand = skeleton.hand_joints
    hands = np.zeros((2 * per_hand, 3), np.float32)
    if skeleton.has_hands and len(body) != WHOLEBODY_133_JOINTS:
        for i, side in enumerate(("left", "right")):
            if person.get(HAND_KEYS[side]):
                hands[i * per_hand:(i + 1) * per_hand] = triples(
                    person, HAND_KEYS[side], str(path), per_hand)
    return body, hands


# ---------------------------------------------------------------- cleaning


def _clean(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    wild: ml_collections.ConfigDict,
    min_frames: int,
    stats: collections.Counter,
) -> list[tuple[int, int]]:
    """Fills gaps in place; returns the kept runs as [start, end) frame ranges (steps 2 to 5).

    (N, K, 2) `keypoints` and (N, K) `confidence` hold the 18 body joints, then any hands' joints:
    their gaps are filled alike, but only the body decides breaks, cuts and what is dropped.
    """
    body = slice(0, _BODY_JOINTS)
    stats["wild_joints_interpolated"] += _fill_gaps(
        keypoints[:, body], confidence[:, body], wild.max_gap_frames)
    if keypoints.shape[1] > _BODY_JOINTS:
        stats["wild_hand_joints_interpolated"] += _fill_gaps(
            keypoints[:, _BODY_JOINTS:], confidence[:, _BODY_JOINTS:], wild.max_gap_frames)
    keypoints, visible = keypoints[:, body], confidence[:, body] > 0
    if visible.mean() < wild.min_visible_fraction:
        stats["wild_dropped_mostly_missing"] += 1
        return []
    good = visible.any(axis=1) & (visible.mean(axis=1) >= wild.min_visible_fraction)
    stats["wild_sparse_frames"] += int((~good).sum())
    cut = _shot_changes(keypoints, visible, good, wild.shot_change_threshold)
    stats["wild_shot_cuts"] += int(cut.sum())
    runs = _runs(good, cut)
    kept = [(s, e) for s, e in runs if e - s >= min_frames]
    stats["wild_runs_too_short"] += len(runs) - len(kept)
    stats["wild_runs_kept"] += len(kept)
    stats["wild_frames_kept"] += sum(e - s for s, e in kept)
    return kept


def _fill_gaps(keypoints: np.ndarray, confidence: np.ndarray, max_gap: int) -> int:
    """Linearly interpolates, in place, each joint's gaps of <= max_gap frames with both ends
    visible in (N, J, 2) `keypoints` and (N, J) `confidence`; the filled confidence is the smaller
    end's. Returns the number of joint-frames filled."""
    n = len(confidence)
    visible = confidence > 0
    frame = np.arange(n)[:, None]
    prev = np.maximum.accumulate(np.where(visible, frame, -1), axis=0)
    after = np.minimum.accumulate(np.where(visible, frame, n)[::-1], axis=0)[::-1]
    fill = ~visible & (prev >= 0) & (after < n) & (after - prev - 1 <= max_gap)
    prev, after = np.clip(prev, 0, n - 1), np.clip(after, 0, n - 1)
    weight = ((frame - prev) / np.maximum(after - prev, 1))[..., None]
    xy_prev = np.take_along_axis(keypoints, prev[..., None], axis=0)
    xy_after = np.take_along_axis(keypoints, after[..., None], axis=0)
    keypoints[fill] = ((1 - weight) * xy_prev + weight * xy_after)[fill]
    ends = np.minimum(np.take_along_axis(confidence, prev, 0),
                      np.take_along_axis(confidence, after, 0))
    confidence[fill] = ends[fill]
    return int(fill.sum())


def _shot_changes(
    keypoints: np.ndarray, visible: np.ndarray, good: np.ndarray, threshold: float
) -> np.ndarray:
    """(N,) bool: True at frame t when good frames t-1 and t are a shot change apart.

    The jump is the mean displacement of the joints visible in both frames over the body height
    (pixels, median over good frames of the visible joints' y extent); no shared joint is a cut.
    """
    y = np.where(visible, keypoints[..., 1], np.nan)[good]
    extent = np.nanmax(y, axis=1) - np.nanmin(y, axis=1)
    body = max(float(np.median(extent)) if extent.size else 0.0, _MIN_BODY_HEIGHT)
    both = visible[1:] & visible[:-1]
    step = np.linalg.norm(np.nan_to_num(keypoints[1:] - keypoints[:-1]), axis=-1)
    shared = both.sum(axis=1)
    jump = np.where(shared > 0, (step * both).sum(axis=1) / np.maximum(shared, 1) / body, np.inf)
    cut = np.zeros(len(good), bool)
    cut[1:] = good[1:] & good[:-1] & (jump > threshold)
    return cut


def _runs(good: np.ndarray, cut: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) ranges of consecutive good frames, split before every cut frame."""
    starts = good & (np.r_[True, ~good[:-1]] | cut)
    ends = good & (np.r_[~good[1:], True] | np.r_[cut[1:], True])
    return list(zip(np.flatnonzero(starts).tolist(), (np.flatnonzero(ends) + 1).tolist(),
                    strict=True))
