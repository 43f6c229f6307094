"""Poses a user gives the sampler: the dancer's reference pose, keyframes, and a dance to continue.

A pose is the run's skeleton's keypoints in pixels of the output frame: 18 OpenPose keypoints (or
25 BODY_25 ones, converted), and for openpose18_hands 21 more per hand, in any of: an OpenPose JSON
file or person (`pose_keypoints_2d`, and `hand_left_keypoints_2d` / `hand_right_keypoints_2d`
for hands), a JSON list of [x, y] or [x, y, c], or an npz with `keypoints` and `confidence` (a
frame of it for a whole dance).

Keyframes (`python -m hotdance_jax.sample ... --keyframes FILE`) are a JSON list of
{"time": seconds from the start of the dance, "pose": a pose}, the pose given inline (an OpenPose
person or a list) or as a file name relative to the JSON file ("frame": which frame of an npz
dance, default 0). A dance to continue (`--continue DANCE.npz`) is an npz the sampler wrote.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np

from hotdance_jax.errors import InputError
from hotdance_jax.pose import OPENPOSE_18, Skeleton
from hotdance_jax.pose.openpose_json import openpose18_body, read_person


@dataclasses.dataclass(frozen=True)
class Keyframe:
    """A pose the dance passes through: `time` seconds from the start of the dance, keypoints
    (K, 2) pixels of the output frame, confidence (K,), K the skeleton's keypoints."""

    time: float
    keypoints: np.ndarray
    confidence: np.ndarray


# Seconds over which a keyframe's correction fades out on each side (motion warping, below);
# at most half the gap to the next keyframe, so each keyframe is hit exactly.
WARP_SECONDS = 1.0


def warp_to_keyframes(keypoints: np.ndarray, confidence: np.ndarray,
                      keyframes: list[Keyframe], fps: float, start: int = 0) -> np.ndarray:
    """Keypoints (T, K, 2) pixels moved to pass exactly through `keyframes` (motion warping,
    Witkin and Popovic 1995): at each keyframe's frame t >= `start`, each keypoint visible in
    both is displaced by (its keyframe place - its place), faded out on both sides by a raised
    cosine over WARP_SECONDS (at most half the gap to a neighbouring keyframe, at least a frame),
    whose slope is zero at both ends. The displacement fields of different keyframes do not
    overlap. Frames before `start` (an opening kept as it is) and invisible keypoints stay;
    returns a new array."""
    out = np.array(keypoints, np.float32, copy=True)
    frames = sorted((round(k.time * fps), k) for k in keyframes)
    times = [t for t, _ in frames]
    for i, (t, keyframe) in enumerate(frames):
        if not start <= t < len(out):
            continue
        gaps = [t - times[i - 1] if i else np.inf, times[i + 1] - t if i + 1 < len(times)
                else np.inf]
        reach = max(1, int(min(WARP_SECONDS * fps, *(g / 2 for g in gaps))))
        seen = (confidence[t] > 0) & (keyframe.confidence > 0)
        shift = np.where(seen[:, None], keyframe.keypoints - out[t], 0.0)
        lo, hi = max(t - reach + 1, start), min(t + reach, len(out))
        weight = 0.5 + 0.5 * np.cos(np.pi * (np.arange(lo, hi) - t) / reach)
        out[lo:hi] += weight[:, None, None] * np.where(confidence[lo:hi, :, None] > 0,
                                                       np.nan_to_num(shift), 0.0)
    return out


@dataclasses.dataclass(frozen=True)
class Opening:
    """A dance to continue: keypoints (P, K, 2) pixels (NaN where invisible), confidence (P, K),
    its frame size, and the music it was danced to (`music_path` from `music_offset` seconds)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    width: int
    height: int
    music_path: Path
    music_offset: float


def read_reference(path: Path, frame: int | None = None, skeleton: Skeleton = OPENPOSE_18
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One pose of `skeleton` from a file: (K, 2) pixels and (K,) confidence; `frame` picks one of
    an npz dance's frames (default 0)."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                keypoints = np.asarray(data["keypoints"], np.float32)
                confidence = (np.asarray(data["confidence"], np.float32) if "confidence" in data
                              else np.ones(keypoints.shape[:-1], np.float32))
            if keypoints.ndim == 3:  # a dance: one of its frames
                keypoints, confidence = keypoints[frame or 0], confidence[frame or 0]
            keypoints, confidence = keypoints.reshape(-1, 2), confidence.reshape(-1)
        else:
            keypoints, confidence = _pose_values(json.loads(path.read_text()), skeleton,
                                                 str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such pose file") from None
    except InputError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise InputError(f"{path}: not a readable pose ({type(e).__name__}: {e})") from None
    return checked_pose(keypoints, confidence, str(path), skeleton)


def _pose_values(data, skeleton: Skeleton, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(J, 2) keypoints and (J,) confidence of a parsed OpenPose JSON file or person (read as
    `skeleton`'s, InputError naming `where` if it cannot be), or a list of [x, y(, c)] (a flat
    list is read as [x, y, c] triples)."""
    if isinstance(data, dict):
        return read_person(data["people"][0] if "people" in data else data, skeleton, where)
    values = np.asarray(data, np.float32)
    if values.ndim == 1:
        values = values.reshape(-1, 3)
    confidence = values[:, 2] if values.shape[1] > 2 else np.ones(len(values), np.float32)
    return values[:, :2], confidence


def checked_pose(keypoints: np.ndarray, confidence: np.ndarray, where: str,
                 skeleton: Skeleton = OPENPOSE_18) -> tuple[np.ndarray, np.ndarray]:
    """(J, 2), (J,) -> `skeleton`'s (K, 2) pixels and (K,) confidence (0 where not finite); J is
    K, or 25 (BODY_25, converted) for openpose18. InputError naming `where` for another number
    of keypoints or fewer than 2 visible."""
    if not skeleton.has_hands:
        keypoints, confidence = openpose18_body(keypoints, confidence, where)
    elif len(keypoints) != skeleton.num_joints:
        raise InputError(f"{where}: {len(keypoints)} keypoints; expected {skeleton.num_joints} "
                         f"({skeleton.name})")
    confidence = np.where(np.isfinite(keypoints).all(-1), confidence, 0.0).astype(np.float32)
    if (confidence > 0).sum() < 2:
        raise InputError(f"{where}: fewer than 2 visible keypoints")
    return keypoints.astype(np.float32), confidence


def read_keyframes(path: Path, seconds: float, fps: float, skeleton: Skeleton = OPENPOSE_18
                   ) -> list[Keyframe]:
    """The keyframes of a JSON file (module docstring), sorted by time, for a dance of `seconds`
    at `fps` in `skeleton`'s layout; InputError naming the file and entry for a time outside the
    dance, a bad pose, or two different poses on one frame."""
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such keyframes file") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a JSON list of keyframes ({e})") from None
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: expected a non-empty JSON list of {{\"time\": s, \"pose\": "
                         "...}}")
    keyframes = sorted((_keyframe(entry, path, i, seconds, skeleton)
                        for i, entry in enumerate(entries)), key=lambda k: k.time)
    for a, b in itertools.pairwise(keyframes):
        same_frame = round(a.time * fps) == round(b.time * fps)
        if same_frame and not (np.array_equal(a.keypoints, b.keypoints, equal_nan=True)
                               and np.array_equal(a.confidence, b.confidence)):
            raise InputError(f"{path}: two different poses at {a.time:g} s and {b.time:g} s, "
                             f"frame {round(a.time * fps)} at {fps:g} fps")
    return keyframes


def _keyframe(entry, path: Path, index: int, seconds: float, skeleton: Skeleton) -> Keyframe:
    """Entry `index` of the keyframes file `path`, checked to lie in [0, seconds)."""
    where = f"{path} keyframe {index}"
    try:
        time = float(entry["time"])
        pose = entry["pose"]
        if isinstance(pose, str):
            keypoints, confidence = read_reference(path.parent / pose, entry.get("frame"),
                                                   skeleton)
        else:
            keypoints, confidence = checked_pose(*_pose_values(pose, skeleton, where), where,
                                                 skeleton)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise InputError(f"{where}: expected {{\"time\": seconds, \"pose\": ...}} "
                         f"({type(e).__name__}: {e})") from None
    if not 0 <= time < seconds:
        raise InputError(f"{where}: time {time:g} s is outside the dance (0 to {seconds:g} s)")
    return Keyframe(time, keypoints, confidence)


def read_opening(path: Path, fps: float, skeleton: Skeleton = OPENPOSE_18) -> Opening:
    """The dance of the npz `path` to continue; InputError unless it is a dance of `skeleton` at
    `fps` (the run's)."""
    try:
        with np.load(path) as data:
            fields = {k: data[k] for k in ("keypoints", "confidence", "fps", "width", "height",
                                           "skeleton", "music_path", "music_offset")}
    except FileNotFoundError:
        raise InputError(f"{path}: no such dance file") from None
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path}: not a dance npz of python -m hotdance_jax.sample "
                         f"({type(e).__name__}: {e})") from None
    if str(fields["skeleton"]) != skeleton.name:
        raise InputError(f"{path}: skeleton {fields['skeleton']}; this run dances "
                         f"{skeleton.name}")
    if abs(float(fields["fps"]) - fps) > 1e-6:
        raise InputError(f"{path}: {float(fields['fps']):g} fps; the run is at {fps:g}")
    keypoints = np.asarray(fields["keypoints"], np.float32)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (skeleton.num_joints, 2):
        raise InputError(f"{path}: keypoints {keypoints.shape}; expected (frames, "
                         f"{skeleton.num_joints}, 2)")
    return Opening(keypoints, np.asarray(fields["confidence"], np.float32),
                   int(fields["width"]), int(fields["height"]), Path(str(fields["music_path"])),
                   float(fields["music_offset"]))
