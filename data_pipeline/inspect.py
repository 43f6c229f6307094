"""Look at a segment build: statistics, and a PNG contact sheet of random segments.

  python -m data_pipeline.inspect data/dwm [--split train] [--num 12] [--seed 0] \
      [--sheet data/dwm/contact_sheet.png]

Each cell of the sheet draws one segment's skeleton at evenly spaced frames, shifted right with
time and fading in, over a timeline that marks the music's beats (red) and the mean keypoint
speed (blue), so a person can check that dancers are upright, whole and move with the music.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from absl import flags

from data_pipeline.segments import SegmentStore, read_manifest
from hotdance_jax import cli, render
from hotdance_jax.audio import BEAT
from hotdance_jax.errors import InputError
from hotdance_jax.metrics import mean_keypoint_speed
from hotdance_jax.pose import OPENPOSE_18

POSES_PER_CELL = 8

FLAGS = flags.FLAGS


def statistics(store: SegmentStore) -> dict:
    """Per-build figures: counts from the manifest, plus joint visibility over the segments."""
    manifest = store.manifest
    visible = np.zeros(OPENPOSE_18.num_joints)
    for i in range(len(store)):
        visible += (store[i]["confidence"] > 0).mean(axis=0)
    first = store[0]
    return {
        "source": manifest["source"],
        "counts": manifest["counts"],
        "stats": manifest["stats"],
        "segment": {"frames": int(first["keypoints"].shape[0]), "fps": float(first["fps"]),
                    "frame_size": [int(first["width"]), int(first["height"])],
                    "music_features": int(first["music"].shape[1])},
        "joint_visibility": {name: round(float(v / len(store)), 3)
                             for name, v in zip(OPENPOSE_18.joints, visible, strict=True)},
    }


def draw_segment(ax: plt.Axes, record: dict) -> None:
    """One contact-sheet cell of a segment record: its poses over its beat and speed timeline."""
    draw_dance(ax, record["keypoints"], record["confidence"], float(record["fps"]),
               float(record["height"]), np.flatnonzero(record["music"][:, BEAT] > 0),
               f"{record['sequence_id']} @{int(record['start_frame'])}")


def draw_dance(ax: plt.Axes, kp: np.ndarray, conf: np.ndarray, fps: float, height: float,
               beat_frames: np.ndarray, title: str) -> None:
    """One cell: POSES_PER_CELL poses of keypoints (T, K, 2) px at evenly spaced frames, shifted
    right with time and fading in, above a timeline of the beats (frame indices, red ticks) and
    the mean keypoint speed (blue)."""
    frames = kp.shape[0]
    seen = kp[conf > 0]
    span = np.ptp(seen[:, 0]) + 1 if len(seen) else 1.0
    step = max(span, 0.15 * height)
    for i, t in enumerate(np.linspace(0, frames - 1, POSES_PER_CELL).astype(int)):
        offset = (i * step - np.nanmin(seen[:, 0]) if len(seen) else 0.0, 0.0)
        render.draw_skeleton(ax, kp[t], conf[t], offset=offset,
                             alpha=0.35 + 0.65 * i / (POSES_PER_CELL - 1), linewidth=1.2)
    # The timeline below the dancers: x spans the poses, beats as ticks, speed as a curve.
    base = np.nanmax(seen[:, 1]) + 0.05 * height if len(seen) else height
    width_px = step * POSES_PER_CELL
    x = np.arange(frames) / (frames - 1) * width_px
    for beat in beat_frames:
        ax.plot([x[beat]] * 2, [base, base + 0.12 * height], color="tab:red", lw=0.8)
    speed = mean_keypoint_speed(kp, conf, fps)
    ax.plot(x, base + 0.12 * height * (1 - speed / max(speed.max(), 1e-6)), color="tab:blue",
            lw=0.8)
    ax.set_title(title, fontsize=7)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.axis("off")


def contact_sheet(store: SegmentStore, path: Path, num: int, seed: int) -> None:
    """Writes a PNG grid of `num` random segments of `store`."""
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(store), size=min(num, len(store)), replace=False))
    cols = 3
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, chosen, strict=False):
        draw_segment(ax, store[int(index)])
    render.save_figure(fig, path)


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    flags.DEFINE_string("split", "train", "Which split to draw.")
    flags.DEFINE_integer("num", 12, "Segments on the contact sheet.")
    flags.DEFINE_integer("seed", 0, "Seed for choosing the segments.")
    flags.DEFINE_string("sheet", None, "PNG path; default DIR/contact_sheet_<split>.png.")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise InputError("usage: python -m data_pipeline.inspect DIR [--split ...]")
    directory = Path(argv[1])
    read_manifest(directory)
    store = SegmentStore(directory, FLAGS.split)
    print(json.dumps(statistics(store), indent=1))
    sheet = Path(FLAGS.sheet or directory / f"contact_sheet_{FLAGS.split}.png")
    contact_sheet(store, sheet, FLAGS.num, FLAGS.seed)
    print(f"contact sheet: {sheet}")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
