"""Sampling speed: real-time factor (seconds of dance per second of wall time) and peak memory.

  python bench/sample.py [--configs configs/tiny_cpu.py configs/base.py] [--seconds 60 30]
      [--batch 1] [--steps 30] [--sampler euler] [--guidance 2]

For each config, in its own child process (so each peak memory is its own): a DanceGenerator of
randomly initialised weights at the config's shapes (the DiT of config.model; the onehot-kl of
config.vae.arch, written to a temporary file, or raw-coords when config.vae.name names it)
dances to --seconds of a synthesised drum track, --batch songs at once. The first call
compiles; the second is timed. Prints the real-time factor with and without compilation, the
sampler's seconds per segment, and the process's peak resident memory (ru_maxrss; on an
accelerator also the device's peak bytes in use when it reports them).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
from flax import nnx

from data_pipeline.sources.synthetic import synthesize_performance
from hotdance_jax import dit_run, sample
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.io import save_wav
from hotdance_jax.models import DiT
from hotdance_jax.pose import pipeline_skeleton
from hotdance_jax.vae import RAW_COORDS, image_channels, load_autoencoder
from hotdance_jax.vae.kl import save_onehot_kl
from hotdance_jax.vae.train import create_model, kl_config

REPO = Path(__file__).resolve().parents[1]


def random_generator(config, folder: Path) -> sample.DanceGenerator:
    """A DanceGenerator of random weights at the config's shapes (speed does not depend on them):
    raw-coords when the config names it, else onehot-kl."""
    info = dit_run.cache_shapes(config)
    channels = info["latent_shape"][-1]
    joints = pipeline_skeleton(config.pose.skeleton).num_joints
    info.update(scale=[1.0] * channels, shift=[0.0] * channels,
                music_scale=[1.0] * info["music_features"],
                music_shift=[0.0] * info["music_features"],
                mean_dancer={"keypoints": [[0.5, 0.2 + 0.01 * k] for k in range(joints)],
                             "confidence": [1.0] * joints, "frame": [512, 512]})
    if config.vae.name == RAW_COORDS:
        name, weights = RAW_COORDS, ""
    else:
        arch = kl_config(config)
        name, weights = "onehot-kl", str(folder / "vae.msgpack")
        save_onehot_kl(weights, create_model(arch, 0), arch)
    autoencoder = load_autoencoder(name, weights, image_channels(config.pose.skeleton),
                                   bins=config.pose.bins)
    model = DiT(dit_run.dit_config(config, info), rngs=nnx.Rngs(0))
    return sample.DanceGenerator(config, info, model, autoencoder)


def measure(config_path: str, seconds: float, batch: int, steps: int, sampler: str,
            guidance: float) -> dict:
    """Figures of one config (run in this process)."""
    config = sibling_config(config_path, Path(config_path).stem)
    with tempfile.TemporaryDirectory(prefix="bench-sample-") as tmp:
        folder = Path(tmp)
        generator = random_generator(config, folder)
        performance = synthesize_performance(1, seconds, config.pose.fps, config.audio.sample_rate)
        save_wav(folder / "song.wav", performance.audio, performance.sample_rate)
        songs = [sample.load_song(folder / "song.wav", config, config.pose.fps)] * batch
        shape = generator.mean_dancer(512, 512)
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            generator.generate(songs, shape, width=512, height=512, steps=steps, sampler=sampler,
                               guidance=guidance)
            timings.append(time.perf_counter() - start)
    hop = config.pose.segment_frames - sample.OVERLAP
    segments = max(1, -(-(songs[0].frames - sample.OVERLAP) // hop))
    stats = jax.devices()[0].memory_stats() or {}
    return {"config": Path(config_path).stem, "dance_seconds": seconds * batch,
            "segments": segments, "first_call_s": timings[0], "second_call_s": timings[1],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "device_peak_mib": stats.get("peak_bytes_in_use", 0) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=[str(REPO / "configs/tiny_cpu.py"),
                                                         str(REPO / "configs/base.py")])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 30.0],
                        help="Seconds of music per config.")
    parser.add_argument("--batch", type=int, default=1, help="Songs sampled at once.")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sampler", default="euler", choices=["euler", "heun"])
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one config, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.seconds[0], args.batch, args.steps,
                                 args.sampler, args.guidance)))
        return
    print(f"{jax.device_count()} x {jax.devices()[0].device_kind}; {args.steps} {args.sampler} "
          f"steps, guidance {args.guidance:g}, batch {args.batch}")
    print("| config | dance (s) | segments/song | real-time factor | with compilation "
          "| s/segment | peak RSS (MiB) | device peak (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for path, seconds in zip(args.configs, args.seconds, strict=True):
        child = subprocess.run(
            [sys.executable, __file__, "--one", path, "--seconds", str(seconds), "--batch",
             str(args.batch), "--steps", str(args.steps), "--sampler", args.sampler,
             "--guidance", str(args.guidance)], capture_output=True, text=True, check=True)
        m = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"| {m['config']} | {m['dance_seconds']:g} | {m['segments']} | "
              f"{m['dance_seconds'] / m['second_call_s']:.2f} | "
              f"{m['dance_seconds'] / m['first_call_s']:.2f} | "
              f"{m['second_call_s'] / m['segments']:.3f} | {m['peak_rss_mib']:.0f} | "
              f"{m['device_peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
