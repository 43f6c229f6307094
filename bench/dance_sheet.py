r"""Generated dances beside the real ones of the same songs, as a PNG to look at.

  python bench/dance_sheet.py --generated runs/quality/full/dances --reference data/dwm \
      [--split test] [--seconds 8] [--start 4] --out runs/quality/dance_sheet.png

For every song of the reference split (a segment build, or a folder of dance npz) that some
generated dance was danced to (same music file and offset), one row of cells: the real dance,
then each generated dance of that song, all over the same `--seconds` from `--start` s into the
dance. A cell draws data_pipeline.inspect's poses at evenly spaced frames, shifted right with
time, over a timeline of the music's beats (red) and the mean keypoint speed (blue): bodies that
collapse, limbs that fling and speed spikes show at a glance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from data_pipeline.inspect import draw_dance
from data_pipeline.sources.base import Performance
from hotdance_jax import evaluate, render


def matched(reference: evaluate.DanceSet, generated: evaluate.DanceSet
            ) -> list[tuple[Performance, list[Performance]]]:
    """(real dance, its generated dances) for every reference song that was danced to."""
    def song(dance: Performance) -> tuple[str, float]:
        return str(Path(dance.audio_path).resolve()), round(dance.audio_offset, 3)
    rows = []
    for real in reference.dances:
        mine = [d for d in generated.dances if song(d) == song(real)]
        if mine:
            rows.append((real, mine))
    return rows


def draw_window(ax: plt.Axes, dance: Performance, start: float, seconds: float,
                title: str) -> None:
    """One cell: frames [start, start + seconds) s of a dance with its music's beats."""
    first = round(start * dance.fps)
    frames = slice(first, min(dance.num_frames, first + round(seconds * dance.fps)))
    beats = evaluate.music_beats(dance.audio_path, dance.audio_offset + start, seconds)
    beat_frames = np.round(beats * dance.fps).astype(int)
    length = frames.stop - frames.start
    draw_dance(ax, dance.keypoints[frames], dance.confidence[frames], dance.fps,
               float(dance.height or np.nanmax(dance.keypoints[..., 1])),
               beat_frames[beat_frames < length], title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--start", type=float, default=4.0, help="seconds into each dance")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    rows = matched(evaluate.read_dance_set(args.reference, args.split),
                   evaluate.read_dance_set(args.generated, args.split))
    if not rows:
        raise SystemExit(f"error: no dance in {args.generated} was danced to a song of "
                         f"{args.reference} ({args.split})")
    cols = 1 + max(len(mine) for _, mine in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(6 * cols, 2.6 * len(rows)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (real, mine) in enumerate(rows):
        draw_window(axes[r, 0], real, args.start, args.seconds, f"real {real.sequence_id}")
        for c, dance in enumerate(mine, start=1):
            draw_window(axes[r, c], dance, args.start, args.seconds,
                        f"generated {dance.sequence_id}")
    render.save_figure(fig, args.out)
    print(f"{len(rows)} songs, {sum(len(m) for _, m in rows)} generated dances: {args.out}")


if __name__ == "__main__":
    main()
