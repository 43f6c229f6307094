"""The one-hot pose image codec (docs/design.md section 1).

A pose sequence of T frames and K keypoints becomes an image (B, T, 2K), channels last: channel 2k
is the x coordinate of keypoint k, channel 2k+1 its y; for every frame t the column image[:, t, c]
is zero except at bin floor(coordinate / frame_size * B), which holds the keypoint's confidence.
Decoding picks a bin per column and refines it to sub-bin precision by a soft-argmax in a small
window around it. The bin is the column's peak, or with a jump cost the most probable path of
bins through time (`track`): a generated or reconstructed column can hold two modes of similar
mass, and a per-frame peak then flips between them, a jump of tens of bins in one frame. Both
directions are pure jax.numpy, jit-compatible, with any leading batch axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hotdance_jax.pose.hand_frame import frame_size, from_wrist_frames, to_wrist_frames

DEFAULT_DECODE_RADIUS = 2
DEFAULT_VISIBILITY_THRESHOLD = 0.1
DEFAULT_JUMP_COST = 1.0  # nats per bin of motion between frames (`track`)
DEFAULT_JUMP_CAP = 16.0  # nats, the most a jump costs: 2 x cap < log(1 / _FLOOR)
DEFAULT_FREE_MOTION = 4  # bins per frame a path moves at no cost (`track`)
_FLOOR = 1e-20  # probability floor of a bin in `track`: log(1 / _FLOOR) = 46 nats


def encode(
    keypoints: jax.Array, confidence: jax.Array, width: float, height: float, bins: int,
    hand_zoom: float = 0.0,
) -> jax.Array:
    """Pose sequence -> one-hot image.

    Args:
      keypoints: (..., T, K, 2) pixels, x right and y down.
      confidence: (..., T, K) in [0, 1].
      width, height: frame size in pixels (scalars or arrays broadcastable to (...,)).
      bins: B, the number of bins across the frame in each axis.
      hand_zoom: > 0: hands in their wrists' frames at this zoom (pose/hand_frame.py).
    Returns:
      (..., B, T, 2K) float32. A channel's column is all zero where the keypoint's coordinate is
      outside [0, frame size), non-finite, or its confidence is 0.
    """
    keypoints, confidence = to_wrist_frames(jnp.asarray(keypoints, jnp.float32),
                                            jnp.asarray(confidence, jnp.float32), width, height,
                                            hand_zoom)
    size = frame_size(width, height)
    scaled = keypoints * bins / size[..., None, None, :]  # (..., T, K, 2) bins, in [0, B) inside
    inside = jnp.isfinite(scaled) & (scaled >= 0.0) & (scaled < bins)
    hot = jnp.where(inside, confidence[..., None], 0.0)  # (..., T, K, 2)
    bin_index = jnp.floor(jnp.where(inside, scaled, 0.0)).astype(jnp.int32)
    columns = jax.nn.one_hot(bin_index, bins, dtype=jnp.float32) * hot[..., None]  # (...,T,K,2,B)
    columns = columns.reshape(*columns.shape[:-3], -1, bins)  # (..., T, 2K, B)
    return jnp.moveaxis(columns, -1, -3)  # (..., B, T, 2K)


def decode(
    image: jax.Array,
    width: float,
    height: float,
    radius: int = DEFAULT_DECODE_RADIUS,
    threshold: float = DEFAULT_VISIBILITY_THRESHOLD,
    jump_cost: float = DEFAULT_JUMP_COST,
    jump_cap: float = DEFAULT_JUMP_CAP,
    free_motion: int = DEFAULT_FREE_MOTION,
    hand_zoom: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """One-hot (or blurred, VAE-reconstructed) image -> pose sequence.

    Args:
      image: (..., B, T, 2K).
      width, height: frame size in pixels.
      radius: the soft-argmax window is the peak bin +- radius bins.
      threshold: a column whose window mass is below it decodes as invisible.
      jump_cost, jump_cap, free_motion: jump_cost 0 picks each column's peak bin; > 0 picks
        the bins by `track` with these costs (nats per bin of motion from one frame to the
        next beyond free_motion bins, and at most jump_cap).
      hand_zoom: the zoom the image was encoded with (hands hung from their decoded wrists).
    Returns:
      keypoints (..., T, K, 2) pixels (NaN where invisible) and confidence (..., T, K). A bin's
      position is its centre, so an exact one-hot decodes within half a bin of the encoded point.
      The confidence is the window's mass clipped to [0, 1] (the hot value for a one-hot column;
      unlike the peak height it survives blurring), the smaller of the x and y channels'. The
      visibility test uses the same mass: a decoder that spreads a visible column over a few
      bins (every trained VAE does) keeps it visible, where its peak alone may fall below
      threshold.
    """
    image = jnp.asarray(image, jnp.float32)
    bins = image.shape[-3]
    columns = jnp.moveaxis(image, -3, -1)  # (..., T, 2K, B)
    offsets = jnp.arange(-radius, radius + 1)
    if jump_cost > 0:
        path = jnp.moveaxis(track(jnp.moveaxis(columns, -3, 0), threshold, jump_cost, jump_cap,
                                  free_motion), 0, -2)
        # The path picks the mode; its peak is the highest bin within the radius (a path that
        # pays for motion lags a moving peak by a bin or so).
        peak = path + offsets[jnp.argmax(_window(columns, path, offsets), axis=-1)]
    else:
        peak = jnp.argmax(columns, axis=-1)
    window = peak[..., None] + offsets  # (..., T, 2K, W)
    weights = _window(columns, peak, offsets)
    mass = weights.sum(axis=-1)
    position = (weights * (window + 0.5)).sum(axis=-1) / jnp.maximum(mass, 1e-12)  # bins

    position = position.reshape(*position.shape[:-1], -1, 2)  # (..., T, K, 2)
    visible = (mass >= threshold).reshape(position.shape).all(axis=-1)
    conf = jnp.clip(mass, 0.0, 1.0).reshape(position.shape).min(axis=-1)
    keypoints = position / bins * frame_size(width, height)[..., None, None, :]
    keypoints = jnp.where(visible[..., None], keypoints, jnp.nan)
    return from_wrist_frames(keypoints, jnp.where(visible, conf, 0.0), width, height, hand_zoom)


def _window(columns: jax.Array, centre: jax.Array, offsets: jax.Array) -> jax.Array:
    """The values of columns (..., B) at bins centre (...) + offsets (W,), 0 outside [0, B):
    (..., W), negatives clipped to 0."""
    bins = columns.shape[-1]
    window = centre[..., None] + offsets
    values = jnp.take_along_axis(columns, jnp.clip(window, 0, bins - 1), axis=-1)
    return jnp.where((window >= 0) & (window < bins), jnp.maximum(values, 0.0), 0.0)


def track(columns: jax.Array, threshold: float, jump_cost: float, jump_cap: float,
          free_motion: int) -> jax.Array:
    """The most probable path of bins through time (Viterbi) of columns (T, ..., B) -> (T, ...).

    A frame's cost of bin b is -log of the column's probability there (the column divided by its
    mass, floored at 1e-20), or 0 where the column's mass is below `threshold` (an invisible
    keypoint leaves the path free). Moving d bins between frames costs
    min(jump_cost max(d - free_motion, 0), jump_cap) nats: motion up to free_motion bins per
    frame is free (a dancer's keypoints move that fast), a jump to another mode is taken only
    where that mode is the more probable over enough frames to pay for it. A frame whose mass
    sits in one bin (an exact one-hot column) is always followed: leaving it costs
    log(1 / 1e-20) = 46 nats, more than going there and back (2 jump_cap, for caps < 23).
    The minimum over the previous bin takes O(B): a running minimum over +-free_motion bins,
    then two cumulative minima for the L1 part.
    """
    mass = columns.sum(axis=-1, keepdims=True)
    probability = columns / jnp.maximum(mass, 1e-12)
    unary = jnp.where(mass >= threshold, -jnp.log(jnp.maximum(probability, 0.0) + _FLOOR), 0.0)
    bins = jnp.arange(columns.shape[-1], dtype=columns.dtype)
    last_axis = columns.ndim - 2

    def arrive(cost: jax.Array) -> jax.Array:
        """min over b' of cost(b') + the cost of moving b' -> b, for every b."""
        near = jax.lax.reduce_window(cost, jnp.inf, jax.lax.min,
                                     (1,) * last_axis + (2 * free_motion + 1,),
                                     (1,) * (last_axis + 1),
                                     [(0, 0)] * last_axis + [(free_motion, free_motion)])
        from_below = jax.lax.cummin(near - jump_cost * bins, axis=last_axis) + jump_cost * bins
        from_above = jax.lax.cummin(near + jump_cost * bins, axis=last_axis,
                                    reverse=True) - jump_cost * bins
        anywhere = cost.min(axis=-1, keepdims=True) + jump_cap
        return jnp.minimum(jnp.minimum(from_below, from_above), anywhere)

    def forward(cost, frame_unary):
        cost = arrive(cost) + frame_unary
        cost = cost - cost.min(axis=-1, keepdims=True)
        return cost, cost

    first = unary[0] - unary[0].min(axis=-1, keepdims=True)
    _, costs = jax.lax.scan(forward, first, unary[1:])
    costs = jnp.concatenate([first[None], costs])

    def backward(next_bin, cost):
        distance = jnp.abs(bins - next_bin[..., None])
        move = jnp.minimum(jump_cost * jnp.maximum(distance - free_motion, 0.0), jump_cap)
        chosen = jnp.argmin(cost + move, axis=-1)
        return chosen, chosen

    last = jnp.argmin(costs[-1], axis=-1)
    _, path = jax.lax.scan(backward, last, costs[:-1], reverse=True)
    return jnp.concatenate([path, last[None]])


def decode_settings(pose_config) -> dict:
    """decode's keyword arguments from a config's `pose` section (a run's saved config may
    predate some: those take the codec's defaults)."""
    return {"radius": pose_config.get("decode_radius", DEFAULT_DECODE_RADIUS),
            "threshold": pose_config.get("visibility_threshold", DEFAULT_VISIBILITY_THRESHOLD),
            "jump_cost": pose_config.get("decode_jump_cost", DEFAULT_JUMP_COST),
            "jump_cap": pose_config.get("decode_jump_cap", DEFAULT_JUMP_CAP),
            "free_motion": pose_config.get("decode_free_motion", DEFAULT_FREE_MOTION),
            "hand_zoom": pose_config.get("hand_zoom", 0.0)}


jit_decode = jax.jit(decode, static_argnames=("radius", "jump_cost", "jump_cap", "free_motion",
                                             "hand_zoom"))  # per shape
