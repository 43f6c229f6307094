r"""Segment build -> latent cache: one-hot images encoded once by the frozen autoencoder, in parts,
over processes and hosts.

  python -m data_pipeline.precompute --segments data/dwm --vae onehot-kl \
      --vae-weights runs/vae/onehot_kl.msgpack --latents data/dwm_latents [--config configs/base.py]
  python -m data_pipeline.precompute --segments data/wild --vae-weights VAE \
      --latents data/wild_latents --num-shards 8 --shard-index I   # on host I of 8, then,
  python -m data_pipeline.precompute --segments data/wild --vae-weights VAE \
      --latents data/wild_latents --merge                # on one host, once all are done

A grain pipeline reads the segments of every split of the build (for the train split, when
config.latents.flip, then a mirrored copy of each). For each batch, the one-hot images (bins
config.pose.bins, frame size from each record) of the poses and of the reference poses for every
N in config.latents.reference_frames are made on the devices and encoded by the frozen
autoencoder, config.latents.batch_size segments per device at a time; with
config.latents.refine_steps > 0 (onehot-kl) the poses' latents, not the references', are then
refined by that many Adam steps on the decoder's fit (vae.onehot_kl.refine_latents). The
sampler encodes only references, so it encodes as the cache did. data_pipeline/latents.py
describes the records and the manifest. A build with motion-only performances (music missing at
build time) is refused: the DiT learns poses from music.
--vae and --vae-weights default to config.vae.name and config.vae.weights; `--vae raw-coords`
(the raw-coordinate ablation) takes no weights.

Parts. The records of a split (its segments, then their mirrored copies) are cut, in that order,
into parts of config.latents.records_per_shard records, numbered over the splits in
train/val/test order: what they are does not depend on how the precompute runs. Part p encodes
its records into one shard, latents-SPLIT-NNNNN.array_record (the name and records the cache
lists), then writes part-p.json into the work folder LATENTS.parts beside --latents: its shard
(records, bytes, sha256) and, for a train part, the float64 sums the normalisation needs (count,
sum and sum of squares per latent channel and per music feature; the mean dancer's sums). The
shards hold raw latents, which do not depend on the other parts; `scale` and `shift` (and the
music's, and the mean dancer) live only in the manifest, which the merge makes by adding up
the parts' sums in part order: exactly the statistics of the union, the same however it ran.
--num-shards N --shard-index I encodes only the parts p with p % N == I, on this process's own
devices (no jax.distributed: one process per host, each encoding its share), and stops; --merge,
once every shard's parts are in one work folder (copy them there from every host), checks that
all parts are there and were made from these segments, weights and settings, writes the
manifest and swaps the shards in as --latents (it takes the other flags of the shards' runs). A
run without --num-shards merges by itself. One process or N hosts write the same records and
the same manifest but for "created" (byte for byte in the runs measured; a process with another
number of devices may round a latent to float16 otherwise, which moves the content hash). There
is no --workers: one process already encodes on all of its host's devices.

Resume. A part whose part-p.json is in the work folder, made from the same segments, weights
and settings, with its shard whole, is not encoded again: an interrupted precompute, run again,
goes on from the parts it finished. A part that fails (a latent outside float16, a full disk,
...) is named in one line when the others are done, with a non-zero exit; the finished parts
stay for the resume.

The cache is staged beside --latents and swapped in whole, so --latents never holds half a
cache; re-running with the same segments, weights and settings is a no-op, anything else
rebuilds it. docs/data_at_scale.md has the commands and the measured throughput.

Cloud storage. --segments, --latents and --vae-weights each take a local path or a gs:// URI
(etils.epath and gcsfs, as data_pipeline/build.py's docstring says); local paths take the code
path they always took. ArrayRecord opens only local files, so a gs:// segment build is read from
a local copy, under $TMPDIR and removed at the end, of its manifest and the shards of the splits
this process encodes (all of them for one process: the disk must hold the segment build), and
gs:// weights from a local copy (the manifest names the URI). A gs:// --latents has its work
folder LATENTS.parts in the same bucket (shards uploaded, then part files: the resume works
there and the hosts of --num-shards share it), and the merge swaps the cache in as the build's
does: the old manifest removed first, the shards copied in, the manifest written last, so a
folder without its manifest, which every reader here takes for absent, is all that a merge cut
short leaves. A gs:// path whose storage cannot be reached ends the command with one line
naming it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import sys
import time
import traceback
import zlib
from collections.abc import Iterator
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import app, flags
from array_record.python import array_record_data_source, array_record_module
from etils import epath

from data_pipeline import build, latents, segments
from data_pipeline.sources.base import SPLITS
from hotdance_jax import cli, io
from hotdance_jax.errors import InputError
from hotdance_jax.io import files_sha256, staged_directory
from hotdance_jax.pose import (
    KEYFRAME_KINDS,
    flip_horizontal,
    prefix_frames,
    random_known_frames,
    reference_images,
)
from hotdance_jax.vae import (
    RAW_COORDS,
    Autoencoder,
    Refinement,
    image_channels,
    load_autoencoder,
)

FLAGS = flags.FLAGS
POSE_FIELDS = ("keypoints", "confidence", "shape_keypoints", "shape_confidence", "width", "height")
PART = "part-{:05d}.json"


def fingerprint(segment_manifest: dict, autoencoder: Autoencoder, settings: dict) -> str:
    """sha256 of everything the latents depend on: format, settings, VAE weights and segments."""
    depends_on = {
        "format_version": latents.FORMAT_VERSION,
        "settings": settings,
        "vae": vae_info(autoencoder),
        "segments": segment_manifest["content_hash"],
    }
    return _sha256(depends_on)


def vae_info(autoencoder: Autoencoder) -> dict:
    """The autoencoder's identity (what the latents depend on; its file's path is not)."""
    return {"name": autoencoder.name, "weights_sha256": autoencoder.weights_sha256,
            "stride": list(autoencoder.stride), "latent_channels": autoencoder.latent_channels}


@dataclasses.dataclass(frozen=True)
class Part:
    """Part `index` of a cache: records [start, stop) of `split`, its shard number `shard`."""

    index: int
    split: str
    shard: int
    start: int
    stop: int

    def name(self) -> str:
        return latents.shard_name(self.split, self.shard)

    def describe(self) -> str:
        if self.stop - self.start == 1:
            return f"{self.split} record {self.start}"
        return f"{self.split} records {self.start}-{self.stop - 1}"


def plan(segment_manifest: dict, config: ml_collections.ConfigDict) -> list[Part]:
    """The parts of the cache of a segment build, in order."""
    size = int(config.latents.records_per_shard)
    if size < 1:
        raise InputError(f"config.latents.records_per_shard: {size}; expected >= 1")
    parts = []
    for split in SPLITS:
        total = segment_manifest["counts"]["segments"].get(split, 0) * (
            2 if _flipped(config, split) else 1)
        for shard, start in enumerate(range(0, total, size)):
            parts.append(Part(len(parts), split, shard, start, min(start + size, total)))
    return parts


def _flipped(config: ml_collections.ConfigDict, split: str) -> bool:
    return bool(config.latents.flip) and split == "train"


def part_digest(digest: str, part: Part, config: ml_collections.ConfigDict) -> str:
    """sha256 of what part `part` of the cache of fingerprint `digest` depends on."""
    return _sha256({"fingerprint": digest, "seed": int(config.seed), "part": [
        part.index, part.split, part.start, part.stop]})


def _sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def precompute(
    segments_dir: Path | epath.Path, autoencoder: Autoencoder, out: Path | epath.Path,
    config: ml_collections.ConfigDict, *, num_shards: int = 1, shard_index: int = 0,
) -> dict | None:
    """Encodes the segment build `segments_dir` into the cache `out`; returns its manifest. With
    num_shards > 1, encodes only the parts of shard `shard_index` into the work folder and
    returns None (`merge` finishes the cache)."""
    if not (num_shards >= 1 and 0 <= shard_index < num_shards):
        raise InputError(f"--num-shards {num_shards}, --shard-index {shard_index}: expected "
                         "0 <= shard index < shards")
    _, digest, parts = _prepare(segments_dir, autoencoder, out, config)
    previous = _existing_manifest(out) if num_shards == 1 else {}
    if previous.get("fingerprint") == digest and _intact(out, previous):
        print(f"{out}: up to date ({sum(previous['counts'].values())} records)")
        return previous
    work = build.work_folder(out)
    io.make_folder(work)
    mine = [part for part in parts if part.index % num_shards == shard_index]
    failures = _encode_parts(mine, len(parts), digest, segments_dir, autoencoder, work, config)
    if failures:
        _fail(failures, parts, work, alone=num_shards == 1)
    if num_shards == 1:
        return merge(segments_dir, autoencoder, out, config)
    print(f"{work}: shard {shard_index} of {num_shards} made; when every shard is, run the same "
          "command with --merge instead of --num-shards and --shard-index")
    return None


def _prepare(segments_dir: Path | epath.Path, autoencoder: Autoencoder, out: Path | epath.Path,
             config: ml_collections.ConfigDict) -> tuple[dict, str, list[Part]]:
    """(segment manifest, fingerprint, parts) of the cache `out` of `segments_dir`; InputError
    for segments the cache cannot be made of, or an `out` that is not a cache."""
    segment_manifest = segments.read_manifest(segments_dir)
    _check_segments(segments_dir, segment_manifest, config)
    _existing_manifest(out)
    settings = latents.cache_settings(config, autoencoder.name)
    digest = fingerprint(segment_manifest, autoencoder, settings)
    return segment_manifest, digest, plan(segment_manifest, config)


def _check_segments(directory: Path, manifest: dict, config: ml_collections.ConfigDict) -> None:
    """InputError unless every performance of the build has music and it has train segments of
    the config's skeleton, fps and length."""
    segments.require_music(directory, manifest, SPLITS, "the latent cache of the DiT")
    if not manifest["counts"]["segments"].get("train"):
        raise InputError(f"{directory}: no train segments to normalise the latents by")
    segments.require_pose(directory, manifest, config.pose)


def _existing_manifest(out: Path | epath.Path) -> dict:
    """The manifest of the latent cache in `out`, {} when `out` is absent or empty (or holds
    only the shards of a swap into a bucket cut short); InputError when `out` holds anything
    else (a segment build, say)."""
    if not out.exists() or not any(out.iterdir()) or build.unfinished_swap(out, "latents-"):
        return {}
    try:
        manifest = json.loads((out / latents.MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != latents.FORMAT:
        raise InputError(f"{out}: exists and is not a latent cache; choose an empty --latents")
    return manifest


def _intact(out: Path | epath.Path, manifest: dict) -> bool:
    """Whether every split of the cache in `out` opens and holds the records its manifest lists
    (of a cloud cache: whether every shard it lists is there)."""
    if io.is_remote(out):
        return all((out / name).exists() for names in manifest["shards"].values()
                   for name in names)
    try:
        for split in manifest["counts"]:
            latents.LatentStore(out, split)
    except InputError:
        return False
    return True


def _finished(work: Path | epath.Path, part: Part, digest: str) -> dict | None:
    """The part's part file when it was made with part digest `digest` and its shard is there,
    whole; else None."""
    try:
        result = json.loads((work / PART.format(part.index)).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if result["digest"] != digest or not io.is_whole(work / result["shard"]["name"],
                                                     result["shard"]["bytes"]):
        return None
    return result


def _encode_parts(mine: list[Part], total: int, digest: str, segments_dir: Path | epath.Path,
                  autoencoder: Autoencoder, work: Path | epath.Path,
                  config: ml_collections.ConfigDict) -> dict[int, BaseException]:
    """Encodes the parts of `mine` (of `total`) not finished in `work` one after another,
    printing a line as each ends; returns the failed ones' exceptions by part index. A cloud
    segment build is read from a local copy of the splits the parts need (_local_segments)."""
    todo = [part for part in mine
            if _finished(work, part, part_digest(digest, part, config)) is None]
    print(f"{work}: {total} parts, {len(mine) - len(todo)} of this shard's {len(mine)} made "
          "before")
    failures = {}
    bar = tqdm.tqdm(total=sum(p.stop - p.start for p in todo), unit="record", desc="latents",
                    leave=False, disable=None)
    with bar, _local_segments(segments_dir, {part.split for part in todo}) as local:
        for part in todo:
            start = time.perf_counter()
            try:
                encode_part(part, part_digest(digest, part, config), local, autoencoder, work,
                            config, bar)
            except Exception as e:  # named with the part when the others are done
                failures[part.index] = e
                tqdm.tqdm.write(f"  part {part.index} of {total}: failed")
                continue
            tqdm.tqdm.write(f"  part {part.index} of {total} ({part.describe()}): "
                            f"{part.stop - part.start} records in "
                            f"{time.perf_counter() - start:.1f} s")
    return failures


def _fail(failures: dict[int, BaseException], parts: list[Part], work: Path | epath.Path,
          alone: bool) -> None:
    """One line naming the parts that failed. The work folder stays when it holds finished parts
    (for the resume) or other shards may be writing into it (not `alone`), else it goes."""
    if alone and not any(work.glob("part-*.json")):
        io.remove_tree(work)
    for error in failures.values():
        if not isinstance(error, InputError | OSError):
            traceback.print_exception(error, file=sys.stderr)
    first = min(failures)
    raise InputError(
        f"{len(failures)} of {len(parts)} parts failed ({build._ranges(sorted(failures))}); part "
        f"{first} ({parts[first].describe()}): {type(failures[first]).__name__}: "
        f"{failures[first]}; the finished parts stay in {work}: run again to resume")


@contextlib.contextmanager
def _local_segments(segments_dir: Path | epath.Path, splits: set[str]) -> Iterator[Path]:
    """The segment build itself when it is local; of a cloud build, a local copy (under
    $TMPDIR, removed afterwards) of its manifest and the shards of `splits`: ArrayRecord reads
    only local files."""
    if not io.is_remote(segments_dir):
        yield segments_dir
        return
    shards = segments.read_manifest(segments_dir)["shards"]
    with io.local_folder(segments_dir) as local:
        for name in (segments.MANIFEST, *(n for split in SPLITS if split in splits
                                          for n in shards[split])):
            io.download(segments_dir / name, local / name)
        yield local


def encode_part(part: Part, digest: str, segments_dir: Path, autoencoder: Autoencoder,
                work: Path | epath.Path, config: ml_collections.ConfigDict,
                bar: tqdm.tqdm | None = None) -> dict:
    """Encodes one part of the local segment build `segments_dir` into `work`: its shard
    (atomically; into a cloud work folder, written locally and uploaded), then its part file;
    returns what that holds."""
    with io.local_folder(work) as folder:
        path = folder / part.name()
        result = _encode_shard(part, digest, segments_dir, autoencoder, path, config, bar)
        if io.is_remote(work):
            io.upload(path, work / path.name)
    io.write_text(work / PART.format(part.index), json.dumps(result))
    return result


def _encode_shard(part: Part, digest: str, segments_dir: Path, autoencoder: Autoencoder,
                  path: Path, config: ml_collections.ConfigDict, bar: tqdm.tqdm | None) -> dict:
    """Encodes one part into the shard `path`, atomically; returns what its part file holds."""
    bins, hand_zoom = config.pose.bins, config.pose.hand_zoom
    batch_size = config.latents.batch_size * jax.device_count()
    train = part.split == "train"
    moments, music_moments, dancer = _Moments(), _Moments(), _MeanDancer()
    with io.atomic_path(path) as tmp:
        writer = array_record_module.ArrayRecordWriter(str(tmp), "group_size:1")
        try:
            for batch in _segment_batches(segments_dir, part, _flipped(config, part.split),
                                          batch_size):
                known = _known_frames(batch, config, batch_size)
                encoded = _encode(autoencoder, batch, known, bins, hand_zoom, batch_size)
                if train:
                    moments.add(encoded[0])
                    music_moments.add(np.stack([record["music"] for record in batch]))
                    for record in batch:
                        dancer.add(record)
                for i, record in enumerate(batch):
                    patterns = known[1 + len(config.latents.reference_frames):, i]
                    writer.write(segments.serialize(
                        {**record, "latent": encoded[0, i], "references": encoded[1:, i],
                         **({"keyframe_known": patterns} if len(patterns) else {})}))
                if bar is not None:
                    bar.update(len(batch))
        finally:
            writer.close()
    result = {"part": part.index, "digest": digest, "split": part.split,
              "records": [part.start, part.stop],
              "shard": {"name": path.name, "records": part.stop - part.start,
                        "bytes": path.stat().st_size, "sha256": files_sha256([path])}}
    if train:
        result.update(latent_moments=moments.state(), music_moments=music_moments.state(),
                      mean_dancer=dancer.state())
    return result


# ---------------------------------------------------------------- merging


def merge(segments_dir: Path | epath.Path, autoencoder: Autoencoder, out: Path | epath.Path,
          config: ml_collections.ConfigDict) -> dict:
    """Swaps the parts in the work folder of `out` in as the cache `out`, with the manifest;
    returns it. InputError naming the parts that are missing or were made from other segments,
    weights or settings. A cloud `out` gets the shards copied in from the work folder and the
    manifest last (io.publish_folder)."""
    segment_manifest, digest, parts = _prepare(segments_dir, autoencoder, out, config)
    work = build.work_folder(out)
    results = [_merge_part(work, part, part_digest(digest, part, config)) for part in parts]
    missing = [part.index for part, result in zip(parts, results, strict=True) if result is None]
    if missing:
        raise InputError(f"{work}: {len(missing)} of {len(parts)} parts not made "
                         f"({build._ranges(missing)}); precompute their shards (or run without "
                         "--merge)")
    manifest = _manifest(segments_dir, segment_manifest, autoencoder, config, results)
    manifest["fingerprint"] = digest
    if io.is_remote(out):
        io.publish_folder(out, {r["shard"]["name"]: work / r["shard"]["name"] for r in results},
                          latents.MANIFEST, json.dumps(manifest, indent=1))
    else:
        with staged_directory(out) as staging:
            for result in results:
                os.link(work / result["shard"]["name"], staging / result["shard"]["name"])
            (staging / latents.MANIFEST).write_text(json.dumps(manifest, indent=1))
    io.remove_tree(work)
    return manifest


def _merge_part(work: Path | epath.Path, part: Part, digest: str) -> dict | None:
    """The part's part file, or None when it has none; InputError when it is of another cache or
    its shard is missing."""
    path = work / PART.format(part.index)
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result["digest"] != digest:
        raise InputError(f"{path}: made from other segments, weights or settings than this "
                         "cache's; run its shard again")
    shard = work / result["shard"]["name"]
    if not io.is_whole(shard, result["shard"]["bytes"]):
        raise InputError(f"{shard}: missing or incomplete; run the shard of part {part.index} "
                         "again")
    return result


def _manifest(segments_dir: Path | epath.Path, segment_manifest: dict, autoencoder: Autoencoder,
              config: ml_collections.ConfigDict, results: list[dict]) -> dict:
    """The manifest, less its fingerprint, from the parts' results in part order: the sums of
    the train parts give the statistics of the whole train split."""
    moments, music_moments, dancer = _Moments(), _Moments(), _MeanDancer()
    counts, shards = {}, {}
    for result in results:
        split, shard = result["split"], result["shard"]
        counts[split] = counts.get(split, 0) + shard["records"]
        shards.setdefault(split, []).append(shard["name"])
        if split == "train":
            moments.merge(result["latent_moments"])
            music_moments.merge(result["music_moments"])
            dancer.merge(result["mean_dancer"])
    scale, shift = moments.scale_shift()
    music_scale, music_shift = music_moments.scale_shift()
    example = _first_train_segment(segments_dir, segment_manifest)
    stride, bins = autoencoder.stride, config.pose.bins
    return {
        "format": latents.FORMAT,
        "format_version": latents.FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": latents.cache_settings(config, autoencoder.name),
        "vae": vae_info(autoencoder),
        "vae_weights": autoencoder.weights,
        "latent_shape": [bins // stride[0], config.pose.segment_frames // stride[1],
                         autoencoder.latent_channels],
        "keypoints": example["keypoints"].shape[1],
        "music_features": example["music"].shape[1],
        "scale": scale.tolist(),
        "shift": shift.tolist(),
        "music_scale": music_scale.tolist(),
        "music_shift": music_shift.tolist(),
        "mean_dancer": dancer.summary(),
        "counts": counts,
        "shards": shards,
        "parts": len(results),
        "segments": {"directory": io.resolved(segments_dir),
                     "fingerprint": segment_manifest["fingerprint"],
                     "content_hash": segment_manifest["content_hash"]},
        "content_hash": _sha256([[r["shard"]["name"], r["shard"]["sha256"]] for r in results]),
    }


def _first_train_segment(segments_dir: Path | epath.Path, segment_manifest: dict) -> dict:
    """The build's first train segment (the manifest takes its shapes); of a cloud build, read
    from a local copy of its first train shard alone."""
    if not io.is_remote(segments_dir):
        return segments.SegmentStore(segments_dir, "train")[0]
    name = segment_manifest["shards"]["train"][0]
    with io.local_folder(segments_dir) as local:
        io.download(segments_dir / name, local / name)
        with array_record_data_source.ArrayRecordDataSource([str(local / name)]) as source:
            return segments.deserialize(source[0])


def _segment_batches(directory: Path, part: Part, flip: bool, batch_size: int
                     ) -> grain.IterDataset:
    """Lists of up to `batch_size` of the records of `part`: of the split's records (every
    segment, then, with `flip`, every segment mirrored; each record gains `flipped`), those from
    part.start to part.stop."""
    source = grain.MapDataset.source(segments.SegmentStore(directory, part.split))
    copies = [source.map(_unflipped)] + ([source.map(_mirrored)] if flip else [])
    return (grain.MapDataset.concatenate(copies)[part.start:part.stop]
            .batch(batch_size, batch_fn=list)
            .to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)))


def _unflipped(record: dict) -> dict:
    return {**record, "flipped": False}


def _mirrored(record: dict) -> dict:
    """The record as a mirrored video would show it: poses and shape pose flipped, music kept."""
    keypoints, confidence = flip_horizontal(record["keypoints"], record["confidence"],
                                            record["width"])
    shape_keypoints, shape_confidence = flip_horizontal(
        record["shape_keypoints"], record["shape_confidence"], record["width"])
    return {**record, "keypoints": keypoints, "confidence": confidence,
            "shape_keypoints": shape_keypoints, "shape_confidence": shape_confidence,
            "flipped": True}


def _known_frames(batch: list[dict], config: ml_collections.ConfigDict, size: int
                  ) -> np.ndarray:
    """(1 + R + 2P, size, T) bool, the known frames of every reference image of the b records
    (padded to `size` by repeating the last): all T (the latent itself), the first N for each N
    of config.latents.reference_frames, then each record's P random patterns of each kind in
    KEYFRAME_KINDS, drawn from its sequence_id, start_frame and flipped."""
    frames = config.pose.segment_frames
    prefixes = [prefix_frames(n, frames) for n in (frames, *config.latents.reference_frames)]
    index = np.minimum(np.arange(size), len(batch) - 1)
    patterns = []
    for i in index:
        record = batch[i]
        rng = np.random.default_rng([config.seed, zlib.crc32(record["sequence_id"].encode()),
                                     int(record["start_frame"]), int(record["flipped"])])
        patterns.append([random_known_frames(rng, frames, kind) for kind in KEYFRAME_KINDS
                         for _ in range(config.latents.keyframe_patterns)])
    patterns = np.asarray(patterns, bool).reshape(size, -1, frames).transpose(1, 0, 2)
    return np.concatenate([np.broadcast_to(np.stack(prefixes)[:, None], (len(prefixes), size,
                                                                        frames)), patterns])


def _encode(autoencoder: Autoencoder, batch: list[dict], known: np.ndarray, bins: int,
            hand_zoom: float, size: int) -> np.ndarray:
    """(R, b, B', T', c) float16: latents of the reference images (`bins`, `hand_zoom`:
    onehot.encode's) of the b records for each of the R sets of known frames `known` (R, size,
    T); the first set's (the poses themselves) refined when the autoencoder was loaded with a
    Refinement. The batch is padded to `size` (repeating its last record), so every batch runs
    one compiled program."""
    index = np.minimum(np.arange(size), len(batch) - 1)
    poses = [np.stack([batch[i][field] for i in index]) for field in POSE_FIELDS]
    encoded = []
    for i, k in enumerate(known):
        images = reference_images(*poses, k, bins=bins, hand_zoom=hand_zoom)
        latent = autoencoder.encode(images)
        refine = i == 0 and autoencoder.refine_fn is not None
        encoded.append(np.asarray(autoencoder.refine(images, latent) if refine else latent))
    encoded = np.stack(encoded)[:, : len(batch)]
    stored = encoded.astype(latents.DTYPE)
    if not np.isfinite(stored).all():
        raise InputError(f"{autoencoder.name}: latents not finite or outside the {latents.DTYPE} "
                         "range")
    return stored


class _Sums:
    """Sums that a part accumulates over its records and the merge adds up over the parts."""

    def state(self) -> dict:
        """The sums as JSON (float64 values round-trip exactly)."""
        return {key: np.asarray(value).tolist() for key, value in vars(self).items()}


class _Moments(_Sums):
    """Per-channel mean and standard deviation of arrays (..., c), accumulated in float64."""

    def __init__(self):
        self.count, self.sum, self.sum_sq = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        x = values.astype(np.float64).reshape(-1, values.shape[-1])
        self.merge({"count": len(x), "sum": x.sum(axis=0), "sum_sq": (x**2).sum(axis=0)})

    def merge(self, state: dict) -> None:
        """Adds the sums of another _Moments' state()."""
        self.count += state["count"]
        self.sum = self.sum + np.asarray(state["sum"], np.float64)
        self.sum_sq = self.sum_sq + np.asarray(state["sum_sq"], np.float64)

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) with (x - shift) * scale zero-mean and unit-variance per channel (a
        constant channel gets scale 1e6 and normalises to 0)."""
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.sum_sq / self.count - mean**2, 0.0))
        return 1.0 / np.maximum(std, 1e-6), mean


class _MeanDancer(_Sums):
    """The mean shape pose of the train records, in fractions of the frame (x / width, y /
    height): the sampler's dancer when the user gives no reference pose."""

    def __init__(self):
        self.sum, self.seen, self.confidence, self.count = 0.0, 0.0, 0.0, 0
        self.frame = None

    def add(self, record: dict) -> None:
        size = np.array([record["width"], record["height"]], np.float64)
        visible = record["shape_confidence"] > 0
        self.merge({"sum": np.where(visible[:, None], record["shape_keypoints"] / size, 0.0),
                    "seen": visible, "confidence": record["shape_confidence"], "count": 1,
                    "frame": [int(record["width"]), int(record["height"])]})

    def merge(self, state: dict) -> None:
        """Adds the sums of another _MeanDancer's state(); the frame stays the first one's."""
        self.sum = self.sum + np.asarray(state["sum"], np.float64)
        self.seen = self.seen + np.asarray(state["seen"], np.float64)
        self.confidence = self.confidence + np.asarray(state["confidence"], np.float64)
        self.count += state["count"]
        self.frame = self.frame or state["frame"]

    def summary(self) -> dict:
        """{"keypoints": (K, 2) fractions, "confidence": (K,), "frame": [width, height] of the
        first record (pixels)}: joints never seen get 0, 0."""
        keypoints = self.sum / np.maximum(self.seen, 1)[:, None]
        confidence = np.where(self.seen > 0, self.confidence / self.count, 0.0)
        return {"keypoints": keypoints.tolist(), "confidence": confidence.tolist(),
                "frame": self.frame}


def pooling_autoencoder(
    image_channels: int, latent_channels: int, stride: int = 8, seed: int = 0
) -> Autoencoder:
    """A cheap, deterministic stand-in for a trained autoencoder, for tests and benchmarks of the
    cache and the loader: stride x stride mean pooling, then a fixed random 1x1 projection to
    `latent_channels`; decode is its least-squares inverse, upsampled. Its weights_sha256 is
    derived from the seed."""
    projection = jax.random.normal(jax.random.key(seed), (image_channels, latent_channels))
    inverse = jnp.linalg.pinv(projection)

    @jax.jit
    def encode(images):
        n, b, t, c = images.shape
        pooled = images.reshape(n, b // stride, stride, t // stride, stride, c).mean(axis=(2, 4))
        return pooled @ projection

    @jax.jit
    def decode(z):
        return jnp.repeat(jnp.repeat(z @ inverse, stride, axis=1), stride, axis=2)

    weights_sha256 = hashlib.sha256(f"pooling-{seed}".encode()).hexdigest()
    return Autoencoder("pooling", (stride, stride), image_channels, latent_channels,
                       weights_sha256, encode, decode)


def load_weights(name: str, weights: str, config: ml_collections.ConfigDict) -> Autoencoder:
    """load_autoencoder for the config's skeleton and bins, refining the latents as
    config.latents.refine_steps asks; weights in cloud storage (a file or a folder) are loaded
    from a local copy, removed afterwards, and keep their URI as the name the manifest
    records."""
    channels, bins = image_channels(config.pose.skeleton), config.pose.bins
    steps = config.latents.refine_steps
    if not isinstance(steps, int) or steps < 0:
        raise InputError(f"config.latents.refine_steps={steps!r}: expected an integer >= 0")
    refine = Refinement(steps, config.vae.train.target_sigma) if steps else None
    if not io.is_remote(weights):
        return load_autoencoder(name, weights, channels, bins=bins, refine=refine)
    remote = epath.Path(weights)
    with io.local_folder(remote) as local:
        io.download(remote, local / remote.name)
        autoencoder = load_autoencoder(name, str(local / remote.name), channels, bins=bins,
                                       refine=refine)
    return dataclasses.replace(autoencoder, weights=weights)


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("base")
    flags.DEFINE_string("segments", None, "Segment build folder, local or gs:// (python -m "
                        "data_pipeline.build).")
    flags.DEFINE_string("vae", None, "Autoencoder name; default config.vae.name.")
    flags.DEFINE_string("vae-weights", None, "Frozen weights, local or gs://; default "
                        "config.vae.weights (none for raw-coords).")
    flags.DEFINE_string("latents", None, "Output folder, local or gs://, for the latent cache "
                        "and its manifest.")
    flags.DEFINE_integer("num-shards", 1, "Hosts sharing the precompute: this one encodes the "
                         "parts p with p % num-shards == shard-index into LATENTS.parts, then "
                         "stops.")
    flags.DEFINE_integer("shard-index", 0, "This host's shard, 0 .. num-shards - 1.")
    flags.DEFINE_bool("merge", False, "Only merge the parts in LATENTS.parts (every shard's, "
                      "copied there) into --latents and write the manifest.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    name = FLAGS.vae or config.vae.name
    weights = FLAGS["vae-weights"].value or config.vae.weights
    if not FLAGS.segments or not FLAGS.latents or not (weights or name == RAW_COORDS):
        raise InputError("--segments, --latents and --vae-weights (or config.vae.weights) are "
                         "required")
    segments_dir, out = io.as_path(FLAGS.segments), io.as_path(FLAGS.latents)
    for path in (segments_dir, out, weights):
        io.reach(path)
    autoencoder = load_weights(name, weights, config)
    if FLAGS.merge:
        manifest = merge(segments_dir, autoencoder, out, config)
    else:
        manifest = precompute(segments_dir, autoencoder, out, config,
                              num_shards=FLAGS["num-shards"].value,
                              shard_index=FLAGS["shard-index"].value)
    if manifest is not None:
        print(f"{out}: {manifest['counts']} records of latents {manifest['latent_shape']} "
              f"({autoencoder.name}, reference frames "
              f"{manifest['settings']['reference_frames']})")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
