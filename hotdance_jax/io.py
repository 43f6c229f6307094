"""Atomic file output: a reader never sees a half-written file, a failure leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

    The temporary name keeps `path`'s suffix so writers that pick a format by suffix still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """np.savez_compressed, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def save_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """A (num_samples,) float waveform as a 16-bit PCM wav, atomically."""
    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, sample_rate, subtype="PCM_16")
