"""Pictures of dances: skeletons in OpenPose colours, keypoint speed against the music's beats."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import tempfile
import warnings
from pathlib import Path

import imageio_ffmpeg
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter1d

from hotdance_jax.io import atomic_path, save_wav
from hotdance_jax.metrics import mean_keypoint_speed
from hotdance_jax.metrics.hands import HAND_SIDES, MIDDLE_TIP
from hotdance_jax.pose.skeletons import Skeleton, skeleton_of

BEAT_FLASH_SECONDS = 0.08  # the beat indicator fades with this time constant around each beat


def draw_skeleton(
    ax: plt.Axes,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    skeleton: Skeleton | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    alpha: float = 1.0,
    linewidth: float = 2.0,
) -> None:
    """Draws one pose, (J, 2) pixels with (J,) confidence, on `ax` (image coordinates, y down).

    Limbs with an invisible end are skipped; `offset` (pixels) shifts the drawing. `skeleton`
    defaults to the pipeline layout of J joints (skeleton_of), as in every function here.
    """
    skeleton = skeleton or skeleton_of(len(keypoints))
    xy = np.asarray(keypoints) + np.asarray(offset)
    for i, (a, b) in enumerate(skeleton.limbs):
        if confidence[a] > 0 and confidence[b] > 0:
            color = np.asarray(skeleton.limb_colors[i]) / 255 if skeleton.limb_colors else "k"
            ax.plot(xy[[a, b], 0], xy[[a, b], 1], color=color, lw=linewidth, alpha=alpha,
                    solid_capstyle="round")


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


def save_onehot_image(path: str | os.PathLike, image: np.ndarray,
                      skeleton: Skeleton | None = None) -> None:
    """PNG of a one-hot pose image (B, T, 2K): x channels left, y channels right, joint colours."""
    skeleton = skeleton or skeleton_of(np.shape(image)[-1] // 2)
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


def hand_joint_radius(hand: np.ndarray, body_width: int) -> int:
    """Joint radius (pixels) for a hand of (21, 2) drawn pixels: half the body's line width, at
    most a thirtieth of the wrist to middle finger tip distance (0: no joints drawn), so that the
    fingers of a small hand stay apart."""
    reach = np.linalg.norm(hand[MIDDLE_TIP] - hand[0])
    return int(min(body_width // 2, reach // 30))


def skeleton_frame(keypoints: np.ndarray, confidence: np.ndarray, size: tuple[int, int],
                   scale: float, beat: float = 0.0, skeleton: Skeleton | None = None
                   ) -> np.ndarray:
    """(height, width, 3) uint8 picture of one pose ((K, 2) pixels times `scale`) on black, in
    the skeleton's colours, with a beat indicator in the top-left corner lit to `beat` in [0, 1].
    Hands are drawn as OpenPose draws them, thinner than the body: their limbs and joints at half
    the body's line width (pixels); a small hand's joints smaller or not at all, its limbs one
    pixel wide (hand_joint_radius)."""
    skeleton = skeleton or skeleton_of(len(keypoints))
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    xy = np.nan_to_num(np.asarray(keypoints, np.float64)) * scale
    body_width = max(2, round(min(size) / 120))
    radius = np.full(skeleton.num_joints, body_width)
    for side in HAND_SIDES if skeleton.has_hands else ():
        radius[skeleton.hand(side)] = hand_joint_radius(xy[skeleton.hand(side)], body_width)
    for i, (a, b) in enumerate(skeleton.limbs):
        if confidence[a] > 0 and confidence[b] > 0:
            width = max(1, radius[b]) if skeleton.is_hand_limb(i) else body_width
            draw.line([tuple(xy[a]), tuple(xy[b])], fill=tuple(skeleton.limb_colors[i]),
                      width=int(width))
    for k in np.flatnonzero((np.asarray(confidence) > 0) & (radius > 0)):
        x, y = xy[k]
        r = radius[k]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(skeleton.joint_colors[k]))
    radius = max(6, min(size) // 30)
    level = round(40 + 215 * beat)
    draw.ellipse([radius, radius, 3 * radius, 3 * radius], fill=(level, level, level))
    return np.asarray(image)


def beat_levels(beat_times: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """(num_frames,) in [0, 1]: exp(-(d / BEAT_FLASH_SECONDS)^2), d the time to the nearest beat."""
    t = np.arange(num_frames) / fps
    if len(beat_times) == 0:
        return np.zeros(num_frames)
    d = np.abs(t[:, None] - np.asarray(beat_times)[None, :]).min(axis=1)
    return np.exp(-((d / BEAT_FLASH_SECONDS) ** 2))


def save_video(
    path: str | os.PathLike,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    fps: float,
    width: int,
    height: int,
    beat_times: np.ndarray,
    audio: np.ndarray | None = None,
    sample_rate: int = 22050,
    max_side: int = 720,
    skeleton: Skeleton | None = None,
) -> None:
    """An H.264 mp4 of a (T, K, 2) pixel dance of `skeleton` in a width x height frame (scaled so
    its longer side is at most max_side), with `audio` ((samples,) from the dance's first frame)
    muxed in as AAC and a beat indicator flashing on `beat_times` (seconds); atomically."""
    scale = min(1.0, max_side / max(width, height))
    size = (2 * round(width * scale / 2), 2 * round(height * scale / 2))
    levels = beat_levels(beat_times, len(keypoints), fps)
    with tempfile.TemporaryDirectory(prefix="hotdance-video-") as tmp, atomic_path(path) as out:
        music = None
        if audio is not None:
            music = Path(tmp) / "music.wav"
            save_wav(music, audio, sample_rate)
        writer = imageio_ffmpeg.write_frames(
            str(out), size, fps=fps, macro_block_size=2, ffmpeg_log_level="error",
            audio_path=str(music) if music else None, audio_codec="aac" if music else None,
            output_params=["-shortest"] if music else None)
        with warnings.catch_warnings():  # ffmpeg starts by fork-exec; nothing of JAX runs in it
            warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
            writer.send(None)
        try:
            for t in range(len(keypoints)):
                writer.send(skeleton_frame(keypoints[t], confidence[t], size, scale, levels[t],
                                           skeleton))
        finally:
            writer.close()
