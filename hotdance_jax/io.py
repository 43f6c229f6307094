"""Atomic output (a reader never sees a half-written file or folder; a failure leaves nothing
behind) and the manifests of built folders."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile
from etils import epath

from hotdance_jax.errors import InputError


def _read_umask() -> int:
    """The process umask. Reading it means setting it, so this runs once, at import, before
    any writer thread exists, rather than on every write."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()


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
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_path(path: str | os.PathLike) -> epath.Path:
    """A run folder (or a file in one) as etils.epath, what orbax reads and writes: a local path,
    made absolute, or a cloud URI (gs://bucket/...) kept as it is (pathlib would make it gs:/)."""
    path = epath.Path(path)
    return path if is_remote(path) else path.resolve()


def is_remote(path: str | os.PathLike) -> bool:
    """True for a cloud storage URI such as gs://bucket/run."""
    return "://" in os.fspath(path)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to a local file atomically (atomic_path) or to a cloud object (one upload,
    which readers see whole or not at all)."""
    if is_remote(path):
        epath.Path(path).write_text(text)
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """np.savez_compressed, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def save_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """A (num_samples,) float waveform as a 16-bit PCM wav, atomically."""
    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, sample_rate, subtype="PCM_16")


@contextlib.contextmanager
def staged_directory(out: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty folder beside `out`; when the block succeeds it replaces `out` whole.

    The swap is two renames, so `out` is at every moment either the old or the new folder; on
    failure the staging folder is removed and `out` is untouched.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            retired = out.with_name(f".{out.name}.retired-{os.getpid()}")
            os.replace(out, retired)
            os.replace(staging, out)
            shutil.rmtree(retired)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def files_sha256(paths: Iterable[Path]) -> str:
    """sha256 over the names and bytes of `paths`, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_manifest(
    path: Path, kind: str, format_version: int, rebuild: str, format_name: str | None = None
) -> dict:
    """A JSON manifest whose "format_version" must be `format_version` (and "format" must be
    `format_name` when given); one-line InputError naming the file when it is missing (`kind`
    says what the folder should have been), unreadable, of another format, or of another version
    (`rebuild` says how to make a new one)."""
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not a {kind} (no manifest)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable manifest ({e})") from None
    if format_name is not None and manifest.get("format") != format_name:
        raise InputError(f"{path}: not a {kind} manifest")
    if manifest.get("format_version") != format_version:
        raise InputError(f"{path}: {kind} format {manifest.get('format_version')}, expected "
                         f"{format_version}; {rebuild}")
    return manifest
