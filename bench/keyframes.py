"""Keyframes: how closely a run's dances pass through the poses they are given, and how smoothly.

  python bench/keyframes.py --workdir runs/dwm_keyframes --segments data/dwm [--split test] \
      [--seconds 20] [--every 2] [--seeds 1] [--sampling-steps 30] [--guidance 2]

For every performance of the segment build's --split: keyframes taken from the real dance every
--every seconds (from --every on, up to half a second before --seconds; frames with fewer than
2 visible keypoints skipped), and the run dances to the first --seconds of its song through them
(the real dancer's shape pose, --seeds samples), once with the keyframes and once without. Per
row: the keypoint error at the keyframes' frames, in bins of the run's B (median and 95th
percentile over every keypoint visible in both, x and y apart), and the jitter (L/s^2) within
half a second of a keyframe against elsewhere (hotdance_jax.metrics.jitter on body-length
positions), with their ratio. The issue's bar for a model trained with keyframes: median <= 1
bin, p95 <= 3 bins, ratio <= 1.3. Prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hotdance_jax import evaluate, sample
from hotdance_jax.choreography import Keyframe
from hotdance_jax.metrics import body_frame, jitter
from hotdance_jax.pose.shape import shape_pose

NEAR_SECONDS = 0.5  # jitter "near a keyframe": within this of one


def real_keyframes(dance, every: float, seconds: float) -> list[Keyframe]:
    """Poses of the real `dance` (a Performance) every `every` seconds before seconds - 0.5."""
    keyframes = []
    for time in np.arange(every, seconds - NEAR_SECONDS, every):
        t = round(time * dance.fps)
        if t < len(dance.keypoints) and (dance.confidence[t] > 0).sum() >= 2:
            keyframes.append(Keyframe(float(time), dance.keypoints[t], dance.confidence[t]))
    return keyframes


def figures(dances: list[sample.Dance], keyframes: list[Keyframe], bins: int
            ) -> tuple[np.ndarray, list[float], list[float]]:
    """The keypoint errors (bins) at the keyframes' frames, and per dance the jitter near the
    keyframes and elsewhere, of dances that were given `keyframes` (or not: the same by chance)."""
    errors, near, far = [], [], []
    for dance in dances:
        size = np.array([dance.width, dance.height], np.float32)
        frames = [round(k.time * dance.fps) for k in keyframes]
        given = np.stack([k.keypoints for k in keyframes])
        seen = (np.stack([k.confidence for k in keyframes]) > 0) & (dance.confidence[frames] > 0)
        errors.append((np.abs(dance.keypoints[frames] - given) / size * bins)[seen].ravel())
        close = np.zeros(len(dance.keypoints), bool)
        reach = round(NEAR_SECONDS * dance.fps)
        for t in frames:
            close[max(t - reach, 0):t + reach + 1] = True
        positions, visible = body_frame(dance.keypoints, dance.confidence)
        near.append(jitter(positions, visible, dance.fps, close))
        far.append(jitter(positions, visible, dance.fps, ~close))
    return np.concatenate(errors), near, far


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--segments", required=True, type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--sampling-steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=2.0)
    args = parser.parse_args()
    generator = sample.DanceGenerator.load(args.workdir)
    bins = generator.config.pose.bins
    rows = {"with the keyframes": ([], [], []), "without (the same frames by chance)": ([], [], [])}
    for dance in evaluate.read_dance_set(args.segments, args.split).dances:
        song = sample.load_song(Path(dance.audio_path), generator.config, dance.fps,
                                dance.audio_offset, args.seconds)
        keyframes = real_keyframes(dance, args.every, song.frames / dance.fps)
        shape = shape_pose(dance.keypoints, dance.confidence)
        for row, given in zip(rows, (keyframes, ()), strict=True):
            dances = generator.generate([song], shape, width=dance.width, height=dance.height,
                                        num_samples=args.seeds, steps=args.sampling_steps,
                                        guidance=args.guidance, keyframes=given)
            for pooled, values in zip(rows[row], figures(dances, keyframes, bins), strict=True):
                pooled.append(np.atleast_1d(values))
    print(f"\n{args.workdir} (step {generator.step}), {args.split} split of {args.segments}, "
          f"first {args.seconds:g} s, a keyframe every {args.every:g} s, {args.seeds} seed(s), "
          f"{args.sampling_steps} Euler steps, guidance {args.guidance:g}\n")
    print("| dances | keyframe error median / p95 (bins) | jitter near keyframes / elsewhere "
          "(L/s^2) | ratio |")
    print("|---|---|---|---|")
    for row, pooled in rows.items():
        error, near, far = (np.concatenate(values) for values in pooled)
        print(f"| {row} | {np.median(error):.2f} / {np.percentile(error, 95):.2f} | "
              f"{np.nanmean(near):.2f} / {np.nanmean(far):.2f} | "
              f"{np.nanmean(near) / np.nanmean(far):.2f} |")


if __name__ == "__main__":
    main()
