"""How far decoded poses lie from the poses that were encoded: an autoencoder's figures, in bins
of the one-hot image."""

from __future__ import annotations

import numpy as np

from hotdance_jax.metrics.hands import HAND_SIDES, hand_lengths
from hotdance_jax.pose.skeletons import Skeleton, skeleton_of

MIN_APART_BINS = 4.0  # a left/right pair closer than this is not counted by side_swaps


def in_bins(keypoints: np.ndarray, size: np.ndarray, bins: int) -> np.ndarray:
    """Keypoints (N, T, K, 2) pixels in frames of `size` (N, 2) pixels, in bins (`bins` a side)."""
    return keypoints * (bins / np.asarray(size, np.float32)[:, None, None, :])


def reconstruction_errors(keypoints: np.ndarray, confidence: np.ndarray,
                          true_keypoints: np.ndarray, true_confidence: np.ndarray,
                          size: np.ndarray, bins: int,
                          skeleton: Skeleton | None = None) -> dict[str, float]:
    """Decoded keypoints (N, T, K, 2) pixels and confidence (N, T, K) against the true ones, in
    frames of `size` (N, 2) pixels (width, height) cut into `bins` bins each way.

    error_bins_mean / error_bins_p99: the per-axis error in bins of every keypoint visible in
    both; visibility_accuracy: the fraction of keypoints whose visibility was kept; side_swaps:
    of the left/right twins visible in both whose true places lie at least MIN_APART_BINS
    apart, the fraction decoded nearer their twin's true place than their own (0 for an
    autoencoder that keeps sides, 0.5 for one that cannot tell left from right); height_swaps:
    the same along y alone, of twins at least MIN_APART_BINS apart in height, the fraction
    whose decoded height is nearer their twin's (0.5: which of the two is the higher one is
    lost, as when the decoder takes each joint's y channel for its twin's). NaN where nothing
    is counted. These are of the body's keypoints; with hands, hand_error_mean / hand_error_p99
    add the distance of each hand keypoint seen in both from its true place in the true hand's
    length (metrics/hands.py, over the segment's T frames), and hand_shape_error_mean / _p99
    the same of each finger keypoint's offset from its hand's wrist: the hand's shape, wherever
    the arm put it.
    """
    skeleton = skeleton or skeleton_of(np.shape(keypoints)[-2])
    decoded, truth = in_bins(keypoints, size, bins), in_bins(true_keypoints, size, bins)
    seen = (confidence > 0) & (true_confidence > 0)
    body = skeleton.body
    error = np.abs(decoded - truth)[..., body, :][seen[..., body]]
    figures = {
        "error_bins_mean": _mean(error),
        "error_bins_p99": _p99(error),
        "visibility_accuracy": float(((confidence > 0) == (true_confidence > 0)).mean()),
        "side_swaps": _swaps(decoded, truth, seen, skeleton, slice(None)),
        "height_swaps": _swaps(decoded, truth, seen, skeleton, slice(1, 2)),
    }
    if skeleton.has_hands:
        for name, hand_error in _hand_errors(keypoints, true_keypoints, true_confidence, seen,
                                             skeleton).items():
            figures |= {f"{name}_mean": _mean(hand_error), f"{name}_p99": _p99(hand_error)}
    return figures


def _hand_errors(keypoints: np.ndarray, true_keypoints: np.ndarray, true_confidence: np.ndarray,
                 seen: np.ndarray, skeleton: Skeleton) -> dict[str, np.ndarray]:
    """The hand keypoints' errors in hand lengths: hand_error of their places, hand_shape_error
    of their offsets from their hand's wrist (the wrist itself left out), each over the keypoints
    seen in both."""
    lengths = hand_lengths(true_keypoints, true_confidence, skeleton)  # (N, 2) pixels
    errors = {"hand_error": [], "hand_shape_error": []}
    for i, side in enumerate(HAND_SIDES):
        hand = skeleton.hand(side)
        decoded, truth = keypoints[..., hand, :], true_keypoints[..., hand, :]
        both = seen[..., hand]
        shape = (decoded - decoded[..., :1, :]) - (truth - truth[..., :1, :])
        for name, distance, counted in (
                ("hand_error", np.linalg.norm(decoded - truth, axis=-1), both),
                ("hand_shape_error", np.linalg.norm(shape, axis=-1)[..., 1:],
                 both[..., 1:] & both[..., :1])):
            distance = distance / lengths[:, None, None, i]
            errors[name].append(distance[counted & np.isfinite(distance)])
    return {name: np.concatenate(values) for name, values in errors.items()}


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _p99(values: np.ndarray) -> float:
    return float(np.percentile(values, 99)) if values.size else float("nan")


def _swaps(decoded: np.ndarray, truth: np.ndarray, seen: np.ndarray, skeleton: Skeleton,
           axes: slice) -> float:
    """Of the left/right twins seen in both whose true places on `axes` of (N, T, K, 2) bins lie
    at least MIN_APART_BINS apart, the fraction decoded nearer their twin's place; NaN if none."""
    own, other, counted = [], [], []
    for a, b in skeleton.flip_pairs:
        apart = np.linalg.norm(truth[..., a, axes] - truth[..., b, axes], axis=-1)
        both = seen[..., a] & seen[..., b] & (apart >= MIN_APART_BINS)
        for j, twin in ((a, b), (b, a)):
            own.append(np.linalg.norm(decoded[..., j, axes] - truth[..., j, axes], axis=-1))
            other.append(np.linalg.norm(decoded[..., j, axes] - truth[..., twin, axes], axis=-1))
            counted.append(both)
    swapped = (np.stack(other) < np.stack(own))[np.stack(counted)]
    return float(swapped.mean()) if swapped.size else float("nan")
