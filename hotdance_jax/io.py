"""Atomic output (a reader never sees a half-written file or folder; a failure leaves nothing
behind), the manifests of built folders, and folders in cloud storage (gs://bucket/...) through
etils.epath: local paths stay pathlib paths, on the code path they always took."""

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


def as_path(path: str | os.PathLike) -> Path | epath.Path:
    """A command's file or folder: a local path as pathlib.Path (as it always was), a cloud URI
    (gs://bucket/...) as etils.epath.Path, which reads and writes it through fsspec and gcsfs."""
    return epath.Path(path) if is_remote(path) else Path(path)


def resolved(path: str | os.PathLike) -> str:
    """The name a manifest records: a local path made absolute (symlinks resolved), a URI as it
    is."""
    return os.fspath(path) if is_remote(path) else str(Path(path).resolve())


def reach(path: str | os.PathLike) -> None:
    """Nothing for a local path; for a URI, asks its storage whether it exists, and raises
    InputError in one line naming it when the storage cannot be asked: no gcsfs installed, no
    credentials, no network, no permission."""
    if not is_remote(path):
        return
    try:
        epath.Path(path).exists()
    except Exception as e:  # whatever the storage client raises, said in one line
        lines = str(e).strip().splitlines() or [""]
        raise InputError(f"{path}: cannot be reached ({type(e).__name__}: {lines[0]})") from None


def is_whole(path: Path | epath.Path, size: int) -> bool:
    """Whether `path` is a file of `size` bytes."""
    if not is_remote(path):
        return path.is_file() and path.stat().st_size == size
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return not stat.is_directory and stat.length == size


def copy_file(source: Path | epath.Path, target: Path | epath.Path) -> None:
    """Copies one file, from or to cloud storage, in blocks of 4 MiB; a cloud object appears
    when the copy ends (readers of our folders check sizes and manifests, written last)."""
    with source.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 22)


def files_under(folder: Path | epath.Path) -> Iterator[Path | epath.Path]:
    """Every file under `folder`, recursively, folder by folder in name order. Listing a cloud
    folder asks once per folder (gcsfs keeps what a listing says, so is_dir costs nothing)."""
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            yield from files_under(path)
        else:
            yield path


def download(source: epath.Path, target: Path) -> None:
    """Copies the cloud file or folder `source` to the local path `target`."""
    if not source.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(source, target)
        return
    for path in files_under(source):
        local = target / os.path.relpath(path, source)
        local.parent.mkdir(parents=True, exist_ok=True)
        copy_file(path, local)


def upload(source: Path, target: epath.Path) -> None:
    """Copies the local file or folder `source` to the cloud path `target`."""
    if not source.is_dir():
        copy_file(source, target)
        return
    for path in files_under(source):
        copy_file(path, target / path.relative_to(source).as_posix())


@contextlib.contextmanager
def local_folder(folder: Path | epath.Path) -> Iterator[Path]:
    """`folder` itself when it is local; for a URI a local temporary folder (under $TMPDIR),
    removed afterwards, for files that are then uploaded."""
    if not is_remote(folder):
        yield Path(folder)
        return
    local = Path(tempfile.mkdtemp(prefix="hotdance-"))
    try:
        yield local
    finally:
        shutil.rmtree(local, ignore_errors=True)


def make_folder(folder: Path | epath.Path) -> None:
    """Makes a local folder and its parents; nothing for a cloud folder, which is only a prefix
    of the objects written under it (gcsfs's makedirs would make a missing bucket)."""
    if not is_remote(folder):
        folder.mkdir(parents=True, exist_ok=True)


def remove_tree(folder: Path | epath.Path) -> None:
    """Removes the folder and all under it (a cloud folder: every object under its prefix)."""
    if not is_remote(folder):
        shutil.rmtree(folder)
    elif folder.exists():
        folder.rmtree()


def publish_folder(out: epath.Path, files: dict[str, Path | epath.Path], manifest: str,
                   text: str) -> None:
    """staged_directory for a folder in cloud storage, where there is no rename: the old
    manifest goes first (a folder without its manifest is absent to every reader of ours), then
    every object under `out`; then `files` (name -> source) are copied in, and the manifest
    `text` written last. So `out` is at every moment a whole build or absent, never half of one;
    a swap cut short leaves only files without a manifest, which the next run replaces. The
    sources stay until the caller removes them, so a failed swap can be run again."""
    old = out / manifest
    if old.exists():
        old.unlink()
    remove_tree(out)
    for name, source in files.items():
        copy_file(source, out / name)
    write_text(old, text)


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
