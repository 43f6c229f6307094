"""How fast the training loader delivers batches, beside what the train step consumes.

  python bench/loader.py [--cache DIR] [--config configs/base.py] [--batch-size 32] \
      [--batches 40] [--workers 0 2] [--step-batch-size 4] [--encoder]

Without --cache, a temporary latent cache in the exact format is made at the config's shapes
(base: B = 512, T = 256 -> latents 64 x 32 x 16): a few hundred records from a synthetic segment
build, encoded by the pooling stand-in autoencoder (data_pipeline.precompute); its latents
compress far better than a trained VAE's, so its on-disk size understates a real cache's.
Prints, for each worker count, examples/s and MB/s of data_pipeline.loader.train_dataset, the
bytes per example (in the batch and on disk), and the train step's consumption beside them
(bench/train_step.py at the config's model and shapes, --step-batch-size examples per step):
the loader must stay at least 10x ahead.
--encoder also times the frozen onehot-kl encoder per segment at the config's architecture
(randomly initialised): the cost the precomputed reference latents save the train step
(data_pipeline/latents.py has the figures).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import ml_collections
import train_step  # bench/train_step.py, beside this script

from data_pipeline import build, latents, loader, precompute
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.vae import image_channels

REPO = Path(__file__).resolve().parents[1]


def synthetic_cache(directory: Path, config: ml_collections.ConfigDict) -> Path:
    """A latent cache of 12 synthetic 30 s songs at the config's shapes (base: 110 train segments,
    mirrored, and 22 val/test: 242 records)."""
    config.data.synthetic.num_songs = 12
    config.data.synthetic.val_songs = 1
    config.data.synthetic.test_songs = 1
    config.data.synthetic.seconds = 30.0
    build.build("synthetic", directory / "raw", directory / "segments", config)
    autoencoder = precompute.pooling_autoencoder(image_channels(config.pose.skeleton),
                                                 config.vae.latent_channels,
                                                 config.vae.stride)
    config.vae.name = autoencoder.name
    precompute.precompute(directory / "segments", autoencoder, directory / "latents", config)
    return directory / "latents"


def loader_rate(cache: Path, config, batch_size: int, batches: int) -> tuple[float, int]:
    """(examples/s over `batches` batches after two warm-up batches, bytes per example)."""
    iterator = iter(loader.train_dataset(cache, config, batch_size))
    try:
        warm = list(itertools.islice(iterator, 2))
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        seconds = time.perf_counter() - start
    finally:
        close = getattr(iterator, "close", None)
        if close:
            close()
    per_example = sum(v.nbytes for v in warm[0].values()) // batch_size
    return batches * batch_size / seconds, per_example


def encoder_ms_per_segment(config: ml_collections.ConfigDict, batch: int = 2) -> float:
    """ms per segment of the onehot-kl encoder (config.vae.arch, random weights) on this machine,
    best of three jitted runs at (batch, B, T, 36)."""
    import jax
    from flax import nnx

    from hotdance_jax.vae.kl import AutoencoderKL
    from hotdance_jax.vae.train import kl_config

    graphdef, state = nnx.split(AutoencoderKL(kl_config(config), rngs=nnx.Rngs(0)))
    encode = jax.jit(lambda x: nnx.merge(graphdef, state).encode(x)[0])
    images = jax.numpy.zeros((batch, config.pose.bins, config.pose.segment_frames, 36))
    encode(images).block_until_ready()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        encode(images).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 1000 * best / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="A latent cache; default: a synthetic one.")
    parser.add_argument("--config", default=str(REPO / "configs" / "base.py"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--step-batch-size", type=int, default=4,
                        help="Global batch of the timed train step (bench/train_step.py).")
    parser.add_argument("--encoder", action="store_true", help="Also time the frozen encoder.")
    args = parser.parse_args()
    config = sibling_config(args.config, Path(args.config).stem)
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        cache = args.cache or synthetic_cache(Path(tmp), config)
        manifest = latents.read_manifest(cache)
        config.vae.name = manifest["settings"]["vae"]
        on_disk = sum(p.stat().st_size for p in cache.glob("*.array_record"))
        print(f"cache {cache}: {manifest['counts']} records, latents {manifest['latent_shape']}, "
              f"{on_disk / sum(manifest['counts'].values()) / 2**10:.0f} KiB per record on disk")
        for workers in args.workers:
            config.latents.workers = workers
            rate, per_example = loader_rate(cache, config, args.batch_size, args.batches)
            print(f"loader, {workers} workers: {rate:8.1f} examples/s, "
                  f"{rate * per_example / 2**20:7.1f} MB/s, {per_example / 2**10:.0f} KiB/example "
                  f"(batch {args.batch_size})")
    step = train_step.measure(config, args.step_batch_size, steps=3)
    print(f"train step ({config.model.width} wide, {config.model.depth} deep DiT, batch "
          f"{args.step_batch_size}): {step['examples_per_second']:8.1f} examples/s; the loader "
          f"with {args.workers[-1]} workers is {rate / step['examples_per_second']:.0f}x ahead")
    if args.encoder:
        ms = encoder_ms_per_segment(config)
        print(f"onehot-kl encoder {tuple(config.vae.arch.block_out_channels)} at "
              f"{config.pose.bins} x {config.pose.segment_frames}: {ms:.0f} ms/segment "
              f"(the cost of encoding the reference in the train step)")


if __name__ == "__main__":
    main()
