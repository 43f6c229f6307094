"""Dance with Melody (Tang et al. 2018): ballroom motion capture seen by one fixed virtual camera.

One performance per folder `root/DANCE_<genre>_<n>/` (genre C cha-cha, R rumba, T tango, W waltz):
  - `skeletons.json.gz` (or plain `skeletons.json`): `length` N, `center` (N, 3) root trajectory,
    `skeletons` (N, 23, 3) joints relative to the root; cm, y up, 25 fps, DWM_23 joint layout;
  - `config.json`: `start_position` (and `end_position`), frames at 25 fps into the song where the
    dance starts (and ends), so frame 0 is at audio time start_position / 25 s;
  - `audio.mp3`: the whole song.
The skeleton array's length is trusted over end - start (they differ by a few frames).

To 2D, every performance goes through the same three steps, so body size, limb proportions and
travel across the floor are real and comparable between dancers:
  1. world = center + skeleton, then grounding: the root height drifts in the capture (feet float
     up to ~45 cm by the end of a song), so each frame is lowered onto the floor (see `ground`);
  2. one orthographic front camera for the whole dataset (see `project`): image x runs along the
     floor axis at FLOOR_AXIS_DEG from world x towards world z, image y = -world y (down);
  3. conversion to OpenPose-18 (nose and eyes invisible, ears = the two side-of-head points).
A keypoint that still falls outside the frame (possible only for performances beyond the published
18, or in extra views) becomes invisible and is counted in `stats["dwm_keypoints_out_of_frame"]`.

Extra views (`config.dwm.extra_views`, degrees; none by default): each training performance is also
seen by the camera turned by each angle about the vertical axis, as `<name>@yaw<angle>`, centred on
that performance's own travel along the new floor axis. The capture is 3D, so these are new 2D
poses (other foreshortening, other overlaps), not image edits; held-out performances keep the one
camera, so validation and test figures stay comparable.

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
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from data_pipeline.sources.base import Performance, hashed_split
from hotdance_jax.errors import InputError
from hotdance_jax.pose.skeletons import DWM_23, to_openpose18

FPS = 25.0
FOOT_JOINTS = tuple(
    DWM_23.index(f"{side}_{part}") for side in ("right", "left")
    for part in ("ankle", "heel", "toe")
)
GROUND_WINDOW = 51  # frames (+-1 s) of the floor's running minimum and of its smoothing

# The camera, derived once from the 18 published performances after grounding (union of all
# joints of all frames): the floor axis at 50 deg minimises the union's horizontal extent (933 cm,
# against 1700 cm along world x and 1519 cm along z; dancers face all directions evenly, so no
# axis is more "front" than another). On it the union spans [-497, 436] cm, in height [0, 201] cm;
# CAMERA_CENTRE_CM is that box's centre (rounded) and lands on the frame's centre; PX_PER_CM is the
# largest 0.1 step leaving >= 70 px on both sides of a 1920 px wide frame (the box is then
# 1773 x 382 px). Other frame sizes scale it by min(width / 1920, height / 1080).
FLOOR_AXIS_DEG = 50.0  # image x = world x cos(a) + world z sin(a)
CAMERA_CENTRE_CM = (-30.0, 100.0)  # (floor axis, height) at the frame's centre
PX_PER_CM = 1.9  # at REFERENCE_FRAME
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
    extra_views = tuple(float(a) for a in config.dwm.extra_views)
    for angle in extra_views:
        if not 0 < abs(angle) < 360:
            raise InputError(f"config.data.dwm.extra_views: {angle:g} degrees; expected a turn "
                             "strictly between 0 and 360 degrees (either sign)")
    return _iterate(_folders(Path(root)), int(config.dwm.width), int(config.dwm.height),
                    extra_views, stats)


def _iterate(
    folders: list[Path], width: int, height: int, extra_views: tuple[float, ...],
    stats: collections.Counter,
) -> Iterator[Performance]:
    for folder in folders:
        audio_path, start = _audio(folder), _start_position(folder)
        world = ground(read_world(folder))
        split = split_of(folder.name)
        views = {folder.name: project(world, width, height)}
        for angle in extra_views if split == "train" else ():
            views[f"{folder.name}@yaw{angle:g}"] = project(
                world, width, height, FLOOR_AXIS_DEG + angle, centred=True)
        for sequence_id, pixels in views.items():
            keypoints, confidence = to_openpose18(pixels, None, "dwm23")
            stats["dwm_keypoints_out_of_frame"] += _hide_outside(
                keypoints, confidence, width, height)
            yield Performance(
                sequence_id=sequence_id,
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
        stats["dwm_extra_views"] += len(views) - 1


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
    t, seen = np.arange(len(lowest)), np.isfinite(lowest)
    lowest = np.interp(t, t[seen], lowest[seen])
    floor = uniform_filter1d(
        minimum_filter1d(lowest, GROUND_WINDOW, mode="nearest"), GROUND_WINDOW, mode="nearest"
    )
    grounded = world.copy()
    grounded[..., 1] -= floor[:, None]
    return grounded


def project(world: np.ndarray, width: int, height: int, floor_axis_deg: float = FLOOR_AXIS_DEG,
            centred: bool = False) -> np.ndarray:
    """(..., 3) world cm -> (..., 2) pixels (x right, y down) of the camera looking across the
    floor axis at `floor_axis_deg` from world x towards world z: the dataset's fixed camera by
    default; `centred` puts the middle of these joints' range along the axis at the frame's centre
    instead of CAMERA_CENTRE_CM (an extra view). Heights and the scale are the fixed camera's."""
    angle = np.deg2rad(floor_axis_deg)
    across = world[..., 0] * np.cos(angle) + world[..., 2] * np.sin(angle)
    centre = (np.nanmax(across) + np.nanmin(across)) / 2 if centred else CAMERA_CENTRE_CM[0]
    scale = PX_PER_CM * min(width / REFERENCE_FRAME[0], height / REFERENCE_FRAME[1])
    x = width / 2 + scale * (across - centre)
    y = height / 2 - scale * (world[..., 1] - CAMERA_CENTRE_CM[1])
    return np.stack([x, y], axis=-1)


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
    return _existing(folder / "audio.mp3")


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


def read_world(folder: Path) -> np.ndarray:
    """(N, 23, 3) float64 cm, y up: center + skeletons of `folder`'s skeletons.json(.gz)."""
    path = folder / "skeletons.json.gz"
    if not path.exists():
        path = folder / "skeletons.json"
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
