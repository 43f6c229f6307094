"""Performances -> fixed-length training segments, stored as ArrayRecord shards with a manifest.

A segment is T frames of one performance at the target fps with everything later stages need:

  keypoints (T, K, 2) float32 pixels, confidence (T, K) float32, K the joints of
    config.pose.skeleton (18, or 60 with hands),
  music (T, D) float32 music features (row t describes the same instant as frame t),
  has_music (bool): False for a motion-only performance, whose music is zeros and audio_path "",
  shape_keypoints (K, 2), shape_confidence (K,): the dancer's neutral shape pose,
  width, height (pixels), fps, audio_path, audio_offset (seconds into audio_path at frame 0),
  sequence_id, split, source, start_frame (in the resampled performance).

Records are msgpack-serialised dicts (flax.serialization) in ArrayRecord shards, one per split
and part of the build (`shard_name`), listed per split in the manifest's "shards" in order.
Motion-only segments serve where only poses matter (the autoencoder); what needs music (the
latent cache, BAS) refuses a build that has them (`require_music`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import ml_collections
import numpy as np
from array_record.python import array_record_data_source, array_record_module
from flax import serialization

from data_pipeline.sources.base import SPLITS, Performance
from hotdance_jax import io
from hotdance_jax.errors import InputError
from hotdance_jax.pose.shape import shape_pose

MANIFEST = "manifest.json"
# The pose settings segments depend on (bins and decoding matter only to later stages).
POSE_KEYS = ("skeleton", "fps", "segment_frames")
FORMAT_VERSION = 2  # 2: shards per split and part, listed in the manifest


def resample(perf: Performance, fps: float) -> Performance:
    """The performance on the frame grid t_i = i / fps, by linear interpolation in time.

    A joint is visible at a new frame only when it is visible at both source frames around it;
    its confidence is interpolated like its coordinates.
    """
    if perf.fps == fps:
        return perf
    duration = (perf.num_frames - 1) / perf.fps
    position = np.arange(int(np.floor(duration * fps + 1e-6)) + 1) / fps * perf.fps
    lo = np.clip(np.floor(position).astype(int), 0, perf.num_frames - 1)
    hi = np.minimum(lo + 1, perf.num_frames - 1)
    w = (position - lo).astype(np.float32)
    visible = (perf.confidence[lo] > 0) & (perf.confidence[hi] > 0)
    keypoints = (1 - w)[:, None, None] * perf.keypoints[lo] + w[:, None, None] * perf.keypoints[hi]
    confidence = (1 - w)[:, None] * perf.confidence[lo] + w[:, None] * perf.confidence[hi]
    return dataclasses.replace(
        perf,
        keypoints=np.where(visible[..., None], keypoints, np.nan).astype(np.float32),
        confidence=np.where(visible, confidence, 0.0).astype(np.float32),
        fps=float(fps),
    )


def trim(perf: Performance, num_frames: int) -> Performance:
    """The first `num_frames` frames of the performance."""
    return dataclasses.replace(
        perf, keypoints=perf.keypoints[:num_frames], confidence=perf.confidence[:num_frames]
    )


def cut_segments(
    perf: Performance, music: np.ndarray, segment_frames: int, stride: int
) -> Iterator[dict]:
    """Segment records of `segment_frames` frames every `stride` frames.

    perf: at its final fps; music: (perf.num_frames, D) features on the same frame grid.
    Windows must fit entirely; a performance shorter than one segment yields none.
    """
    shape_keypoints, shape_confidence = shape_pose(perf.keypoints, perf.confidence)
    for start in range(0, perf.num_frames - segment_frames + 1, stride):
        window = slice(start, start + segment_frames)
        yield {
            "keypoints": perf.keypoints[window],
            "confidence": perf.confidence[window],
            "music": music[window],
            "has_music": perf.has_music,
            "shape_keypoints": shape_keypoints,
            "shape_confidence": shape_confidence,
            "width": np.int32(perf.width),
            "height": np.int32(perf.height),
            "fps": np.float32(perf.fps),
            "audio_path": perf.audio_path,
            "audio_offset": np.float64(perf.audio_offset + start / perf.fps),
            "sequence_id": perf.sequence_id,
            "split": perf.split,
            "source": perf.source,
            "start_frame": np.int32(start),
        }


def assemble(records: Iterable[dict]) -> list[Performance]:
    """Whole performances, sorted by sequence_id, from segment (or latent cache) records: each
    sequence's unmirrored segments placed at their start_frame (overlaps agree). Frames that no
    segment covers, such as a tail shorter than a segment, are cut or stay invisible."""
    groups = collections.defaultdict(list)
    for record in records:
        if not record.get("flipped", False):
            groups[str(record["sequence_id"])].append(record)
    return [_join(sequence, parts) for sequence, parts in sorted(groups.items())]


def _join(sequence: str, parts: list[dict]) -> Performance:
    """One performance from the records of its segments (see `assemble`)."""
    first = min(parts, key=lambda r: int(r["start_frame"]))
    frames = max(int(r["start_frame"]) + len(r["keypoints"]) for r in parts)
    keypoints = np.full((frames, *first["keypoints"].shape[1:]), np.nan, np.float32)
    confidence = np.zeros((frames, first["confidence"].shape[1]), np.float32)
    for record in parts:
        window = slice(int(record["start_frame"]), int(record["start_frame"]) + len(
            record["keypoints"]))
        keypoints[window], confidence[window] = record["keypoints"], record["confidence"]
    fps = float(first["fps"])
    return Performance(
        sequence_id=sequence, keypoints=keypoints, confidence=confidence, fps=fps,
        width=int(first["width"]), height=int(first["height"]),
        audio_path=str(first["audio_path"]),
        audio_offset=float(first["audio_offset"]) - int(first["start_frame"]) / fps,
        split=str(first["split"]), source=str(first["source"]))


def serialize(record: dict) -> bytes:
    return serialization.msgpack_serialize(record)


def deserialize(data: bytes) -> dict:
    return serialization.msgpack_restore(data)


def shard_name(split: str, part: int) -> str:
    """The file of the segments of `split` that part `part` of a build wrote."""
    return f"segments-{split}-{part:05d}.array_record"


class SegmentWriter:
    """Writes the records of part `part` of a build into one ArrayRecord shard per split under
    `directory` (shard_name), each atomically: when the `with` block ends without an error the
    shards appear whole, else none does."""

    def __init__(self, directory: Path, part: int):
        self.directory, self.part = Path(directory), part
        self.counts = dict.fromkeys(SPLITS, 0)
        self._files = contextlib.ExitStack()
        self._writers = {}

    def __enter__(self) -> SegmentWriter:
        return self

    def write(self, record: dict) -> None:
        split = record["split"]
        if split not in self._writers:
            path = self.directory / shard_name(split, self.part)
            tmp = self._files.enter_context(io.atomic_path(path))
            self._writers[split] = array_record_module.ArrayRecordWriter(str(tmp), "group_size:1")
        self._writers[split].write(serialize(record))
        self.counts[split] += 1

    def __exit__(self, *exc_info) -> bool:
        for writer in self._writers.values():
            writer.close()
        return self._files.__exit__(*exc_info)

    def shards(self) -> dict[str, dict]:
        """split -> {"name", "records", "bytes", "sha256"} of each shard written, once closed."""
        shards = {}
        for split in self._writers:
            path = self.directory / shard_name(split, self.part)
            shards[split] = {"name": path.name, "records": self.counts[split],
                             "bytes": path.stat().st_size, "sha256": io.files_sha256([path])}
        return shards


class SegmentStore:
    """Random access to the segments of one split of a build (a grain RandomAccessDataSource)."""

    def __init__(self, directory: str | Path, split: str = "train"):
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        expected = self.manifest["counts"]["segments"].get(split, 0)
        if expected == 0:
            raise InputError(f"{self.directory}: the build has no {split!r} segments")
        paths = [self.directory / name for name in self.manifest["shards"][split]]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise InputError(f"{missing[0]}: missing segment shard listed in the manifest")
        self._source = array_record_data_source.ArrayRecordDataSource([str(p) for p in paths])
        if len(self._source) != expected:
            raise InputError(f"{self.directory}: holds {len(self._source)} {split} segments, the "
                             f"manifest says {expected}")

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        return deserialize(self._source[index])

    def __getitems__(self, indices) -> list[dict]:
        return [deserialize(b) for b in self._source.__getitems__(indices)]


def motion_only(manifest: dict) -> dict[str, int]:
    """Motion-only performances per split of a build (none in builds made before they were)."""
    return manifest["counts"].get("motion_only", {})


def require_music(directory: Path, manifest: dict, splits: Sequence[str], needed_by: str) -> None:
    """InputError naming the build `directory` when a performance of `splits` is motion-only;
    `needed_by` names what needs the music."""
    silent = sum(motion_only(manifest).get(s, 0) for s in splits)
    if silent:
        total = sum(manifest["counts"]["performances"].get(s, 0) for s in splits)
        raise InputError(f"{directory}: {silent} of {total} performances in {'/'.join(splits)} "
                         f"are motion-only (built without their music); {needed_by} expects a "
                         "segment build whose performances all have music")


def require_pose(directory: Path, manifest: dict, pose: ml_collections.ConfigDict,
                 keys: Sequence[str] = POSE_KEYS) -> None:
    """InputError naming the build `directory` when it was made with other `keys` of
    config.pose (a subset of POSE_KEYS) than `pose` has."""
    built = manifest["config"]["pose"]
    for key in keys:
        if built[key] != pose[key]:
            raise InputError(f"{directory}: segments built with pose.{key} = {built[key]!r}, "
                             f"the config has {pose[key]!r}")


def read_manifest(directory: str | Path) -> dict:
    """The manifest of a segment build (a local folder or a gs:// URI); InputError when it is
    missing or unreadable."""
    return io.read_manifest(io.as_path(directory) / MANIFEST, "segment build", FORMAT_VERSION,
                            "rebuild with python -m data_pipeline.build")
