"""What every data source yields: whole performances in the layout config.pose.skeleton names
(OpenPose-18, or OpenPose-18 with hands from the sources that have them)."""

from __future__ import annotations

import collections
import dataclasses
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import ml_collections
import numpy as np

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Performance:
    """One dance with its music, before resampling and segmenting.

    keypoints: (N, K, 2) float32 pixels, OpenPose-18 (K = 18) or with hands (K = 60), x right,
    y down, NaN where invisible.
    confidence: (N, K) float32 in [0, 1], 0 where invisible.
    fps: frames per second of the keypoints; frame i is at audio time audio_offset + i / fps.
    width, height: frame size in pixels.
    audio_path: the music file, "" for a motion-only performance (its music is missing);
    audio_offset: seconds into it at frame 0.
    """

    sequence_id: str
    keypoints: np.ndarray
    confidence: np.ndarray
    fps: float
    width: int
    height: int
    audio_path: str
    audio_offset: float
    split: str
    source: str

    @property
    def num_frames(self) -> int:
        return self.keypoints.shape[0]

    @property
    def has_music(self) -> bool:
        return bool(self.audio_path)


class Source(Protocol):
    """A source module's entry point: performances under `root`, counting what it drops in
    `stats` (step name -> count), so the manifest can report every cleaning step."""

    def __call__(
        self, root: Path, config: ml_collections.ConfigDict, stats: collections.Counter
    ) -> Iterator[Performance]: ...


def hashed_split(name: str, train_percent: int, val_percent: int) -> str:
    """A stable split for `name`: crc32(name) % 100 below train_percent is train, below
    train_percent + val_percent val, else test; the same on every machine and run."""
    bucket = zlib.crc32(name.encode()) % 100
    if bucket < train_percent:
        return "train"
    return "val" if bucket < train_percent + val_percent else "test"
