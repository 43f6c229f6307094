"""The quality table: the full model, its ablations and the ground truth, scored side by side.

  python bench/quality.py --config configs/dwm.py --segments data/dwm \
      --latents data/dwm_latents --workdir runs/quality [--steps 3000] [--seeds 2] \
      [--seconds 30] [--variants full sequential no_reference raw_coords] \
      [--sampling-steps 30] [--guidance 2] [--set train.music_dropout=0.5 ...] \
      [--decode smooth_window=15 decode_jump_cost=2 ...]

Every variant trains with hotdance_jax.train from the same seed, data order and steps
(WORKDIR/NAME, reused or resumed when there; with the config's dance check on the --segments
build when config.train.dance_eval_every > 0), then dances with its EMA weights to the music of
every performance of the segment build's --split (--seeds samples each, the first --seconds of the
song, the training data's mean dancer, --sampling-steps Euler steps, --guidance), and the dances
are scored by hotdance_jax.evaluate against that split's real performances. --set KEY=VALUE
overrides the training config of every variant (a study's lever: give each setting its own
WORKDIR); --decode KEY=VALUE overrides the run's decode settings at sampling (DECODE_KEYS: the
tracked decode's costs and the smoothing window). Dances are saved in
WORKDIR/NAME/dances_s<steps>_g<guidance>[_<key><value>...]. Variants (VARIANTS): the full model;
"sequential" temporal indexing (music indices after the pose's); "no_reference" (the DiT sees no
reference latent: segments join only by the overlap's cross-fade); "raw_coords" (the same DiT on
normalised keypoint coordinates, a latent cache of the raw-coords autoencoder built from the same
segments into WORKDIR/raw_coords_latents). Prints one markdown table (ground truth, a real dance
with another dance's music, then per variant its dances and their BAS with another dance's music)
and writes it as JSON to WORKDIR/quality.json.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from data_pipeline.precompute import precompute
from hotdance_jax import evaluate, sample, train
from hotdance_jax.config_utils import parse_setting, sibling_config
from hotdance_jax.errors import Preempted
from hotdance_jax.vae import image_channels, load_autoencoder

VARIANTS = {  # name: config overrides
    "full": {},
    "sequential": {"model.temporal_index": "sequential"},
    "no_reference": {"model.reference": False},
    "raw_coords": {"vae.name": "raw-coords", "model.patch": (1, 1)},
}


DECODE_KEYS = ("decode_jump_cost", "decode_free_motion", "decode_jump_cap", "decode_radius",
               "visibility_threshold", "smooth_window")


def setting(text: str) -> tuple[str, object]:
    """config_utils.parse_setting as an argparse type."""
    try:
        return parse_setting(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def variant_latents(config, name: str, args: argparse.Namespace) -> Path:
    """The latent cache a variant trains on: --latents, or for raw_coords its own cache."""
    if config.vae.name != "raw-coords":
        return Path(args.latents)
    out = args.workdir / f"{name}_latents"
    autoencoder = load_autoencoder("raw-coords", "", image_channels(config.pose.skeleton),
                                   bins=config.pose.bins)
    precompute(args.segments, autoencoder, out, config)
    return out


def dance_to_songs(generator: sample.DanceGenerator, reference: evaluate.DanceSet,
                   args: argparse.Namespace, out: Path) -> evaluate.DanceSet:
    """Dances to the first --seconds of every reference performance's song, saved in `out`."""
    songs = [sample.load_song(Path(d.audio_path), generator.config, d.fps, d.audio_offset,
                              args.seconds) for d in reference.dances]
    width, height = generator.info["mean_dancer"]["frame"]
    dances = generator.generate(songs, generator.mean_dancer(width, height), width=width,
                                height=height, num_samples=args.seeds, seed=0,
                                steps=args.sampling_steps, guidance=args.guidance)
    for i, dance in enumerate(dances):
        sample.save_dance(out / f"{i // args.seeds:03d}_{dance.sample}.npz", dance)
    return evaluate.read_dance_set(out, args.split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the training config file (.py)")
    parser.add_argument("--segments", required=True, type=Path,
                        help="the segment build (data_pipeline.build's --segments)")
    parser.add_argument("--latents", required=True,
                        help="the latent cache the variants train on (data_pipeline.precompute)")
    parser.add_argument("--workdir", required=True, type=Path,
                        help="one run folder per variant (WORKDIR/NAME) and quality.json")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="the variants to train and score (default: all)")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--seeds", type=int, default=2,
                        help="dances sampled per song, each from its own noise (the training "
                             "seed is config.seed: --set seed=N)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="dance to the first this many seconds of each song")
    parser.add_argument("--split", default="test", help="the split whose songs are danced to")
    parser.add_argument("--window-seconds", type=float, default=5.0,
                        help="the windows (seconds) whose features FID and Div compare (evaluate)")
    parser.add_argument("--sampling-steps", type=int, default=30, help="Euler steps per segment")
    parser.add_argument("--guidance", type=float, default=2.0,
                        help="classifier-free guidance scale on the music")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", type=setting,
                        help="training config overrides, e.g. train.music_dropout=0.5")
    parser.add_argument("--decode", nargs="+", default=[], metavar="KEY=VALUE", type=setting,
                        help=f"sampling-time overrides of config.pose: {', '.join(DECODE_KEYS)}")
    args = parser.parse_args()
    base = sibling_config(args.config, Path(args.config).stem)
    base.update_from_flattened_dict(dict(args.set))
    if args.steps:
        base.train.steps = args.steps
    for key, _ in args.decode:
        if key not in DECODE_KEYS:
            parser.error(f"--decode {key}: not one of {', '.join(DECODE_KEYS)}")
    reference = evaluate.read_dance_set(args.segments, args.split)
    rows, scores = {}, {}
    for name in args.variants:
        config = base.copy_and_resolve_references()
        config.update_from_flattened_dict(VARIANTS[name])
        try:
            train.train(config, variant_latents(config, name, args), args.workdir / name,
                        segments=args.segments)
        except Preempted as e:
            sys.exit(f"{e}; nothing scored")
        generator = sample.DanceGenerator.load(args.workdir / name)
        generator.config.pose.update(dict(args.decode))
        out = args.workdir / name / "".join(
            [f"dances_s{args.sampling_steps}_g{args.guidance:g}",
             *(f"_{key}{value:g}" for key, value in sorted(args.decode))])
        out.mkdir(exist_ok=True)
        for stale in out.glob("*.npz"):
            stale.unlink()
        generated = dance_to_songs(generator, reference, args, out)
        scores[name] = evaluate.score(reference, generated, args.window_seconds)
        if not rows:
            rows = {evaluate.ROWS[key]: row for key, row in scores[name]["rows"].items()
                    if key.startswith("ground_truth")}
        rows[name] = scores[name]["rows"]["generated"]
        rows[f"{name}, another dance's music"] = scores[name]["rows"]["generated_other_music"]
    table = evaluate.markdown_table(rows)
    settings = ", ".join(f"{key} {value}" for key, value in [*args.set, *args.decode])
    print(f"\n{args.config}, {base.train.steps} steps, {args.split} split of {args.segments}, "
          f"{args.seeds} seeds x first {args.seconds:g} s, {args.sampling_steps} Euler steps, "
          f"guidance {args.guidance:g}, {settings or 'the config as it is'}, "
          f"{datetime.date.today().isoformat()}\n\n{table}\n\n{evaluate.relations_table(scores)}")
    evaluate.write_json(args.workdir / "quality.json",
                        {"args": {k: str(v) for k, v in vars(args).items()},
                         "steps": base.train.steps, "scores": scores})


if __name__ == "__main__":
    main()
