"""Pictures of dances: skeletons in OpenPose colours, keypoint speed against the music's beats."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter1d

from hotdance_jax.io import atomic_path
from hotdance_jax.pose.skeletons import OPENPOSE_18, Skeleton


def draw_skeleton(
    ax: plt.Axes,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    skeleton: Skeleton = OPENPOSE_18,
    offset: tuple[float, float] = (0.0, 0.0),
    alpha: float = 1.0,
    linewidth: float = 2.0,
) -> None:
    """Draws one pose, (J, 2) pixels with (J,) confidence, on `ax` (image coordinates, y down).

    Limbs with an invisible end are skipped; `offset` (pixels) shifts the drawing.
    """
    xy = np.asarray(keypoints) + np.asarray(offset)
    for i, (a, b) in enumerate(skeleton.limbs):
        if confidence[a] > 0 and confidence[b] > 0:
            color = np.asarray(skeleton.limb_colors[i]) / 255 if skeleton.limb_colors else "k"
            ax.plot(xy[[a, b], 0], xy[[a, b], 1], color=color, lw=linewidth, alpha=alpha,
                    solid_capstyle="round")


def mean_keypoint_speed(keypoints: np.ndarray, confidence: np.ndarray, fps: float) -> np.ndarray:
    """(T,) mean speed in pixels per second of the joints visible in consecutive frames.

    Frame t holds the speed between frames t-1 and t (frame 0 repeats frame 1's).
    """
    step = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1) * fps  # (T-1, K)
    both = (confidence[1:] > 0) & (confidence[:-1] > 0)
    speed = np.where(both, step, 0.0).sum(-1) / np.maximum(both.sum(-1), 1)
    return np.concatenate([speed[:1], speed])


def save_speed_plot(
    path: str | os.PathLike,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    fps: float,
    beat_times: np.ndarray,
    title: str = "",
) -> None:
    """PNG of the smoothed mean keypoint speed over time with the music's beats as lines."""
    speed = gaussian_filter1d(mean_keypoint_speed(keypoints, confidence, fps), sigma=1.0)
    t = np.arange(len(speed)) / fps
    fig, ax = plt.subplots(figsize=(12, 3))
    ax.plot(t, speed, color="tab:blue", lw=1.2, label="mean keypoint speed (px/s)")
    for i, b in enumerate(beat_times[beat_times <= t[-1]]):
        ax.axvline(b, color="tab:red", lw=0.6, alpha=0.6, label="music beat" if i == 0 else None)
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Saves a matplotlib figure as PNG atomically and closes it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_onehot_image(path: str | os.PathLike, image: np.ndarray, skeleton: Skeleton = OPENPOSE_18
                      ) -> None:
    """PNG of a one-hot pose image (B, T, 2K): x channels left, y channels right, joint colours."""
    colors = np.asarray(skeleton.joint_colors, np.float32) / 255  # (K, 3)
    image = np.asarray(image)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for axis, (ax, name) in enumerate(zip(axes, ("x", "y"), strict=True)):
        rgb = np.clip(np.einsum("btk,kc->btc", image[..., axis::2], colors), 0, 1)
        ax.imshow(rgb, aspect="auto", interpolation="nearest")
        ax.set_xlabel("frame")
        ax.set_ylabel(f"{name} bin")
        ax.set_title(f"{name} channels")
    save_figure(fig, path)
