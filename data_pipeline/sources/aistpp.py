"""AIST++ (Li et al. 2021): COCO-17 keypoints of 1408 street-dance sequences at 60 fps.

Layout under the root (as the AIST++ download unpacks it, plus the AIST Dance DB music):

  keypoints2d/<seq>.pkl   {'keypoints2d': (9 views, N, 17, 3) x, y, confidence in the camera's
                          1920x1080 frame, NaN where missing; 'det_scores'; 'timestamps'}
  keypoints3d/<seq>.pkl   {'keypoints3d': (N, 17, 3), 'keypoints3d_optim': (N, 17, 3)} world cm
  splits/                 crossmodal_{train,val,test}.txt and ignore_list.txt (sequence names)
  wav/<music>.wav         the music (also music/ or the root itself; .mp3 accepted)

Sequence names read g{genre}_s{BM|FM}_cAll_d{dancer}_m{music}_ch{NN}; the music id (e.g. mBR0)
names the song, which starts with the motion (audio_offset 0). A sequence whose song is not there
is a motion-only performance (audio_path ""), which the build keeps without music.

Variants (config.aistpp.variant):
  "view":       the detector's 2D keypoints of camera config.aistpp.view, in its 1920x1080 frame.
  "calibrated": AIST++2D, the 3D keypoints (keypoints3d_optim when present) with every dancer
                resized to one standard body and filmed by one fixed virtual camera (see
                `normalise_body` and `virtual_camera`), in a config.aistpp.width x height frame.

The split lists come from config.aistpp.get("splits_dir", "") when set, else the first of
root/splits, a sibling folder aistpp_splits and $HOTDANCE_SHARED/data/aistpp_splits that has them;
crossmodal_val.txt is optional (the shared copy has none).
"""

from __future__ import annotations

import collections
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import ml_collections
import numpy as np

from data_pipeline.sources.base import Performance
from hotdance_jax.errors import InputError
from hotdance_jax.pose.skeletons import to_openpose18

FPS = 60.0
VIEW_FRAME = (1920, 1080)  # width, height of every AIST camera
VIEWS = tuple(f"c{i:02d}" for i in range(1, 10))
# Views the AIST++ pipeline itself drops (processing/run_estimate_keypoints.py): not synced, and
# recorded at 640x480.
BAD_VIEWS = {"gBR_sBM_cAll_d04_mBR0_ch01": "c05", "gJB_sBM_cAll_d07_mJB3_ch05": "c07"}

# The "calibrated" variant's virtual camera and standard body (AIST++ world: cm, y up; the
# AIST++ calibration starts camera c01, the front, on the +z axis looking along -z).
STANDARD_SPAN_CM = 130.0  # shoulder-to-ankle span (torso + thigh + shin) of the standard body
CAMERA_CENTRE_CM = (0.0, 95.0, 600.0)  # 6 m in front of the stage centre, at hip height
CAMERA_RVEC = (np.pi, 0.0, 0.0)  # optical axis horizontal along -z, image x = world x
FOCAL_PER_HEIGHT = 2.0  # focal length in frame heights (vertical field of view 28 degrees)

_NAME = re.compile(r"g([A-Z]{2})_s(BM|FM)_c(All|0[1-9])_d(\d{2})_m([A-Z]{2}[0-5])_ch(\d{2})")
_SPLIT_FILES = {"train": "crossmodal_train.txt", "val": "crossmodal_val.txt",
                "test": "crossmodal_test.txt"}
# COCO-17 joints.
_SHOULDERS, _HIPS, _KNEES, _ANKLES = [5, 6], [11, 12], [13, 14], [15, 16]
# Globals an AIST++ pickle (a dict of numpy arrays) may name: numpy's array reconstruction only.
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core")
      for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


def performances(
    root: Path, config: ml_collections.ConfigDict, stats: collections.Counter
) -> Iterator[Performance]:
    """AIST++ performances under `root` in OpenPose-18 at 60 fps; `config` is config.data.

    Counts skipped sequences in `stats`: aistpp_ignored (ignore list), aistpp_unsplit (in no
    split list), aistpp_bad_view (the chosen view is broken for that sequence). A sequence
    whose music file is missing comes motion-only (audio_path "").
    """
    root = Path(root)
    cfg = config.aistpp
    if cfg.variant not in ("view", "calibrated"):
        raise InputError(f"config.data.aistpp.variant must be 'view' or 'calibrated', got "
                         f"{cfg.variant!r}")
    view = _view_index(cfg.view) if cfg.variant == "view" else -1
    splits, ignored = read_splits(_splits_dir(root, cfg), root)
    folder = root / ("keypoints2d" if cfg.variant == "view" else "keypoints3d")
    paths = sorted(folder.glob("*.pkl"))
    if not paths:
        raise InputError(f"aistpp: no .pkl files in {folder}")
    for path in paths:
        name = path.stem
        try:
            music = music_id(name)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        if name in ignored:
            stats["aistpp_ignored"] += 1
        elif name not in splits:
            stats["aistpp_unsplit"] += 1
        elif view >= 0 and BAD_VIEWS.get(name) == cfg.view:
            stats["aistpp_bad_view"] += 1
        elif view >= 0:
            yield _view_performance(path, view, cfg.view, splits[name], find_music(root, music))
        else:
            yield _calibrated_performance(
                path, cfg.width, cfg.height, splits[name], find_music(root, music)
            )


def _view_performance(
    path: Path, view: int, name: str, split: str, audio: Path | None
) -> Performance:
    """The performance seen by camera `view` (0..8) from a keypoints2d pkl."""
    keypoints, confidence = load_view(path, view)
    return _performance(path.stem.replace("cAll", name), keypoints, confidence, *VIEW_FRAME,
                        split, audio)


def _calibrated_performance(
    path: Path, width: int, height: int, split: str, audio: Path | None
) -> Performance:
    """The AIST++2D performance from a keypoints3d pkl."""
    camera = virtual_camera(width, height)
    world = normalise_body(load_keypoints3d(path), path)
    pixels = project(world, camera["matrix"], camera["rotation"], camera["translation"])
    keypoints, confidence = to_openpose18(pixels, None, "coco17")
    return _performance(path.stem, keypoints, confidence, width, height, split, audio)


def _performance(
    sequence_id: str, keypoints: np.ndarray, confidence: np.ndarray, width: int, height: int,
    split: str, audio: Path | None,
) -> Performance:
    """An AIST++ Performance at 60 fps whose music starts with frame 0 (no music: motion-only)."""
    return Performance(
        sequence_id=sequence_id, keypoints=keypoints, confidence=confidence, fps=FPS,
        width=int(width), height=int(height), audio_path=str(audio or ""), audio_offset=0.0,
        split=split, source="aistpp",
    )


# ---------------------------------------------------------------- names, lists, music


def music_id(sequence: str) -> str:
    """The music id of an AIST++ sequence or video name, e.g. gBR_sBM_cAll_d04_mBR0_ch01 -> mBR0."""
    match = _NAME.fullmatch(sequence)
    if match is None:
        raise InputError(f"aistpp: {sequence!r} is not an AIST++ sequence name "
                         "(g<genre>_s<BM|FM>_c<All|01..09>_d<NN>_m<genre><0-5>_ch<NN>)")
    return "m" + match.group(5)


def _view_index(view: str) -> int:
    """'c01'..'c09' -> 0..8."""
    if view not in VIEWS:
        raise InputError(f"config.data.aistpp.view must be one of c01..c09, got {view!r}")
    return VIEWS.index(view)


def _splits_dir(root: Path, cfg: ml_collections.ConfigDict) -> Path:
    """The configured splits_dir if set, else root/splits, the sibling aistpp_splits or the
    shared official lists, the first that has them."""
    configured = cfg.get("splits_dir", "")
    shared = os.environ.get("HOTDANCE_SHARED", "")
    if configured:
        candidates = [Path(configured)]
    else:
        candidates = [root / "splits", root.parent / "aistpp_splits",
                      *([Path(shared) / "data" / "aistpp_splits"] if shared else [])]
    for directory in candidates:
        if (directory / _SPLIT_FILES["train"]).is_file():
            return directory
    raise InputError(f"aistpp: no {_SPLIT_FILES['train']} in {' or '.join(map(str, candidates))}; "
                     "set config.data.aistpp.splits_dir or HOTDANCE_SHARED")


def read_splits(directory: Path, root: Path) -> tuple[dict[str, str], set[str]]:
    """(sequence -> split, ignored sequences) from the lists in `directory`.

    The ignore list is read from `directory`, else from `root` (where AIST++ ships it).
    """
    splits = {}
    for split, file in _SPLIT_FILES.items():
        if split != "val" or (directory / file).is_file():
            splits.update(dict.fromkeys(_read_list(directory / file), split))
    ignore = directory / "ignore_list.txt"
    return splits, set(_read_list(ignore if ignore.is_file() else root / "ignore_list.txt"))


def _read_list(path: Path) -> list[str]:
    """Non-empty stripped lines of a list file."""
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as e:
        raise InputError(f"aistpp: cannot read {path}: {e.strerror}") from None


def find_music(root: Path, music: str) -> Path | None:
    """root/{wav,music,.}/<music>.{wav,mp3}, the first that exists; None when none does."""
    for folder in (root / "wav", root / "music", root):
        for suffix in (".wav", ".mp3"):
            if (folder / f"{music}{suffix}").is_file():
                return folder / f"{music}{suffix}"
    return None


# ---------------------------------------------------------------- pickles


class SafeUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays only: any other global raises pickle.UnpicklingError."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: AIST++ pickles hold only numpy arrays"
            )
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def load_pickle(path: Path) -> dict:
    """The dict in an AIST++ pkl, read with SafeUnpickler; InputError naming the file if not."""
    try:
        with open(path, "rb") as f:
            data = SafeUnpickler(f).load()
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as e:
        raise InputError(f"aistpp: cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"aistpp: {path} holds a {type(data).__name__}, expected a dict")
    return data


def _array(data: dict, key: str, path: Path, shape: tuple[int | None, ...]) -> np.ndarray:
    """data[key] as float32, checked against `shape` (None = any size >= 1)."""
    if key not in data:
        raise InputError(f"aistpp: {path} has no {key!r} (keys: {sorted(data)})")
    array = data[key]
    fits = (
        isinstance(array, np.ndarray) and array.dtype.kind in "fiu" and array.ndim == len(shape)
        and all(n >= 1 and s in (None, n) for n, s in zip(array.shape, shape, strict=False))
    )
    if not fits:
        expected = ", ".join("N" if s is None else str(s) for s in shape)
        got = f"{array.shape} {array.dtype}" if isinstance(array, np.ndarray) else type(array)
        raise InputError(f"aistpp: {path} {key!r} is {got}, expected a ({expected}) float array")
    return array.astype(np.float32)


def load_view(path: Path, view: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose-18 (N, 18, 2) pixels and (N, 18) confidence of camera `view` (0..8) of a
    keypoints2d pkl; NaN or zero-confidence joints are invisible."""
    keypoints = _array(load_pickle(path), "keypoints2d", path, (len(VIEWS), None, 17, 3))[view]
    confidence = np.clip(np.nan_to_num(keypoints[..., 2]), 0.0, 1.0)
    return to_openpose18(keypoints[..., :2], confidence, "coco17")


def load_keypoints3d(path: Path) -> np.ndarray:
    """(N, 17, 3) COCO-17 world cm of a keypoints3d pkl: keypoints3d_optim if present."""
    data = load_pickle(path)
    key = "keypoints3d_optim" if "keypoints3d_optim" in data else "keypoints3d"
    return _array(data, key, path, (None, 17, 3))


# ---------------------------------------------------------------- the calibrated variant


def _length(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances between points along the last axis."""
    return np.linalg.norm(a - b, axis=-1)


def body_span(keypoints: np.ndarray) -> np.ndarray:
    """(N,) shoulder-to-ankle span in the input's unit: torso (mid-shoulders to mid-hips) + mean
    thigh + mean shin of (N, 17, 3) COCO-17 joints; pose-independent, NaN where a joint is."""
    k = keypoints
    torso = _length(k[:, _SHOULDERS].mean(1), k[:, _HIPS].mean(1))
    thigh = _length(k[:, _HIPS], k[:, _KNEES]).mean(1)
    shin = _length(k[:, _KNEES], k[:, _ANKLES]).mean(1)
    return torso + thigh + shin


def normalise_body(keypoints: np.ndarray, path: Path | str = "keypoints") -> np.ndarray:
    """(N, 17, 3) AIST++ world cm (y up) -> the standard body on a standard stage, cm.

    The sequence is scaled by STANDARD_SPAN_CM / its median body_span about the point on the
    floor under the mid-hip of each frame: body size becomes standard, the travel over the floor
    stays real, heights above the floor (jumps) scale with the body. The floor (the median of the
    lower ankle's height) moves to y = 0 and the median mid-hip position to x = z = 0.
    """
    span = body_span(keypoints)
    if not np.isfinite(span).any():
        raise InputError(f"aistpp: {path} has no frame with shoulders, hips, knees and ankles")
    scale = STANDARD_SPAN_CM / np.nanmedian(span)
    floor = np.nanmedian(np.fmin(keypoints[:, 15, 1], keypoints[:, 16, 1]))
    anchor = keypoints[:, _HIPS].mean(1)
    anchor[:, 1] = floor
    centre = np.nanmedian(anchor, axis=0)
    return anchor[:, None] - centre + scale * (keypoints - anchor[:, None])


def virtual_camera(width: int, height: int) -> dict:
    """The calibrated variant's camera in AIST++'s camera JSON format, for a width x height frame.

    A pinhole (no distortion) at CAMERA_CENTRE_CM looking horizontally at the stage centre from
    the front, focal length FOCAL_PER_HEIGHT * height pixels, principal point at the frame centre.
    The standard body standing at the centre spans 2.0 * 130 / 600 = 0.433 frame heights from
    shoulders to ankles (468 px at 1080), its ankles 0.817 heights from the top; a 16:9 frame
    sees 5.3 m of stage width there.
    """
    f = FOCAL_PER_HEIGHT * height
    rotation = rodrigues(np.array(CAMERA_RVEC))
    return {
        "name": "virtual",
        "size": [int(width), int(height)],
        "matrix": [[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]],
        "rotation": list(CAMERA_RVEC),
        "translation": (-rotation @ np.array(CAMERA_CENTRE_CM)).tolist(),
        "distortions": [0.0] * 5,
    }


def rodrigues(rvec: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a Rodrigues (axis * angle in radians) vector (3,)."""
    rvec = np.asarray(rvec, dtype=np.float64)
    angle = np.linalg.norm(rvec)
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = rvec / angle
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def project(points: np.ndarray, matrix, rvec, tvec) -> np.ndarray:
    """(..., 3) world points -> (..., 2) float32 pixels through a pinhole camera (no distortion).

    matrix: (3, 3) intrinsics in pixels; rvec: (3,) Rodrigues rotation world -> camera; tvec: (3,)
    translation in the points' unit (camera = R @ world + t, OpenCV axes: x right, y down, z
    forward). Points on or behind the camera plane are NaN.
    """
    camera = np.asarray(points, np.float64) @ rodrigues(rvec).T + np.asarray(tvec, np.float64)
    image = camera @ np.asarray(matrix, np.float64).T
    depth = camera[..., 2:]
    with np.errstate(invalid="ignore", divide="ignore"):
        pixels = np.where(depth > 0, image[..., :2] / depth, np.nan)
    return pixels.astype(np.float32)
