r"""Raw dataset -> training segments + manifest.

  python -m data_pipeline.build --source dwm --root ../shared/data/dwm --segments data/dwm \
      [--config configs/base.py] [--config.pose.fps=25]

Every performance is resampled to config.pose.fps, its music analysed on the same frame grid, and
cut into segments of config.pose.segment_frames frames every config.data.segment_stride frames
(see data_pipeline/segments.py for what a segment holds). A performance whose music is missing
(a source gives it no audio_path) is built whole and motion-only: zero music features, has_music
False, "music": false among the manifest's sequences, counted per split in counts.motion_only
and in the printed summary. The build is written beside --segments and swapped in whole, so
--segments never holds half a build. Re-running with the same inputs and settings is a no-op;
other inputs or settings rebuild.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import os
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags

from data_pipeline import segments
from data_pipeline.sources import GENERATED_SOURCES, SOURCES
from data_pipeline.sources.base import SPLITS, Performance
from hotdance_jax import cli
from hotdance_jax.audio import NUM_BASELINE_FEATURES, load_audio, music_features
from hotdance_jax.errors import InputError
from hotdance_jax.io import files_sha256, staged_directory

# The pose settings segments depend on (bins and decoding matter only to later stages).
SEGMENT_POSE_KEYS = ("skeleton", "fps", "segment_frames")

FLAGS = flags.FLAGS


def input_listing(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size in bytes, mtime in ns) of every file under `root`, sorted."""
    listing = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            stat = path.stat()
            listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return sorted(listing)


def fingerprint(source: str, root: Path, config: ml_collections.ConfigDict) -> str:
    """sha256 of everything a build depends on: format, source, settings and input files."""
    depends_on = {
        "format_version": segments.FORMAT_VERSION,
        "source": source,
        "root": str(root.resolve()),
        "pose": {k: config.pose[k] for k in SEGMENT_POSE_KEYS},
        "audio": config.audio.to_dict(),
        "data": config.data.to_dict(),
        "inputs": [] if source in GENERATED_SOURCES else input_listing(root),
    }
    return hashlib.sha256(json.dumps(depends_on, sort_keys=True).encode()).hexdigest()


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


def build(source: str, root: Path, out: Path, config: ml_collections.ConfigDict) -> dict:
    """Builds the segments of `source` under `root` into `out`; returns the manifest."""
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; expected one of {sorted(SOURCES)}")
    if source not in GENERATED_SOURCES and not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    digest = fingerprint(source, root, config)
    if (out / segments.MANIFEST).exists():
        previous = segments.read_manifest(out)
        if previous["fingerprint"] == digest:
            print(f"{out}: up to date ({sum(previous['counts']['segments'].values())} segments)")
            return previous
    elif out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: exists and is not a segment build; choose an empty --segments")

    with staged_directory(out) as staging:
        return _write_build(source, root, staging, config, digest)


def _write_build(
    source: str, root: Path, directory: Path, config: ml_collections.ConfigDict, digest: str
) -> dict:
    """Writes every segment and the manifest into `directory`."""
    stats = collections.Counter()
    writer = segments.SegmentWriter(directory)
    performances, motion_only = collections.Counter(), collections.Counter()
    sequences = []
    data_config = config.data.copy_and_resolve_references()
    with data_config.unlocked():
        data_config.min_frames = config.pose.segment_frames  # sources that cut runs need it
    try:
        for raw in SOURCES[source](root, data_config, stats):
            perf, music = frame_music(segments.resample(raw, config.pose.fps), config)
            count = 0
            for record in segments.cut_segments(
                perf, music, config.pose.segment_frames, config.data.segment_stride
            ):
                writer.write(record)
                count += 1
            performances[perf.split] += 1
            motion_only[perf.split] += not perf.has_music
            stats["performances_too_short"] += count == 0
            sequences.append({"sequence_id": perf.sequence_id, "split": perf.split,
                              "frames": perf.num_frames, "segments": count,
                              "music": perf.has_music, "audio_path": perf.audio_path})
            print(f"  {perf.sequence_id}: {perf.num_frames} frames -> {count} segments"
                  f"{'' if perf.has_music else ' (motion-only: no music)'}")
    finally:
        writer.close()
    if not sequences:
        raise InputError(f"{root}: the {source} source found no performances")
    manifest = {
        "format_version": segments.FORMAT_VERSION,
        "source": source,
        "root": str(root.resolve()),
        "fingerprint": digest,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {"pose": config.pose.to_dict(), "audio": config.audio.to_dict(),
                   "data": config.data.to_dict()},
        "counts": {
            "performances": {s: performances[s] for s in SPLITS},
            "motion_only": {s: motion_only[s] for s in SPLITS},
            "segments": dict(writer.counts),
            "frames": int(sum(s["frames"] for s in sequences)),
            "hours": sum(s["frames"] for s in sequences) / config.pose.fps / 3600,
        },
        "stats": dict(stats),
        "content_hash": files_sha256(sorted(directory.glob("*.array_record"))),
        "sequences": sequences,
    }
    (directory / segments.MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("base")
    flags.DEFINE_string("source", None, f"Data source, one of {sorted(SOURCES)}.")
    flags.DEFINE_string("root", None, "Raw dataset folder (written to for 'synthetic').")
    flags.DEFINE_string("segments", None, "Output folder for the segments and their manifest.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    source = FLAGS.source or config.data.source
    if not FLAGS.root or not FLAGS.segments:
        raise InputError("--root and --segments are required")
    manifest = build(source, Path(FLAGS.root), Path(FLAGS.segments), config)
    counts = manifest["counts"]
    print(f"{FLAGS.segments}: {counts['segments']} segments from {counts['performances']} "
          f"performances, {counts['hours']:.2f} h; stats {manifest['stats']}")
    silent = segments.motion_only(manifest)
    print(f"{FLAGS.segments}: {sum(silent.values())} of {sum(counts['performances'].values())} "
          f"performances motion-only (no music; for the autoencoder, not the DiT): {silent}")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
