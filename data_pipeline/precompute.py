r"""Segment build -> latent cache: one-hot images encoded once by the frozen autoencoder.

  python -m data_pipeline.precompute --segments data/dwm --vae onehot-kl \
      --vae-weights runs/vae/onehot_kl.msgpack --latents data/dwm_latents [--config configs/base.py]

A grain pipeline reads the segments of every split of the build (for the train split, when
config.latents.flip, then a mirrored copy of each). For each batch, the one-hot images (bins
config.pose.bins, frame size from each record) of the poses and of the reference poses for every
N in config.latents.reference_frames are made on the devices and encoded by the frozen
autoencoder, config.latents.batch_size segments per device at a time. data_pipeline/latents.py
describes the records and the manifest. The cache is written beside --latents and swapped in whole;
re-running with the same segments, weights and settings is a no-op, anything else rebuilds it.
A build with motion-only performances (music missing at build time) is refused: the DiT learns
poses from music.
--vae and --vae-weights default to config.vae.name and config.vae.weights; `--vae raw-coords`
(the raw-coordinate ablation) takes no weights.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
import zlib
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import app, flags

from data_pipeline import latents, segments
from data_pipeline.sources.base import SPLITS
from hotdance_jax import cli
from hotdance_jax.errors import InputError
from hotdance_jax.io import files_sha256, staged_directory
from hotdance_jax.pose import (
    KEYFRAME_KINDS,
    flip_horizontal,
    prefix_frames,
    random_known_frames,
    reference_images,
)
from hotdance_jax.vae import RAW_COORDS, Autoencoder, image_channels, load_autoencoder

FLAGS = flags.FLAGS
POSE_FIELDS = ("keypoints", "confidence", "shape_keypoints", "shape_confidence", "width", "height")


def fingerprint(segment_manifest: dict, autoencoder: Autoencoder, settings: dict) -> str:
    """sha256 of everything the latents depend on: format, settings, VAE weights and segments."""
    depends_on = {
        "format_version": latents.FORMAT_VERSION,
        "settings": settings,
        "vae": vae_info(autoencoder),
        "segments": segment_manifest["content_hash"],
    }
    return hashlib.sha256(json.dumps(depends_on, sort_keys=True).encode()).hexdigest()


def vae_info(autoencoder: Autoencoder) -> dict:
    """The autoencoder's identity (what the latents depend on; its file's path is not)."""
    return {"name": autoencoder.name, "weights_sha256": autoencoder.weights_sha256,
            "stride": list(autoencoder.stride), "latent_channels": autoencoder.latent_channels}


def precompute(
    segments_dir: Path, autoencoder: Autoencoder, out: Path, config: ml_collections.ConfigDict
) -> dict:
    """Encodes the segment build `segments_dir` into the cache `out`; returns its manifest."""
    segment_manifest = segments.read_manifest(segments_dir)
    _check_segments(segments_dir, segment_manifest, config)
    settings = latents.cache_settings(config, autoencoder.name)
    digest = fingerprint(segment_manifest, autoencoder, settings)
    previous = _existing_manifest(out)
    if previous.get("fingerprint") == digest and _intact(out, previous):
        print(f"{out}: up to date ({sum(previous['counts'].values())} records)")
        return previous

    with staged_directory(out) as staging:
        manifest = _write_cache(segments_dir, segment_manifest, autoencoder, staging, config)
        manifest["fingerprint"] = digest
        (staging / latents.MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _check_segments(directory: Path, manifest: dict, config: ml_collections.ConfigDict) -> None:
    """InputError unless every performance of the build has music and it has train segments of
    the config's skeleton, fps and length."""
    segments.require_music(directory, manifest, SPLITS, "the latent cache of the DiT")
    if not manifest["counts"]["segments"].get("train"):
        raise InputError(f"{directory}: no train segments to normalise the latents by")
    segments.require_pose(directory, manifest, config.pose)


def _existing_manifest(out: Path) -> dict:
    """The manifest of the latent cache in `out`, {} when `out` is absent or empty; InputError
    when `out` holds anything else (a segment build, say)."""
    if not out.exists() or not any(out.iterdir()):
        return {}
    try:
        manifest = json.loads((out / latents.MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != latents.FORMAT:
        raise InputError(f"{out}: exists and is not a latent cache; choose an empty --latents")
    return manifest


def _intact(out: Path, manifest: dict) -> bool:
    """Whether every split of the cache in `out` opens and holds the records its manifest lists."""
    try:
        for split in manifest["counts"]:
            latents.LatentStore(out, split)
    except InputError:
        return False
    return True


def _write_cache(
    segments_dir: Path,
    segment_manifest: dict,
    autoencoder: Autoencoder,
    directory: Path,
    config: ml_collections.ConfigDict,
) -> dict:
    """Writes every split's records into `directory`; returns the manifest less its fingerprint."""
    frames, bins = config.pose.segment_frames, config.pose.bins
    batch_size = config.latents.batch_size * jax.device_count()
    moments, music_moments, dancer = _Moments(), _Moments(), _MeanDancer()
    counts, shards = {}, {}
    for split in (s for s in SPLITS if segment_manifest["counts"]["segments"].get(s)):
        start = time.perf_counter()
        writer = latents.ShardWriter(directory, split, config.latents.records_per_shard)
        flip = config.latents.flip and split == "train"
        total = segment_manifest["counts"]["segments"][split] * (2 if flip else 1)
        bar = tqdm.tqdm(total=total, unit="segment", desc=f"latents {split}", leave=False,
                        disable=None)
        try:
            for batch in _segment_batches(segments_dir, split, flip, batch_size):
                known = _known_frames(batch, config, batch_size)
                encoded = _encode(autoencoder, batch, known, bins, batch_size)
                if split == "train":
                    moments.add(encoded[0])
                    music_moments.add(np.stack([record["music"] for record in batch]))
                    for record in batch:
                        dancer.add(record)
                for i, record in enumerate(batch):
                    patterns = known[1 + len(config.latents.reference_frames):, i]
                    writer.write({**record, "latent": encoded[0, i], "references": encoded[1:, i],
                                  **({"keyframe_known": patterns} if len(patterns) else {})})
                bar.update(len(batch))
        finally:
            writer.close()
            bar.close()
        counts[split], shards[split] = writer.count, writer.names
        print(f"  {split}: {writer.count} records in {time.perf_counter() - start:.1f} s")
    scale, shift = moments.scale_shift()
    music_scale, music_shift = music_moments.scale_shift()
    example = segments.SegmentStore(segments_dir, "train")[0]
    stride = autoencoder.stride
    return {
        "format": latents.FORMAT,
        "format_version": latents.FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": latents.cache_settings(config, autoencoder.name),
        "vae": vae_info(autoencoder),
        "vae_weights": autoencoder.weights,
        "latent_shape": [bins // stride[0], frames // stride[1], autoencoder.latent_channels],
        "keypoints": example["keypoints"].shape[1],
        "music_features": example["music"].shape[1],
        "scale": scale.tolist(),
        "shift": shift.tolist(),
        "music_scale": music_scale.tolist(),
        "music_shift": music_shift.tolist(),
        "mean_dancer": dancer.summary(),
        "counts": counts,
        "shards": shards,
        "segments": {"directory": str(segments_dir.resolve()),
                     "fingerprint": segment_manifest["fingerprint"],
                     "content_hash": segment_manifest["content_hash"]},
        "content_hash": files_sha256(sorted(directory.glob("*.array_record"))),
    }


def _segment_batches(directory: Path, split: str, flip: bool, batch_size: int) -> grain.IterDataset:
    """Lists of up to `batch_size` segment records of one split: every segment, then (flip) every
    segment mirrored; each record gains `flipped`."""
    source = grain.MapDataset.source(segments.SegmentStore(directory, split))
    copies = [source.map(_unflipped)] + ([source.map(_mirrored)] if flip else [])
    return (grain.MapDataset.concatenate(copies)
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
            size: int) -> np.ndarray:
    """(R, b, B', T', c) float16: latents of the reference images of the b records for each of
    the R sets of known frames `known` (R, size, T). The batch is padded to `size` (repeating
    its last record), so every batch runs one compiled program."""
    index = np.minimum(np.arange(size), len(batch) - 1)
    poses = [np.stack([batch[i][field] for i in index]) for field in POSE_FIELDS]
    encoded = np.stack([np.asarray(autoencoder.encode(reference_images(*poses, k, bins=bins)))
                        for k in known])[:, : len(batch)]
    stored = encoded.astype(latents.DTYPE)
    if not np.isfinite(stored).all():
        raise InputError(f"{autoencoder.name}: latents not finite or outside the {latents.DTYPE} "
                         "range")
    return stored


class _Moments:
    """Per-channel mean and standard deviation of arrays (..., c), accumulated in float64."""

    def __init__(self):
        self.count, self.sum, self.sum_sq = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        x = values.astype(np.float64).reshape(-1, values.shape[-1])
        self.count += len(x)
        self.sum = self.sum + x.sum(axis=0)
        self.sum_sq = self.sum_sq + (x**2).sum(axis=0)

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) with (x - shift) * scale zero-mean and unit-variance per channel (a
        constant channel gets scale 1e6 and normalises to 0)."""
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.sum_sq / self.count - mean**2, 0.0))
        return 1.0 / np.maximum(std, 1e-6), mean


class _MeanDancer:
    """The mean shape pose of the train records, in fractions of the frame (x / width, y /
    height): the sampler's dancer when the user gives no reference pose."""

    def __init__(self):
        self.sum, self.seen, self.confidence, self.count = 0.0, 0.0, 0.0, 0
        self.frame = None

    def add(self, record: dict) -> None:
        size = np.array([record["width"], record["height"]], np.float64)
        self.frame = self.frame or [int(record["width"]), int(record["height"])]
        visible = record["shape_confidence"] > 0
        self.sum = self.sum + np.where(visible[:, None], record["shape_keypoints"] / size, 0.0)
        self.seen = self.seen + visible
        self.confidence = self.confidence + record["shape_confidence"]
        self.count += 1

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


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("base")
    flags.DEFINE_string("segments", None, "Segment build folder (python -m data_pipeline.build).")
    flags.DEFINE_string("vae", None, "Autoencoder name; default config.vae.name.")
    flags.DEFINE_string("vae-weights", None, "Frozen weights; default config.vae.weights "
                        "(none for raw-coords).")
    flags.DEFINE_string("latents", None, "Output folder for the latent cache and its manifest.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    name = FLAGS.vae or config.vae.name
    weights = FLAGS["vae-weights"].value or config.vae.weights
    if not FLAGS.segments or not FLAGS.latents or not (weights or name == RAW_COORDS):
        raise InputError("--segments, --latents and --vae-weights (or config.vae.weights) are "
                         "required")
    autoencoder = load_autoencoder(name, weights, image_channels(config.pose.skeleton),
                                   bins=config.pose.bins)
    manifest = precompute(Path(FLAGS.segments), autoencoder, Path(FLAGS.latents), config)
    print(f"{FLAGS.latents}: {manifest['counts']} records of latents {manifest['latent_shape']} "
          f"({autoencoder.name}, reference frames {manifest['settings']['reference_frames']})")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
