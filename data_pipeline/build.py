r"""Raw dataset -> training segments + manifest, in parts, over processes and hosts.

  python -m data_pipeline.build --source dwm --root ../shared/data/dwm --segments data/dwm \
      [--config configs/base.py] [--config.pose.fps=25]
  python -m data_pipeline.build --source wild --root RAW --segments data/wild --workers 64
  python -m data_pipeline.build --source wild --root RAW --segments data/wild \
      --num-shards 8 --shard-index I     # on host I of 8, then, on one host, once all are done:
  python -m data_pipeline.build --source wild --root RAW --segments data/wild --merge

Every performance is resampled to config.pose.fps, its music analysed on the same frame grid, and
cut into segments of config.pose.segment_frames frames every config.data.segment_stride frames
(see data_pipeline/segments.py for what a segment holds). A performance whose music is missing
(a source gives it no audio_path) is built whole and motion-only: zero music features, has_music
False, "music": false among the manifest's sequences, counted per split in counts.motion_only
and in the printed summary.

Parts. A build is cut into parts that do not depend on how it is run: a source whose inputs are
independent videos (`wild`; PARTITIONED in data_pipeline/sources) is split, in name order, into
parts of config.data.videos_per_part videos; any other source is one part. Part p writes one
shard per split, segments-SPLIT-p.array_record, then part-p.json (its sequences, stats, skipped
videos and shards with their sha256) into the work folder SEGMENTS.parts beside --segments.
--workers W builds W parts at a time in W processes. --num-shards N --shard-index I builds only
the parts p with p % N == I and stops; --merge, once every shard's parts are in one work folder
(copy them there from every host), checks that all parts are there and were built from these
inputs and settings, writes the manifest and swaps the shards in as --segments. A build without
--num-shards merges by itself. One process, W processes or N hosts write the same shards and
the same manifest (counts, sequences, content hash); only "created" differs.

Resume. A part whose part-p.json is in the work folder, made from the same input files (names,
sizes, mtimes) and settings, is not built again: an interrupted build, run again, goes on from
the parts it finished.

Bad input. A video of a partitioned source with bad input (a corrupt JSON frame, no meta.json or
music, unreadable audio, ...) is skipped: its one-line error is listed in the manifest's
"skipped" and counted in counts.skipped, and the build goes on. In a source of one part, bad
input ends the build with its one-line error. A part that fails otherwise (a worker killed, a
full disk) is named in one line when the others are done, with a non-zero exit; the finished
parts stay for the resume.

The build is staged beside --segments and swapped in whole, so --segments never holds half a
build. Re-running with the same inputs and settings is a no-op; other inputs or settings rebuild.
Why processes, not Apache Beam: docs/data_at_scale.md.

Cloud storage. --root and --segments each take a local folder or a gs:// URI (etils.epath, as
the trainer's --workdir; gcsfs installed, as launch/requirements-tpu.txt pins it); local paths
take the code path they always took. ArrayRecord opens only local files (its riegeli reader has
no GCS file in this release), so:
  - a part under a gs:// root reads a local copy, under $TMPDIR and removed when it ends, of its
    videos and the files directly in root named after one of them or after none (splits.json);
    a source of one part copies the whole root, and `synthetic` uploads the raw files it writes.
    The segments and the manifest name the gs:// files (audio_path, a skipped video's error).
  - a gs:// --segments has its work folder SEGMENTS.parts in the same bucket: a part writes its
    shards locally and uploads them, then its part file, so the resume works there and the
    hosts of --num-shards share it, with nothing to gather before --merge.
  - a bucket has no rename, so the merge removes the old manifest, then the old build, copies
    the shards in from the work folder (through this host) and writes the manifest last. Every
    reader here takes a folder without its manifest for absent: --segments holds a whole build
    or none, and a merge cut short leaves shards only (which the next run replaces) and the
    work folder, from which it runs again.
A gs:// path whose storage cannot be reached (no gcsfs, no credentials, no network, no
permission) ends the command with one line naming it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import json
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags
from etils import epath

from data_pipeline import segments
from data_pipeline.sources import GENERATED_SOURCES, HAND_SOURCES, PARTITIONED, SOURCES
from data_pipeline.sources.base import SPLITS, Performance
from hotdance_jax import cli, io
from hotdance_jax.audio import NUM_BASELINE_FEATURES, load_audio, music_features
from hotdance_jax.errors import InputError
from hotdance_jax.io import staged_directory
from hotdance_jax.pose import pipeline_skeleton

PART = "part-{:05d}.json"

FLAGS = flags.FLAGS


def input_listing(root: Path | epath.Path) -> list[tuple[str, int, int]]:
    """(relative path, size in bytes, mtime) of every file under `root`, sorted; mtime in ns
    under a local root, in s under a cloud one (what its storage keeps)."""
    if io.is_remote(root):
        return sorted((os.path.relpath(path, root), *_stat(path)) for path in io.files_under(root))
    listing = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            stat = path.stat()
            listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return sorted(listing)


def _stat(path: Path | epath.Path) -> tuple[int, int]:
    """(size in bytes, mtime) of a file: mtime in ns when local, in s in cloud storage."""
    stat = path.stat()
    if io.is_remote(path):
        return stat.length, stat.mtime
    return stat.st_size, stat.st_mtime_ns


@dataclasses.dataclass(frozen=True)
class Part:
    """One part of a build, as a worker process gets it: its `inputs` (a partitioned source's
    video folders or files, else [root]) and what every part shares. Under a cloud root, `files`
    names the files directly in root that the part reads besides its inputs (what is copied to
    the worker with them)."""

    index: int
    inputs: tuple[Path | epath.Path, ...]
    source: str
    root: Path | epath.Path
    settings: str  # settings_digest of the build
    config: ml_collections.ConfigDict
    files: tuple[str, ...] = ()

    def input_names(self) -> list[str]:
        return [os.path.relpath(p, self.root) for p in self.inputs]


def settings_digest(source: str, root: Path | epath.Path, config: ml_collections.ConfigDict
                    ) -> str:
    """sha256 of what every part depends on: format, source, settings, and the files directly
    in `root` (such as the wild source's splits.json, npz videos and their music)."""
    top = [] if source in GENERATED_SOURCES else [
        (p.name, *_stat(p)) for p in sorted(root.iterdir()) if p.is_file()]
    depends_on = {
        "format_version": segments.FORMAT_VERSION,
        "source": source,
        "root": io.resolved(root),
        "pose": {k: config.pose[k] for k in segments.POSE_KEYS},
        "audio": config.audio.to_dict(),
        "data": config.data.to_dict(),
        "inputs": top,
    }
    return _sha256(depends_on)


def _sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def plan(source: str, root: Path | epath.Path, config: ml_collections.ConfigDict
         ) -> list[Part]:
    """The parts of the build of `source` under `root`, in order."""
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; expected one of {sorted(SOURCES)}")
    if source not in GENERATED_SOURCES and not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    if pipeline_skeleton(config.pose.skeleton).has_hands and source not in HAND_SOURCES:
        raise InputError(f"source {source} has no hands; config.pose.skeleton = "
                         f"{config.pose.skeleton!r} needs one of {sorted(HAND_SOURCES)}")
    settings = settings_digest(source, root, config)
    if source not in PARTITIONED:
        return [Part(0, (root,), source, root, settings, config)]
    size = int(config.data.videos_per_part)
    if size < 1:
        raise InputError(f"config.data.videos_per_part: {size}; expected >= 1")
    videos = PARTITIONED[source].entries(root)
    groups = [tuple(videos[start:start + size]) for start in range(0, len(videos), size)]
    files = _files_beside(root, videos, groups) if io.is_remote(root) else [()] * len(groups)
    return [Part(i, group, source, root, settings, config, beside)
            for i, (group, beside) in enumerate(zip(groups, files, strict=True))]


def _files_beside(root: epath.Path, videos: list[epath.Path], groups: list[tuple[epath.Path, ...]]
                  ) -> list[tuple[str, ...]]:
    """For each group of videos, the names of the files directly in `root` its part reads
    besides the videos: those named after one of its videos (the music `<video>.mp3` beside
    `<video>.npz`), and those named after no video (splits.json), which every part reads."""
    owner = {(v.stem if v.suffix == ".npz" else v.name): i for i, group in enumerate(groups)
             for v in group}
    names = {v.name for v in videos}
    shared, own = [], [[] for _ in groups]
    for path in sorted(root.iterdir()):
        if path.name not in names and path.is_file():
            index = owner.get(Path(path.name).stem)
            (shared if index is None else own[index]).append(path.name)
    return [tuple(shared + names) for names in own]


def part_digest(part: Part) -> str:
    """sha256 of the build's settings and the part's input files (names, sizes, mtimes)."""
    listing = {}
    if part.source not in GENERATED_SOURCES:
        for path, name in zip(part.inputs, part.input_names(), strict=True):
            listing[name] = input_listing(path) if path.is_dir() else list(_stat(path))
    return _sha256({"settings": part.settings, "inputs": listing})


def fingerprint(parts: list[Part], digests: list[str]) -> str:
    """sha256 of everything a build depends on: its settings and every part's inputs."""
    return _sha256({"settings": parts[0].settings, "parts": digests})


def frame_music(
    perf: Performance, config: ml_collections.ConfigDict
) -> tuple[Performance, np.ndarray]:
    """The performance trimmed to its music, and (num_frames, D) music features on its frames;
    a motion-only performance whole, with zeros."""
    if not perf.has_music:
        return perf, np.zeros((perf.num_frames, NUM_BASELINE_FEATURES), np.float32)
    audio = load_audio(
        perf.audio_path,
        config.audio.sample_rate,
        offset=perf.audio_offset,
        duration=perf.num_frames / perf.fps + 1.0,
    )
    music_frames = int(np.floor(len(audio) / config.audio.sample_rate * perf.fps))
    perf = segments.trim(perf, min(perf.num_frames, music_frames))
    music = music_features(audio, config.audio.sample_rate, perf.fps, perf.num_frames)
    return perf, music


# ---------------------------------------------------------------- building


def build(
    source: str, root: Path | epath.Path, out: Path | epath.Path,
    config: ml_collections.ConfigDict, *, workers: int = 1,
    num_shards: int = 1, shard_index: int = 0,
) -> dict | None:
    """Builds the segments of `source` under `root` into `out` with `workers` processes;
    returns the manifest. With num_shards > 1, builds only the parts of shard `shard_index`
    into the work folder and returns None (`merge` finishes the build)."""
    if not (workers >= 1 and num_shards >= 1 and 0 <= shard_index < num_shards):
        raise InputError(f"--workers {workers}, --num-shards {num_shards}, --shard-index "
                         f"{shard_index}: expected workers >= 1 and 0 <= shard index < shards")
    _check_out(out)
    parts = plan(source, root, config)
    mine = [part for part in parts if part.index % num_shards == shard_index]
    work = work_folder(out)
    with _pool(workers) as pool:
        digests = _digests(mine, pool)
        previous = _previous(out) if num_shards == 1 else None
        if previous and previous["fingerprint"] == fingerprint(
                parts, [digests[p.index] for p in parts]):
            print(f"{out}: up to date ({sum(previous['counts']['segments'].values())} segments)")
            return previous
        io.make_folder(work)
        todo = [part for part in mine if _finished(work, part, digests[part.index]) is None]
        print(f"{work}: {len(parts)} parts, {len(mine) - len(todo)} of this shard's {len(mine)} "
              "built before")
        failures = _build_parts(todo, digests, work, pool, len(parts))
    if failures:
        _fail(failures, parts, work, alone=num_shards == 1)
    if num_shards > 1:
        print(f"{work}: shard {shard_index} of {num_shards} built; when every shard is, run the "
              "same command with --merge instead of --num-shards and --shard-index")
        return None
    return merge(source, root, out, config)


def work_folder(out: Path | epath.Path) -> Path | epath.Path:
    """Where the parts of the build of `out` are written until the merge: OUT.parts beside it
    (in the same bucket when `out` is a gs:// URI)."""
    return out.with_name(out.name + ".parts")


def unfinished_swap(out: Path | epath.Path, prefix: str) -> bool:
    """Whether `out` is a cloud folder that holds only files `prefix*.array_record`: what a swap
    into a bucket cut short leaves (io.publish_folder), which the next run replaces."""
    return io.is_remote(out) and all(p.name.startswith(prefix) and p.suffix == ".array_record"
                                     for p in out.iterdir())


def _previous(out: Path) -> dict | None:
    """The manifest of the build in `out`; None when there is none or it is of another format
    version (which the build replaces)."""
    try:
        return segments.read_manifest(out)
    except InputError:
        return None


def _check_out(out: Path) -> None:
    """InputError unless `out` is missing, empty or a segment build (which a build replaces)."""
    if (out.exists() and not (out / segments.MANIFEST).exists() and any(out.iterdir())
            and not unfinished_swap(out, "segments-")):
        raise InputError(f"{out}: exists and is not a segment build; choose an empty --segments")


def _pool(workers: int) -> contextlib.AbstractContextManager[ProcessPoolExecutor | None]:
    """`workers` processes to build in (started as they are needed), or None for 1: this one."""
    if workers == 1:
        return contextlib.nullcontext()
    context = multiprocessing.get_context("spawn")  # fork is unsafe once JAX runs threads
    return ProcessPoolExecutor(workers, mp_context=context)


def _gather(function: Callable, tasks: list[tuple], pool: ProcessPoolExecutor | None
            ) -> Iterator[tuple[int, object]]:
    """(the task's part index, function(*task) or the exception it raised) for each task, as they
    finish: in this process when `pool` is None, else in the pool's processes."""
    if pool is None:
        for task in tasks:
            try:
                yield task[0].index, function(*task)
            except Exception as e:  # handed to the caller, which names the part
                yield task[0].index, e
        return
    futures = {pool.submit(function, *task): task[0].index for task in tasks}
    for future in as_completed(futures):
        yield futures[future], future.exception() or future.result()


def _digests(parts: list[Part], pool: ProcessPoolExecutor | None) -> dict[int, str]:
    """part_digest of each part by index."""
    digests = dict(_gather(part_digest, [(part,) for part in parts], pool))
    for error in digests.values():
        if isinstance(error, BaseException):
            raise error
    return digests


def _build_parts(todo: list[Part], digests: dict[int, str], work: Path,
                 pool: ProcessPoolExecutor | None, total: int) -> dict[int, BaseException]:
    """Builds the parts of `todo`, printing a line as each ends; returns the failed ones'
    exceptions by part index."""
    failures = {}
    for index, result in _gather(build_part, [(p, digests[p.index], work) for p in todo], pool):
        if isinstance(result, BaseException):
            failures[index] = result
            print(f"  part {index} of {total}: failed", flush=True)
            continue
        counts = sum(shard["records"] for shard in result["shards"].values())
        print(f"  part {index} of {total}: {len(result['sequences'])} performances, {counts} "
              f"segments, {len(result['skipped'])} inputs skipped", flush=True)
    return failures


def _fail(failures: dict[int, BaseException], parts: list[Part], work: Path, alone: bool) -> None:
    """Raises the error of a build of one part; else one line naming the parts that failed.
    The work folder stays when it holds finished parts (for the resume) or other shards may be
    writing into it (not `alone`), else it goes."""
    if alone and not any(work.glob("part-*.json")):
        io.remove_tree(work)
    if len(parts) == 1:
        raise failures[0]
    first = min(failures)
    for error in failures.values():
        if not isinstance(error, InputError | OSError):
            traceback.print_exception(error, file=sys.stderr)
    inputs = parts[first].input_names()
    raise InputError(
        f"{len(failures)} of {len(parts)} parts failed ({', '.join(map(str, sorted(failures)))});"
        f" part {first} ({inputs[0]} .. {inputs[-1]}): {type(failures[first]).__name__}: "
        f"{failures[first]}; the finished parts stay in {work}: run again to resume")


def build_part(part: Part, digest: str, work: Path | epath.Path) -> dict:
    """Builds one part into `work`: its shards, then its part file; returns what that holds.

    A video of a partitioned source whose input is bad is skipped (its error listed); in a
    source of one part, bad input raises. Under a cloud root the part reads a local copy of its
    inputs (_local_inputs); into a cloud work folder it uploads its shards, then its part file.
    """
    config = part.config
    data_config = config.data.copy_and_resolve_references()
    with data_config.unlocked():
        data_config.min_frames = config.pose.segment_frames  # sources that cut runs need it
        data_config.skeleton = config.pose.skeleton  # sources with hands read them when it has
    stats, sequences, skipped = collections.Counter(), [], []
    with _local_inputs(part) as (root, inputs, named), io.local_folder(work) as folder:
        read = _reader(part.source, root, data_config)
        try:
            with segments.SegmentWriter(folder, part.index) as writer:
                for entry in inputs:
                    found = collections.Counter()
                    built = _performance_segments(read(entry, found), config, named)
                    if part.source in PARTITIONED:
                        try:
                            built = list(built)  # all of a video's segments, or none when bad
                        except InputError as e:
                            skipped.append(named(str(e)) if named else str(e))
                            continue
                    for summary, records in built:
                        for record in records:
                            writer.write(record)
                        sequences.append(summary)
                        stats["performances_too_short"] += not records
                    stats.update(found)
        except InputError as e:
            if named is None:
                raise
            raise InputError(named(str(e))) from None
        shards = writer.shards()
        if io.is_remote(part.root) and part.source in GENERATED_SOURCES:
            io.upload(root, part.root)  # the raw files it wrote, where a local build leaves them
        if io.is_remote(work):
            for shard in shards.values():
                io.upload(folder / shard["name"], work / shard["name"])
    result = {"part": part.index, "settings": part.settings, "digest": digest,
              "inputs": part.input_names(), "sequences": sequences, "stats": dict(stats),
              "skipped": skipped, "shards": shards}
    io.write_text(work / PART.format(part.index), json.dumps(result))
    return result


@contextlib.contextmanager
def _local_inputs(part: Part) -> Iterator[tuple[Path, tuple[Path, ...],
                                                Callable[[str], str] | None]]:
    """(root, inputs, named) to build the part from: under a local root its own, and None;
    under a cloud root a local copy (under $TMPDIR, removed afterwards) of its inputs and
    part.files (of the whole root for a source of one part; an empty folder for a generated
    source), and `named`, which names the cloud file for the local copy's in a text (the
    records' audio_path, a skipped video's error)."""
    if not io.is_remote(part.root):
        yield part.root, part.inputs, None
        return
    with io.local_folder(part.root) as local:
        if part.source in PARTITIONED:
            for name in (*part.input_names(), *part.files):
                io.download(part.root / name, local / name)
            inputs = tuple(local / name for name in part.input_names())
        else:
            if part.source not in GENERATED_SOURCES:
                io.download(part.root, local)
            inputs = (local,)
        yield local, inputs, lambda text: text.replace(str(local), str(part.root))


def _reader(source: str, root: Path, data_config: ml_collections.ConfigDict) -> Callable:
    """(input, stats) -> the raw performances of that input of the part."""
    if source in PARTITIONED:
        return PARTITIONED[source].reader(root, data_config)
    return lambda _, stats: SOURCES[source](root, data_config, stats)


def _performance_segments(
    performances: Iterable[Performance], config: ml_collections.ConfigDict,
    named: Callable[[str], str] | None = None,
) -> Iterator[tuple[dict, list[dict]]]:
    """(its summary for the manifest, its segment records) for each raw performance; InputError
    for one whose keypoints are not of config.pose.skeleton. `named` renames its audio_path
    once its music is read (from a local copy of a cloud root)."""
    joints = pipeline_skeleton(config.pose.skeleton).num_joints
    for raw in performances:
        if raw.keypoints.shape[1:] != (joints, 2):
            raise InputError(f"{raw.sequence_id}: keypoints {raw.keypoints.shape}; expected (N, "
                             f"{joints}, 2) for config.pose.skeleton = {config.pose.skeleton!r}")
        perf, music = frame_music(segments.resample(raw, config.pose.fps), config)
        if named is not None:
            perf = dataclasses.replace(perf, audio_path=named(perf.audio_path))
        records = list(segments.cut_segments(
            perf, music, config.pose.segment_frames, config.data.segment_stride))
        yield {"sequence_id": perf.sequence_id, "split": perf.split, "frames": perf.num_frames,
               "segments": len(records), "music": perf.has_music,
               "audio_path": perf.audio_path}, records


def _finished(work: Path | epath.Path, part: Part, digest: str) -> dict | None:
    """The part's part file when it was built from these inputs and settings and its shards are
    all there, whole; else None."""
    try:
        result = json.loads((work / PART.format(part.index)).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    shards = result["shards"].values()
    if result["digest"] != digest or not all(io.is_whole(work / s["name"], s["bytes"])
                                             for s in shards):
        return None
    return result


# ---------------------------------------------------------------- merging


def merge(source: str, root: Path | epath.Path, out: Path | epath.Path,
          config: ml_collections.ConfigDict) -> dict:
    """Swaps the parts in the work folder of `out` in as `out`, with the manifest; returns it.
    InputError naming the parts that are missing or were built from other inputs or settings.
    A cloud `out` gets the shards copied in from the work folder and the manifest last
    (io.publish_folder)."""
    _check_out(out)
    parts = plan(source, root, config)
    work = work_folder(out)
    results = [_merge_part(work, part) for part in parts]
    missing = [part.index for part, result in zip(parts, results, strict=True) if result is None]
    if missing:
        raise InputError(f"{work}: {len(missing)} of {len(parts)} parts not built "
                         f"({_ranges(missing)}); build their shards (or run without --merge)")
    manifest = _manifest(parts, results)
    if io.is_remote(out):
        io.publish_folder(out, {s["name"]: work / s["name"] for r in results
                                for s in r["shards"].values()},
                          segments.MANIFEST, json.dumps(manifest, indent=1))
    else:
        with staged_directory(out) as staging:
            for result in results:
                for shard in result["shards"].values():
                    os.link(work / shard["name"], staging / shard["name"])
            (staging / segments.MANIFEST).write_text(json.dumps(manifest, indent=1))
    io.remove_tree(work)
    return manifest


def _merge_part(work: Path | epath.Path, part: Part) -> dict | None:
    """The part's part file, or None when it has none; InputError when it is of another build."""
    path = work / PART.format(part.index)
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result["settings"] != part.settings or result["inputs"] != part.input_names():
        raise InputError(f"{path}: built from other inputs or settings than this build's; run "
                         "its shard again")
    for shard in result["shards"].values():
        if not (work / shard["name"]).is_file():
            raise InputError(f"{work / shard['name']}: missing; run the shard of part "
                             f"{part.index} again")
    return result


def _ranges(indices: list[int]) -> str:
    """'0-3, 7' for [0, 1, 2, 3, 7]."""
    runs = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _manifest(parts: list[Part], results: list[dict]) -> dict:
    """The manifest of a build from its parts' results, in part order."""
    part, config = parts[0], parts[0].config
    sequences = [s for r in results for s in r["sequences"]]
    skipped = [message for r in results for message in r["skipped"]]
    if not sequences:
        raise InputError(f"{part.root}: the {part.source} source found no performances"
                         + (f"; {len(skipped)} inputs skipped, first {skipped[0]}" if skipped
                            else ""))
    stats = collections.Counter()
    for result in results:
        stats.update(result["stats"])
    shards = {split: [r["shards"][split] for r in results if split in r["shards"]]
              for split in SPLITS}
    frames = sum(s["frames"] for s in sequences)
    return {
        "format_version": segments.FORMAT_VERSION,
        "source": part.source,
        "root": io.resolved(part.root),
        "fingerprint": fingerprint(parts, [r["digest"] for r in results]),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {"pose": config.pose.to_dict(), "audio": config.audio.to_dict(),
                   "data": config.data.to_dict()},
        "counts": {
            "performances": _per_split(sequences, lambda s: 1),
            "motion_only": _per_split(sequences, lambda s: not s["music"]),
            "segments": {split: sum(s["records"] for s in shards[split]) for split in SPLITS},
            "frames": frames,
            "hours": frames / config.pose.fps / 3600,
            "skipped": len(skipped),
        },
        "stats": dict(stats),
        "parts": len(parts),
        "shards": {split: [s["name"] for s in shards[split]] for split in SPLITS},
        "content_hash": _sha256([[s["name"], s["sha256"]] for split in SPLITS
                                 for s in shards[split]]),
        "skipped": skipped,
        "sequences": sequences,
    }


def _per_split(sequences: list[dict], count: Callable[[dict], int]) -> dict[str, int]:
    return {split: sum(int(count(s)) for s in sequences if s["split"] == split)
            for split in SPLITS}


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("base")
    flags.DEFINE_string("source", None, f"Data source, one of {sorted(SOURCES)}.")
    flags.DEFINE_string("root", None, "Raw dataset folder, local or gs:// (written to for "
                        "'synthetic').")
    flags.DEFINE_string("segments", None, "Output folder, local or gs://, for the segments and "
                        "their manifest.")
    flags.DEFINE_integer("workers", 1, "Parts built at a time, each in its own process.")
    flags.DEFINE_integer("num-shards", 1, "Hosts sharing the build: this one builds the parts p "
                         "with p % num-shards == shard-index into SEGMENTS.parts, then stops.")
    flags.DEFINE_integer("shard-index", 0, "This host's shard, 0 .. num-shards - 1.")
    flags.DEFINE_bool("merge", False, "Only merge the parts in SEGMENTS.parts (every shard's, "
                      "copied there) into --segments and write the manifest.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    source = FLAGS.source or config.data.source
    if not FLAGS.root or not FLAGS.segments:
        raise InputError("--root and --segments are required")
    root, out = io.as_path(FLAGS.root), io.as_path(FLAGS.segments)
    for path in (root, out):
        io.reach(path)
    if FLAGS.merge:
        manifest = merge(source, root, out, config)
    else:
        manifest = build(source, root, out, config, workers=FLAGS.workers,
                         num_shards=FLAGS["num-shards"].value,
                         shard_index=FLAGS["shard-index"].value)
    if manifest is not None:
        summarise(out, manifest)


def summarise(out: Path | epath.Path, manifest: dict) -> None:
    """Prints what a build holds: segments, performances, hours, stats, motion-only and skipped
    performances."""
    counts = manifest["counts"]
    print(f"{out}: {counts['segments']} segments from {counts['performances']} "
          f"performances, {counts['hours']:.2f} h; stats {manifest['stats']}")
    silent = segments.motion_only(manifest)
    print(f"{out}: {sum(silent.values())} of {sum(counts['performances'].values())} "
          f"performances motion-only (no music; for the autoencoder, not the DiT): {silent}")
    if manifest["skipped"]:
        print(f"{out}: {len(manifest['skipped'])} inputs skipped for bad input (the manifest's "
              f"\"skipped\" lists them), first: {manifest['skipped'][0]}")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
