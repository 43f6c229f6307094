"""Dance with Melody (Tang et al. 2018): ballroom motion capture seen by one fixed virtual camera.

One performance per folder `root/DANCE_<genre>_<n>/` (genre C cha-cha, R rumba, T tango, W waltz):
  - `skeletons.json.gz` (or plain `skeletons.json`): `length` N, `center` (N, 3) root trajectory,
    `skeletons` (N, 23, 3) joints relative to the root; cm, y up, 25 fps, DWM_23 joint layout;
  - `config.json`: `start_position` (and `end_position`), frames at 25 fps into the song where the
    dance starts (and ends), so frame 0 is at audio time start_position / 25 s;
  - the song: `audio.mp3`, or when there is none `audio.ogg`, `audio.flac` or `audio.wav` (the
    first found; bench/pack_dwm.py writes a cut ogg, start_position counting from its start).
The skeleton array's length is trusted over end - start (they differ by a few frames).

To 2D, every performance goes through the same three steps, so body size, limb proportions and
heights are real and comparable between dancers:
  1. world = center + skeleton, then grounding: the root height drifts in the capture (feet float
     up to ~45 cm by the end of a song), so each frame is lowered onto the floor (see `ground`);
  2. an orthographic camera looking across the floor axis at FLOOR_AXIS_DEG from world x towards
     world z, image y = -world y (down), one scale for every dancer (`config.dwm.camera`):
     - "fixed": one camera for the whole dataset, so travel across the floor is kept and a dancer
       spans about 200 px of a 1920 px wide frame (see `project`);
     - "follow": the camera pans with the dancer (the hips' position along the floor axis,
       smoothed by a Gaussian whose +-2 sigma span `config.dwm.follow_seconds`) at
       `config.dwm.follow_px_per_cm` for a frame 1080 px high (4.6: the body about two thirds of
       the frame height, as a camera operator films one dancer; see `follow_track`);
  3. conversion to OpenPose-18 (nose and eyes invisible, ears = the two side-of-head points).
A keypoint that still falls outside the frame (not one of the 33 performances in ../shared at
the default frames) becomes invisible and is counted in `stats["dwm_keypoints_out_of_frame"]`.

Split by whole performances: the published 18 have a fixed split (`split_of`); any other DANCE_*
folder gets one from crc32 of its name.
"""

from __future__ import annotations

import collections
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d, uniform_filter1d

from data_pipeline.sources.base import Performance, hashed_split
from hotdance_jax.errors import InputError
from hotdance_jax.pose.skeletons import DWM_23, to_openpose18

FPS = 25.0
FOOT_JOINTS = tuple(
    DWM_23.index(f"{side}_{part}") for side in ("right", "left")
    for part in ("ankle", "heel", "toe")
)
HIP_JOINTS = (DWM_23.index("right_hip"), DWM_23.index("left_hip"))
CAMERAS = ("fixed", "follow")
GROUND_WINDOW = 51  # frames (+-1 s) of the floor's running minimum and of its smoothing
AUDIO_NAMES = ("audio.mp3", "audio.ogg", "audio.flac", "audio.wav")  # the song, first found

# The fixed camera, derived from the 33 performances in ../shared after grounding (union of all
# joints of all frames): the floor axis at 30 deg minimises the union's horizontal extent (1185 cm,
# against 1700 cm along world x; dancers face all directions evenly, so no axis is more "front"
# than another). On it the union spans [-611, 574] cm, in height [0, 201] cm; CAMERA_CENTRE_CM is
# that box's centre and lands on the frame's centre; PX_PER_CM is the largest 0.1 step leaving
# >= 70 px on both sides of a 1920 px wide frame. Other frame sizes scale it by
# min(width / 1920, height / 1080). (Derived from the first 18 alone, the axis was 50 deg and the
# scale 1.9: W_16, W_31 and W_34 then leave the frame, 21,719 keypoints.)
FLOOR_AXIS_DEG = 30.0  # image x = world x cos(a) + world z sin(a)
CAMERA_CENTRE_CM = (-18.5, 100.0)  # (floor axis, height) at the frame's centre
PX_PER_CM = 1.5  # at REFERENCE_FRAME
# The following camera (config.dwm.follow_px_per_cm at a frame height of 1080, scaled by height
# / 1080): 4.6 px/cm puts the median top of the body (150-160 cm) at two thirds of the height
# and the union's [0, 201] cm inside it with 75 px above and 80 below. Across the floor axis
# every joint of the 33 stays within 106 cm of the smoothed hips at follow_seconds up to 3 (488
# px at 4.6): a square frame of 1080 px holds them all at up to 4.6 px/cm.
REFERENCE_FRAME = (1920, 1080)  # width, height in pixels

# The published 18 (every song distinct): test is one cha-cha, one rumba and two waltzes, one from
# each of the two waltz sessions (W_7, W_10, W_12 start from one spot, the other waltzes from
# another); val is one waltz; the only tango and all the rest train.
PUBLISHED = (
    "DANCE_C_2", "DANCE_C_4", "DANCE_C_6", "DANCE_R_2", "DANCE_R_3", "DANCE_R_4", "DANCE_R_5",
    "DANCE_T_5", "DANCE_W_1", "DANCE_W_3", "DANCE_W_4", "DANCE_W_5", "DANCE_W_6", "DANCE_W_7",
    "DANCE_W_8", "DANCE_W_10", "DANCE_W_11", "DANCE_W_12",
)
_HELD_OUT = {
    "DANCE_C_6": "test", "DANCE_R_5": "test", "DANCE_W_5": "test", "DANCE_W_10": "test",
    "DANCE_W_8": "val",
}
TRAIN_PERCENT, VAL_PERCENT = 75, 5  # other folders: crc32(name) % 100 below 75 train, 80 val


def performances(
    root: Path, config: ml_collections.ConfigDict, stats: collections.Counter
) -> Iterator[Performance]:
    """Every DANCE_* folder under `root` as a Performance at 25 fps, in name order.

    `config` is the `data` section; `config.dwm.width` x `config.dwm.height` is the frame in pixels.
    Raises InputError (one line naming the file) for bad input: the root at once, each folder as
    it is reached.
    """
    camera = str(config.dwm.camera)
    follow_seconds, follow_scale = float(config.dwm.follow_seconds), float(
        config.dwm.follow_px_per_cm)
    if camera not in CAMERAS:
        raise InputError(f"config.data.dwm.camera: {camera!r}; expected one of {list(CAMERAS)}")
    if camera == "follow" and not follow_seconds > 0:
        raise InputError(f"config.data.dwm.follow_seconds: {follow_seconds:g}; expected > 0")
    if camera == "follow" and not follow_scale > 0:
        raise InputError(f"config.data.dwm.follow_px_per_cm: {follow_scale:g}; expected > 0")
    frame = (int(config.dwm.width), int(config.dwm.height))
    follow = (follow_seconds, follow_scale) if camera == "follow" else None
    return _iterate(_folders(Path(root)), frame, follow, stats)


def _iterate(
    folders: list[Path], frame: tuple[int, int], follow: tuple[float, float] | None,
    stats: collections.Counter,
) -> Iterator[Performance]:
    width, height = frame
    for folder in folders:
        audio_path, start = _audio(folder), _start_position(folder)
        world = ground(read_world(folder))
        split = split_of(folder.name)
        try:
            pixels = view(world, frame, follow)
        except InputError as e:
            raise InputError(f"{folder}: {e}") from None
        keypoints, confidence = to_openpose18(pixels, None, "dwm23")
        stats["dwm_keypoints_out_of_frame"] += _hide_outside(keypoints, confidence, width, height)
        yield Performance(
            sequence_id=folder.name,
            keypoints=keypoints,
            confidence=confidence,
            fps=FPS,
            width=width,
            height=height,
            audio_path=str(audio_path),
            audio_offset=start / FPS,
            split=split,
            source="dwm",
        )
        stats["dwm_performances"] += 1


def split_of(name: str) -> str:
    """The split of performance folder `name`: fixed for the published 18, else from crc32."""
    if name in PUBLISHED:
        return _HELD_OUT.get(name, "train")
    return hashed_split(name, TRAIN_PERCENT, VAL_PERCENT)


# ---------------------------------------------------------------- geometry


def ground(world: np.ndarray) -> np.ndarray:
    """(N, 23, 3) cm with the root height's drift removed: a supporting foot rests on y = 0.

    The floor under frame t is a lower envelope of the lowest foot joint (ankles, heels, toes):
    its running minimum over GROUND_WINDOW frames, averaged over GROUND_WINDOW frames. Each
    minimum's window contains t, so no foot ever sinks below y = 0; rises, hops and dips shorter
    than about a second stay. Frames without a finite foot take the floor interpolated in time.
    """
    lowest = np.fmin.reduce(world[:, FOOT_JOINTS, 1], axis=1)
    lowest = _fill_missing(lowest)
    floor = uniform_filter1d(
        minimum_filter1d(lowest, GROUND_WINDOW, mode="nearest"), GROUND_WINDOW, mode="nearest"
    )
    grounded = world.copy()
    grounded[..., 1] -= floor[:, None]
    return grounded


def view(world: np.ndarray, frame: tuple[int, int], follow: tuple[float, float] | None
         ) -> np.ndarray:
    """(N, J, 3) grounded world cm -> (N, J, 2) pixels of a `frame` (width, height) seen across
    the floor axis: by the camera following the hips when `follow` (its smoothing in seconds,
    its px/cm at a frame 1080 px high) is given, else by the fixed camera."""
    if follow is None:
        return project(world, *frame)
    follow_seconds, px_per_cm = follow
    hips = follow_track(world, FLOOR_AXIS_DEG, follow_seconds)
    scale = px_per_cm * frame[1] / REFERENCE_FRAME[1]
    return project(world, *frame, centre=hips[:, None], scale=scale)


def follow_track(world: np.ndarray, floor_axis_deg: float, follow_seconds: float) -> np.ndarray:
    """(N,) cm along the floor axis that the following camera centres in frame t: the hips'
    midpoint (interpolated over frames that lack it), smoothed by a Gaussian whose +-2 sigma
    span `follow_seconds`."""
    hips = _across(world[:, list(HIP_JOINTS)], floor_axis_deg).mean(axis=1)
    if not np.isfinite(hips).any():
        raise InputError("no frame shows both hips: no dancer for the camera to follow")
    hips = _fill_missing(hips)
    return gaussian_filter1d(hips, follow_seconds * FPS / 4, mode="nearest")


def _fill_missing(values: np.ndarray) -> np.ndarray:
    """(N,) values with each non-finite one linearly interpolated in time from the finite ones
    (held at the ends); at least one must be finite."""
    t, seen = np.arange(len(values)), np.isfinite(values)
    return np.interp(t, t[seen], values[seen])


def project(world: np.ndarray, width: int, height: int, floor_axis_deg: float = FLOOR_AXIS_DEG,
            centre: float | np.ndarray | None = None, scale: float | None = None) -> np.ndarray:
    """(..., 3) world cm -> (..., 2) pixels (x right, y down) of the camera looking across the
    floor axis at `floor_axis_deg` from world x towards world z: the dataset's fixed camera by
    default. `centre` (cm along the axis, broadcast against the joints) lands on the frame's
    centre instead of CAMERA_CENTRE_CM; `scale` (px/cm) replaces the fixed camera's. Heights are
    centred at CAMERA_CENTRE_CM[1] in every case."""
    across = _across(world, floor_axis_deg)
    if centre is None:
        centre = CAMERA_CENTRE_CM[0]
    if scale is None:
        scale = PX_PER_CM * min(width / REFERENCE_FRAME[0], height / REFERENCE_FRAME[1])
    x = width / 2 + scale * (across - centre)
    y = height / 2 - scale * (world[..., 1] - CAMERA_CENTRE_CM[1])
    return np.stack([x, y], axis=-1)


def _across(world: np.ndarray, floor_axis_deg: float) -> np.ndarray:
    """(...) cm along the floor axis at `floor_axis_deg` from world x towards world z."""
    angle = np.deg2rad(floor_axis_deg)
    return world[..., 0] * np.cos(angle) + world[..., 2] * np.sin(angle)


def _hide_outside(keypoints: np.ndarray, confidence: np.ndarray, width: int, height: int) -> int:
    """Makes visible keypoints outside the frame invisible, in place; returns how many."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    outside = (confidence > 0) & ~((x >= 0) & (x < width) & (y >= 0) & (y < height))
    keypoints[outside] = np.nan
    confidence[outside] = 0.0
    return int(outside.sum())


# ---------------------------------------------------------------- files


def _folders(root: Path) -> list[Path]:
    """The DANCE_* folders under `root`, sorted by name."""
    if not root.is_dir():
        raise InputError(f"{root}: Dance with Melody root is not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("DANCE_"))
    if not folders:
        raise InputError(f"{root}: no DANCE_* performance folders")
    return folders


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: missing")
    return path


def _audio(folder: Path) -> Path:
    """The song of `folder`: the first of AUDIO_NAMES that is a file."""
    for name in AUDIO_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{folder}: missing the song ({', '.join(AUDIO_NAMES[:-1])} or "
                     f"{AUDIO_NAMES[-1]})")


def _read_json(path: Path) -> Any:
    """The JSON document in `path` (gzip-compressed when it ends in .gz)."""
    opener = gzip.open if _existing(path).suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            return json.load(f)
    except (OSError, EOFError, ValueError) as e:
        raise InputError(f"{path}: unreadable ({e})") from e


def _start_position(folder: Path) -> float:
    """`start_position` of `folder/config.json`: frames at 25 fps into the song, >= 0."""
    path = folder / "config.json"
    config = _read_json(path)
    start = config.get("start_position") if isinstance(config, dict) else None
    if isinstance(start, bool) or not isinstance(start, int | float) or not start >= 0:
        raise InputError(f"{path}: needs a start_position >= 0 (frames), got {start!r}")
    return float(start)


def skeletons_file(folder: Path) -> Path:
    """`folder`'s skeletons.json.gz, or its plain skeletons.json when there is no .gz."""
    path = folder / "skeletons.json.gz"
    return path if path.exists() else folder / "skeletons.json"


def read_world(folder: Path) -> np.ndarray:
    """(N, 23, 3) float64 cm, y up: center + skeletons of `folder`'s skeletons.json(.gz)."""
    path = skeletons_file(folder)
    data = _read_json(path)
    if not isinstance(data, dict) or not {"length", "center", "skeletons"} <= data.keys():
        raise InputError(f"{path}: expected an object with length, center and skeletons")
    center, skeletons = _array(data, "center", path), _array(data, "skeletons", path)
    if skeletons.ndim != 3 or skeletons.shape[1:] != (DWM_23.num_joints, 3) or not len(skeletons):
        raise InputError(f"{path}: skeletons must be (N, 23, 3), got {skeletons.shape}")
    if center.shape != (len(skeletons), 3):
        raise InputError(f"{path}: center must be ({len(skeletons)}, 3), got {center.shape}")
    if data["length"] != len(skeletons):
        raise InputError(f"{path}: length {data['length']!r} but {len(skeletons)} skeleton frames")
    world = center[:, None, :] + skeletons
    if not np.isfinite(world).any():
        raise InputError(f"{path}: every coordinate is NaN")
    if not np.isfinite(world[:, FOOT_JOINTS, 1]).any():
        raise InputError(f"{path}: no finite foot joint to find the floor with")
    return world


def _array(data: dict, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: {key} is not a numeric array") from e
