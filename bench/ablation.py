"""Train variants of a config side by side on one latent cache and compare them.

  python bench/ablation.py --config configs/tiny_cpu.py --latents data/synthetic_latents \
      --workdir runs/ablation --variants model.attention=joint model.attention=cross \
      [--steps 1500] [--songs 4] [--seconds 20] [--samples 2]

Each variant (overrides key=value, several joined by commas) trains with
hotdance_jax.train (same seed, data order and steps; WORKDIR/NAME, resumed when there), then
dances with its EMA weights to the first --songs songs of the cache's val split (--samples seeds
each) and prints a markdown table: final training loss, validation loss (EMA weights, fixed t and
noise), seconds per step, parameters, and the beat align score (BAS) of the dances against the
songs' beats, with the real dances' BAS of the same songs as the reference row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from data_pipeline import latents, segments
from hotdance_jax import sample, train
from hotdance_jax.config_utils import apply_overrides, sibling_config
from hotdance_jax.errors import Preempted
from hotdance_jax.metrics import beat_align_score


def split_songs(cache: str, count: int, split: str = "val") -> list[tuple[Path, float]]:
    """(audio path, offset) of the first `count` distinct performances of a split."""
    store = latents.LatentStore(cache, split)
    songs = {}
    for i in range(len(store)):
        record = store[i]
        songs.setdefault(record["audio_path"], float(record["audio_offset"]))
        if len(songs) == count:
            break
    return [(Path(p), offset) for p, offset in songs.items()]


def real_dance_bas(config, cache: str, songs, seconds: float, split: str = "val") -> float:
    """Mean BAS of a split's real dances over the first `seconds` of the same songs."""
    store = latents.LatentStore(cache, split)
    dances = {p.audio_path: p for p in segments.assemble(store[i] for i in range(len(store)))}
    scores = []
    for path, offset in songs:
        dance = dances[str(path)]
        frames = min(dance.num_frames, int(seconds * dance.fps))
        song = sample.load_song(path, config, dance.fps, offset, frames / dance.fps)
        scores.append(beat_align_score(dance.keypoints[:frames], dance.confidence[:frames],
                                       song.beats, dance.fps))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--latents", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--songs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    base = sibling_config(args.config, Path(args.config).stem)
    base.vae.name = latents.read_manifest(args.latents)["settings"]["vae"]
    if args.steps:
        base.train.steps = args.steps
    songs = split_songs(args.latents, args.songs)
    rows = []
    for variant in args.variants:
        config = base.copy_and_resolve_references()
        apply_overrides(config, variant)
        workdir = args.workdir / variant.replace("=", "-").replace(",", "_")
        start = time.perf_counter()
        try:
            metrics = train.train(config, Path(args.latents), workdir)
        except Preempted as e:
            sys.exit(f"{e}; nothing scored")
        generator = sample.DanceGenerator.load(workdir)
        loaded = [sample.load_song(path, config, config.pose.fps, offset, args.seconds)
                  for path, offset in songs]
        width, height = generator.info["mean_dancer"]["frame"]
        dances = generator.generate(loaded, generator.mean_dancer(width, height), width=width,
                                    height=height, num_samples=args.samples, seed=0)
        bas = [beat_align_score(d.keypoints, d.confidence, d.song.beats, d.fps) for d in dances]
        params = sum(x.size for x in jax.tree.leaves(generator.state))
        rows.append((variant, metrics, params, np.mean(bas), np.std(bas),
                     time.perf_counter() - start))
    print(f"\n{args.config}, {base.train.steps} steps, cache {args.latents}; BAS over "
          f"{len(songs)} val songs x {args.samples} samples, first {args.seconds:g} s")
    print("| variant | params (M) | train loss | val loss (EMA) | s/step | BAS (mean +- std) | "
          "wall (s) |")
    print("|---|---|---|---|---|---|---|")
    real = real_dance_bas(base, args.latents, songs, args.seconds)
    print(f"| real dances | | | | | {real:.3f} | |")
    for variant, metrics, params, bas, bas_std, wall in rows:
        print(f"| {variant} | {params / 1e6:.2f} | {metrics.get('loss', np.nan):.4f} | "
              f"{metrics.get('val_loss', np.nan):.4f} | "
              f"{metrics.get('seconds_per_step', np.nan):.3f} | {bas:.3f} +- {bas_std:.3f} | "
              f"{wall:.0f} |")


if __name__ == "__main__":
    main()
