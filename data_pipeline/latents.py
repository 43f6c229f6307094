r"""The latent cache: segments encoded once by the frozen autoencoder, read by the training loader.

  python -m data_pipeline.precompute --segments data/dwm --vae onehot-kl \
      --vae-weights runs/vae/onehot_kl.msgpack --latents data/dwm_latents [--config configs/base.py]

One record per segment of every split, and per mirrored copy of a train segment when
config.latents.flip (data_pipeline/precompute.py makes them). A record holds:

  latent (B', T', c) float16: the encoded one-hot image (B bins, T frames) of the segment's poses,
  references (R + 2P, B', T', c) float16: for each N in reference_frames (R values), the
      encoded one-hot image of reference_pose(keypoints, confidence, shape_keypoints,
      shape_confidence, prefix_frames(N, T)); then the same for each of the record's 2P random
      patterns of known frames (P = keyframe_patterns of each kind in KEYFRAME_KINDS),
  keyframe_known (2P, T) bool: those patterns (pose/reference.py random_known_frames, drawn from
      the record's sequence_id, start_frame and flipped),
  music (T, D) float32, keypoints (T, K, 2) float32 pixels, confidence (T, K), shape_keypoints
      (K, 2), shape_confidence (K,): the segment's own (mirrored with the latent when flipped),
  sequence_id, split, source, start_frame, flipped, audio_path, audio_offset (s), fps, width,
      height (pixels).

Records are msgpack dicts (as segments are) in ArrayRecord shards `latents-<split>-NNNNN`, at
most config.latents.records_per_shard each. The manifest (manifest.json) records the settings
the latents were made with (`settings`: VAE name, bins, fps, T, flip, reference frames, dtype),
the VAE (name, weights sha256, stride, channels), the latent shape, per-channel `scale` and
`shift` that make the train latents zero-mean unit-variance as (latent - shift) * scale (and
`music_scale`, `music_shift` the same for the music features' columns), counts
and shards per split, the number of `parts` it was made in (precompute.py's docstring), the
segment build it came from (folder, fingerprint, content hash), a content hash over the shards'
names and sha256, and a fingerprint of everything the latents depend on. The mask of N
reference frames, reference_mask(prefix_frames(N, T), B', stride), follows from N and is not
stored.

Storage is float16: half of float32, and its relative precision (2^-11 = 5e-4) is far below the
autoencoder's own reconstruction error; float16 keeps 3 more mantissa bits than bfloat16, and a
latent outside its range (|x| > 65504) is refused when the cache is made.

Reference latents are precomputed for a fixed set of N, not encoded inside the train step.
(a) The frozen encoder's cost, measured on this 2-core CPU (randomly initialised onehot-kl,
posterior mean, jitted; batch 16 at tiny shapes, 2 at base; FLOPs from XLA's cost analysis;
`python bench/loader.py --encoder` repeats it):

  shape (B x T)   encoder blocks        GFLOP/segment   ms/segment (CPU)
  64 x 64         (32, 64, 64, 64)          0.45              23
  64 x 64         (64, 128, 256, 256)       4.2               78
  512 x 256       (64, 128, 256, 256)     144              4,700

In the train step that is one more encoder pass per example, on every step of every epoch: 144
GFLOP at the paper's shapes, a third of an estimated DiT-B/2 train step on 512 + 32 tokens (6 x
130 M x 544 = 420 GFLOP; the DiT is not written yet), at least 0.15 ms per example even at an
H100's peak bf16 rate. (b) Precomputing R values of N stores R x B' x T' x c x 2 bytes per
record: 64 KiB per N at base (64 x 32 x 16; 2 KiB at tiny shapes), 384 KiB for the default six
N = (0, 8, 16, 24, 32, 64), 537 KiB per record with the latent, music and keypoints. The
Dance-with-Melody build at base (395 train segments, mirrored, and 143 val/test: 933 records)
takes 0.5 GB and 933 x 7 encoder passes once (940 TFLOP); AIST++'s 5.2 h about 9 GB. Precomputing
wins; the price is that N comes from that set (the sampler needs N = 0 for the first segment
and N = 16, the overlap, for the next ones; both are in it).
"""

from __future__ import annotations

from pathlib import Path

import grain
import ml_collections
import numpy as np

from data_pipeline import segments
from hotdance_jax import io
from hotdance_jax.errors import InputError

MANIFEST = "manifest.json"
FORMAT = "hotdance-latents"
FORMAT_VERSION = 2
DTYPE = "float16"
REBUILD = "re-run python -m data_pipeline.precompute"


def cache_settings(config: ml_collections.ConfigDict, vae_name: str) -> dict:
    """The settings a cache is made with (JSON types); it serves only configs equal in these."""
    settings = {
        "vae": vae_name,
        "skeleton": config.pose.skeleton,
        "bins": config.pose.bins,
        "fps": float(config.pose.fps),
        "segment_frames": config.pose.segment_frames,
        "flip": bool(config.latents.flip),
        "reference_frames": [int(n) for n in config.latents.reference_frames],
        "dtype": DTYPE,
    }
    if config.latents.keyframe_patterns:  # absent from caches of the paper's prefixes only
        settings["keyframe_patterns"] = int(config.latents.keyframe_patterns)
    if config.pose.hand_zoom:  # absent from caches of hands in the frame's coordinates
        settings["hand_zoom"] = float(config.pose.hand_zoom)
    if config.latents.refine_steps:  # absent from caches of the encoder's latents
        settings["refine"] = {"steps": int(config.latents.refine_steps),
                              "target_sigma": float(config.vae.train.target_sigma)}
    return settings


def shard_name(split: str, index: int) -> str:
    return f"latents-{split}-{index:05d}.array_record"


def read_manifest(directory: str | Path) -> dict:
    """The manifest of a latent cache (a local folder or a gs:// URI); InputError when it is
    missing, unreadable or outdated."""
    path = io.as_path(directory) / MANIFEST
    return io.read_manifest(path, "latent cache", FORMAT_VERSION, REBUILD, FORMAT)


def check_settings(directory: str | Path, manifest: dict, config: ml_collections.ConfigDict):
    """InputError naming the first setting in which the cache differs from `config` (a setting
    only one of them has counts as a difference)."""
    settings, made_with = cache_settings(config, config.vae.name), manifest["settings"]
    for key in [*settings, *(key for key in made_with if key not in settings)]:
        made, wanted = made_with.get(key), settings.get(key)
        if made != wanted:
            raise InputError(f"{directory}: latents made with {key} = {made!r}, the config has "
                             f"{wanted!r}; {REBUILD}")


def scale_shift(manifest: dict, field: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 scale and shift: (x - shift) * scale is normalised. field "" gives the
    latents' (c,), "music" the music features' (D,)."""
    prefix = f"{field}_" if field else ""
    return (np.asarray(manifest[prefix + "scale"], np.float32),
            np.asarray(manifest[prefix + "shift"], np.float32))


class LatentStore:
    """Random access to the records of one split of a latent cache (a grain data source).

    Picklable, so grain worker processes can read it.
    """

    def __init__(self, directory: str | Path, split: str = "train"):
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        expected = self.manifest["counts"].get(split, 0)
        if expected == 0:
            raise InputError(f"{self.directory}: the cache has no {split!r} records")
        paths = [self.directory / name for name in self.manifest["shards"][split]]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise InputError(f"{missing[0]}: missing latent shard listed in the manifest")
        try:
            self._source = grain.sources.ArrayRecordDataSource([str(p) for p in paths])
        except RuntimeError:
            raise InputError(f"{self.directory}: a {split} latent shard is unreadable (truncated "
                             f"or corrupt); {REBUILD}") from None
        if len(self._source) != expected:
            raise InputError(f"{self.directory}: {len(self._source)} {split} records, the "
                             f"manifest says {expected}; {REBUILD}")

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        return segments.deserialize(self._source[index])
