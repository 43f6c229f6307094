"""The training loader: batches of normalised latents with their reference conditioning (grain).

  batches = iter(train_dataset("data/dwm_latents", config, batch_size=global_batch // processes))
  batch = next(batches)                          # a dict of numpy arrays
  state = batches.get_state(); ...; batches.set_state(state)   # resume exactly there

Saved beside the model with grain.checkpoint.CheckpointSave / CheckpointRestore (orbax).

The train split of a latent cache (data_pipeline/latents.py) -> shuffled with config.seed, in a
new order every epoch -> repeated forever -> per example, N drawn and its reference picked ->
this process's share of the stream, examples process_index, process_index + process_count, ...
(each process reads only those) -> batches of batch_size -> prepared ahead by
config.latents.workers worker processes (0: by threads of this process). A batch holds:

  latent (b, B', T', c) float32: (latent - shift) * scale, the cache's train statistics,
  reference (b, B', T', c) float32: the precomputed reference latent for N, normalised the same,
  mask (b, B', T', stride) float32: reference_mask of the known frames (the first N, or a
      keyframe pattern of the record: config.latents.p_keyframes, p_spans),
  music (b, T, D) float32: the segment's music features, one row per frame, normalised per
      column by the cache's train statistics (music_scale, music_shift),
  num_reference_frames (b,) int32: N, 0 with probability config.latents.p_shape_only, otherwise
      uniform over the cache's other reference frames; -1 for a keyframe pattern,
  example (b,) int32: the example's position in the whole (all processes') stream; the train
      step keys its per-example random draws by it, so they do not depend on which process or
      device holds the example.

The cache must have been made with the config's settings (VAE name, bins, fps, T, flip,
reference frames); another is refused with a one-line InputError.
"""

from __future__ import annotations

import signal
from pathlib import Path

import grain
import jax
import ml_collections
import numpy as np
from absl import flags

from data_pipeline import latents
from hotdance_jax.errors import InputError
from hotdance_jax.pose import prefix_frames, reference_mask


class Conditioning(grain.transforms.RandomMap):
    """A latent record -> one training example (see the module docstring), drawing its
    reference: one of the record's random patterns of a kind in KEYFRAME_KINDS with probability
    p_keyframes or p_spans, else a prefix of N frames."""

    def __init__(self, manifest: dict, latents_config: ml_collections.ConfigDict):
        self.scale, self.shift = latents.scale_shift(manifest)
        self.music_scale, self.music_shift = latents.scale_shift(manifest, "music")
        self.frames = np.asarray(manifest["settings"]["reference_frames"], np.int32)
        self.probabilities = n_probabilities(self.frames, latents_config.p_shape_only)
        self.patterns = manifest["settings"].get("keyframe_patterns", 0)
        self.kinds = np.cumsum([latents_config.p_keyframes, latents_config.p_spans])
        if self.kinds[-1] > 0 and not self.patterns:
            raise InputError(f"config.latents.p_keyframes + p_spans = {self.kinds[-1]:g} but the "
                             "cache has no keyframe patterns (config.latents.keyframe_patterns)")
        if self.kinds[-1] > 1:
            raise InputError(f"config.latents.p_keyframes + p_spans = {self.kinds[-1]:g} > 1")
        self.latent_bins, latent_frames, _ = manifest["latent_shape"]
        self.stride = manifest["vae"]["stride"][1]
        known = np.stack([prefix_frames(n, latent_frames * self.stride) for n in self.frames])
        self.masks = reference_mask(known, self.latent_bins, self.stride)  # (R, B', T', stride)

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        kind = (int(np.searchsorted(self.kinds, rng.random(), side="right"))
                 if self.kinds[-1] > 0 else len(self.kinds))  # prefixes only: as the paper
        if kind < len(self.kinds):  # a random pattern of that kind: N = -1
            j = kind * self.patterns + int(rng.integers(self.patterns))
            i, n = len(self.frames) + j, -1
            mask = reference_mask(record["keyframe_known"][j], self.latent_bins, self.stride)
        else:
            i = rng.choice(len(self.frames), p=self.probabilities)
            n, mask = self.frames[i], self.masks[i]
        return {
            "latent": self.normalise(record["latent"]),
            "reference": self.normalise(record["references"][i]),
            "mask": np.asarray(mask, np.float32),
            "music": (np.asarray(record["music"], np.float32) - self.music_shift)
            * self.music_scale,
            "num_reference_frames": np.int32(n),
        }

    def normalise(self, latent: np.ndarray) -> np.ndarray:
        """(B', T', c) stored latent -> float32, zero-mean unit-variance over the train split."""
        return (latent.astype(np.float32) - self.shift) * self.scale


def n_probabilities(frames: np.ndarray, p_shape_only: float) -> np.ndarray:
    """(R,) probabilities of drawing each N in `frames`: p_shape_only for N = 0, the rest spread
    evenly over the other values."""
    shape_only = frames == 0
    if p_shape_only > 0 and not shape_only.any():
        raise InputError(f"config.latents.p_shape_only = {p_shape_only} but the cache's reference "
                         f"frames {frames.tolist()} have no N = 0")
    weights = np.where(shape_only, p_shape_only / max(shape_only.sum(), 1),
                       (1 - p_shape_only) / max((~shape_only).sum(), 1))
    return weights / weights.sum()


def train_dataset(
    directory: str | Path,
    config: ml_collections.ConfigDict,
    batch_size: int,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.IterDataset:
    """This process's endless stream of training batches of `batch_size` (its share of the
    global batch); process_index/process_count default to jax's."""
    store = open_split(directory, "train", config)
    index, count = _process(process_index, process_count)
    ds = (grain.MapDataset.source(store)
          .seed(config.seed)
          .shuffle()
          .repeat()
          .random_map(Conditioning(store.manifest, config.latents))
          .map_with_index(_numbered)
          [index::count]
          .batch(batch_size, drop_remainder=True))
    if config.latents.workers and not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()  # grain's workers read its absl flags: defaults outside apps
    prefetch = config.latents.prefetch
    threads = grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch)
    workers = grain.MultiprocessingOptions(num_workers=config.latents.workers,
                                           per_worker_buffer_size=prefetch)
    return ds.to_iter_dataset(threads).mp_prefetch(workers, worker_init_fn=leave_sigterm_to_trainer)


def leave_sigterm_to_trainer(worker_index: int, worker_count: int) -> None:
    """grain's worker init: ignore SIGTERM, which a scheduler's preemption sends to every process
    of the job. The trainer takes it, saves its step and stops the workers itself; a worker killed
    by it would leave the trainer waiting for its next batch for ever."""
    del worker_index, worker_count
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def validation_batches(
    directory: str | Path,
    config: ml_collections.ConfigDict,
    batch_size: int,
    split: str = "val",
    *,
    num_batches: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.MapDataset:
    """This process's share of `split`, in order, as batches like train_dataset's. N is drawn
    with config.seed: every pass is the same. num_batches None: one pass (the last batch may be
    smaller); otherwise exactly num_batches full batches, cycling through the split."""
    store = open_split(directory, split, config)
    index, count = _process(process_index, process_count)
    ds = (grain.MapDataset.source(store)
          .seed(config.seed)
          .random_map(Conditioning(store.manifest, config.latents))
          .map_with_index(_numbered))
    if num_batches is not None:
        wanted = num_batches * batch_size * count
        ds = ds.repeat(-(-wanted // len(store)))[:wanted]
    return ds[index::count].batch(batch_size, drop_remainder=num_batches is not None)


def _numbered(index: int, example: dict) -> dict:
    return {**example, "example": np.int32(index % 2**31)}


def open_split(
    directory: str | Path, split: str, config: ml_collections.ConfigDict
) -> latents.LatentStore:
    """The split's records; InputError if the cache is unreadable or made with other settings."""
    store = latents.LatentStore(directory, split)
    latents.check_settings(directory, store.manifest, config)
    return store


def _process(index: int | None, count: int | None) -> tuple[int, int]:
    return (jax.process_index() if index is None else index,
            jax.process_count() if count is None else count)
