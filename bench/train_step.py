"""Seconds per train step, examples/s, TFLOP/s per device and MFU of the DiT's or the
autoencoder's train step.

  python bench/train_step.py [--model dit|vae] [--configs configs/tiny_cpu.py configs/base.py]
      [--batch-sizes 32 4] [--steps 10] [--mesh 1 -1 1] [--profile DIR]

Each --configs entry is a config file, optionally with overrides after a colon, e.g.
`configs/base.py:model.attention_implementation=xla,model.dtype=float32`.

For each config: the DiT's Trainer (train.dit_trainer: the same jitted, sharded, donated step the
training command runs) on random batches of the config's shapes (latents B/8 x T/8 x
vae.latent_channels, 35 music features per frame), or with --model vae the onehot-kl
autoencoder's (vae.train.vae_trainer, on random poses in crops of config.vae.train.crop_frames
frames; --mesh is then its data-parallel mesh), timed over --steps steps after a warm-up step
that compiles; "dispatch ms" is the median host time of one step's call, before the device
finishes it (the device is kept busy only while that is shorter than s/step). FLOPs per step are
model FLOPs (Trainer.model_flops: XLA's cost analysis of the step as lowered, attention counted
as XLA's, so cuBLAS and cuDNN calls on a GPU are counted too); the peak from the device's data
sheet, or on CPU from a timed matmul (training.peak_flops_per_device). Each config's figures are
measured side by side in one run.
--profile writes a jax.profiler trace of the timed steps of the last config to DIR (open it with
TensorBoard's profile plugin or Perfetto) and, on CPU, prints where the step's time goes: each kind
of XLA op (its name without the numeric suffix) with its self time per step, summed over threads.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import re
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from hotdance_jax import dit_run, parallel, train, training
from hotdance_jax.config_utils import apply_overrides, sibling_config
from hotdance_jax.pose import pipeline_skeleton
from hotdance_jax.vae import train as vae_train

REPO = Path(__file__).resolve().parents[1]


def random_batch(config: ml_collections.ConfigDict, batch_size: int, seed: int = 0) -> dict:
    """A loader-shaped batch (data_pipeline/loader.py) of random values."""
    rng = np.random.default_rng(seed)
    shapes = dit_run.cache_shapes(config)
    bins, frames, channels = shapes["latent_shape"]
    stride, features = shapes["vae"]["stride"][1], shapes["music_features"]
    return {
        "latent": rng.standard_normal((batch_size, bins, frames, channels), np.float32),
        "reference": rng.standard_normal((batch_size, bins, frames, channels), np.float32),
        "mask": np.zeros((batch_size, bins, frames, stride), np.float32),
        "music": rng.standard_normal((batch_size, frames * stride, features), np.float32),
        "num_reference_frames": np.zeros((batch_size,), np.int32),
        "example": np.arange(batch_size, dtype=np.int32),
    }


def random_crops(config: ml_collections.ConfigDict, batch_size: int, seed: int = 0) -> dict:
    """A batch of the autoencoder's crops (vae/train.py random_crop) of random poses in a
    1920 x 1080 frame."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, config.vae.train.crop_frames,
             pipeline_skeleton(config.pose.skeleton).num_joints)
    size = np.array([1920.0, 1080.0], np.float32)
    return {"keypoints": (rng.random((*shape, 2)) * size).astype(np.float32),
            "confidence": np.ones(shape, np.float32),
            "size": np.broadcast_to(size, (batch_size, 2)).copy()}


def dit_setup(config: ml_collections.ConfigDict, batch_size: int, mesh: jax.sharding.Mesh
              ) -> tuple[training.Trainer, dict, str, int]:
    """The DiT's Trainer, a random batch, its compute description and tokens per example."""
    config.train.batch_size = batch_size
    model_config = dit_run.dit_config(config, dit_run.cache_shapes(config))
    return (train.dit_trainer(config, model_config, mesh), random_batch(config, batch_size),
            f"{model_config.dtype}, {model_config.attention_implementation}",
            model_config.grid[0] * model_config.grid[1] + model_config.latent_frames)


def vae_setup(config: ml_collections.ConfigDict, batch_size: int, mesh: jax.sharding.Mesh
              ) -> tuple[training.Trainer, dict, str, int]:
    """The autoencoder's Trainer, random crops, its image shape and pixels per example."""
    config.vae.train.batch_size = batch_size
    frames, bins = config.vae.train.crop_frames, config.pose.bins
    return (vae_train.vae_trainer(config, mesh), random_crops(config, batch_size),
            f"float32, {bins} bins x {frames} frames", bins * frames)


SETUPS = {"dit": dit_setup, "vae": vae_setup}


def measure(config: ml_collections.ConfigDict, batch_size: int, steps: int,
            mesh_shape=(1, -1, 1), profile: Path | None = None, model: str = "dit"
            ) -> dict[str, float]:
    """Figures of `steps` train steps of `model` at global batch `batch_size` (after one
    compiling step)."""
    config = config.copy_and_resolve_references()
    mesh = parallel.make_mesh(mesh_shape)
    trainer, batch, compute, tokens = SETUPS[model](config, batch_size, mesh)
    batch = parallel.global_batch(batch, mesh)
    jax.block_until_ready(trainer.step(batch))
    tracing = (jax.profiler.trace(str(profile), create_perfetto_trace=True) if profile
               else contextlib.nullcontext())
    dispatch = []
    with tracing:
        start = time.perf_counter()
        for _ in range(steps):
            called = time.perf_counter()
            metrics = trainer.step(batch)
            dispatch.append(time.perf_counter() - called)
        jax.block_until_ready(metrics)
        seconds = (time.perf_counter() - start) / steps
    flops = trainer.flops_per_step or float("nan")
    params = sum(x.size for x in jax.tree.leaves(trainer.state["model"]))
    return {"seconds_per_step": seconds, "examples_per_second": batch_size / seconds,
            "tflops_per_device": flops / seconds / 1e12, "gflop_per_step": flops / 1e9,
            "parameters_m": params / 1e6, "dispatch_ms": 1e3 * float(np.median(dispatch)),
            "compute": compute, "tokens": tokens}


def op_time_by_kind(trace_dir: Path, steps: int) -> list[tuple[str, float]]:
    """(kind, ms per step) of the XLA ops in the newest CPU trace under `trace_dir`, most first.

    Self time: an event's duration less its children's on the same thread, so a `while` is not
    counted again in its body's ops. Only XLA's CPU worker threads (named tf_XLA*) count, and
    events that wait (their names hold "wait" or "Await") are left out.
    """
    path = max(trace_dir.glob("plugins/profile/*/perfetto_trace.json.gz"))
    events = json.loads(gzip.decompress(path.read_bytes()))
    events = events["traceEvents"] if isinstance(events, dict) else events
    xla_threads = {(e["pid"], e["tid"]) for e in events
                   if e.get("ph") == "M" and e.get("name") == "thread_name"
                   and e["args"]["name"].startswith("tf_XLA")}
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in xla_threads:
            by_thread[e["pid"], e["tid"]].append((float(e["ts"]), float(e["dur"]), e["name"]))
    self_us = collections.Counter()
    for spans in by_thread.values():
        open_spans: list[list] = []  # [end, name, self time] of the enclosing events
        for start, duration, name in sorted(spans, key=lambda x: (x[0], -x[1])):
            while open_spans and open_spans[-1][0] <= start:
                _, done, time_us = open_spans.pop()
                self_us[done] += time_us
            if open_spans:
                open_spans[-1][2] -= duration
            open_spans.append([start + duration, name, duration])
        for _, name, time_us in open_spans:
            self_us[name] += time_us
    kinds = collections.Counter()
    for name, time_us in self_us.items():
        if "wait" not in name and "Await" not in name:
            kinds[re.sub(r"\.\d+$", "", name)] += time_us / 1e3 / steps
    return kinds.most_common()


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.splitlines()[:2]))
    parser.add_argument("--model", choices=sorted(SETUPS), default="dit",
                        help="The DiT's train step or the onehot-kl autoencoder's.")
    parser.add_argument("--configs", nargs="+", default=[str(REPO / "configs/tiny_cpu.py"),
                                                         str(REPO / "configs/base.py")])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 4],
                        help="Global batch per config (the base shapes are slow on a CPU).")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--mesh", type=int, nargs=3, default=[1, -1, 1])
    parser.add_argument("--profile", type=Path, help="Write a jax.profiler trace of the last "
                        "config here and, on CPU, print its op time by kind.")
    args = parser.parse_args()
    if len(args.batch_sizes) != len(args.configs):
        parser.error("give one --batch-sizes value per config")
    peak, source = training.peak_flops_per_device()
    print(f"{jax.device_count()} x {jax.devices()[0].device_kind}; peak "
          f"{peak / 1e12:.2f} TFLOP/s per device ({source})")
    print(f"| {args.model} config | {'compute, attention' if args.model == 'dit' else 'image'} "
          f"| params (M) | {'tokens' if args.model == 'dit' else 'pixels'} | batch | s/step | "
          "dispatch ms "
          "| examples/s | GFLOP/step/device | TFLOP/s/device | MFU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, (spec, batch_size) in enumerate(zip(args.configs, args.batch_sizes, strict=True)):
        path, _, overrides = spec.partition(":")
        config = sibling_config(path, Path(path).stem)
        apply_overrides(config, overrides)
        profile = args.profile if i == len(args.configs) - 1 else None
        m = measure(config, batch_size, args.steps, tuple(args.mesh), profile, args.model)
        label = Path(path).stem + (f" ({overrides})" if overrides else "")
        print(f"| {label} | {m['compute']} | {m['parameters_m']:.1f} | {m['tokens']} | "
              f"{batch_size} | {m['seconds_per_step']:.3f} | {m['dispatch_ms']:.1f} | "
              f"{m['examples_per_second']:.1f} | "
              f"{m['gflop_per_step']:.1f} | {m['tflops_per_device']:.3f} | "
              f"{100 * m['tflops_per_device'] * 1e12 / peak:.1f}% |", flush=True)
    if args.profile and jax.devices()[0].platform == "cpu":
        kinds = op_time_by_kind(args.profile, args.steps)
        total = sum(ms for _, ms in kinds)
        print(f"\nwhere {label}'s step goes ({total:.1f} ms of op time per step over all threads):")
        for kind, ms in kinds[:12]:
            print(f"  {ms:9.2f} ms  {100 * ms / total:5.1f}%  {kind}")


if __name__ == "__main__":
    main()
