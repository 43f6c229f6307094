"""How far decoded poses lie from the poses that were encoded: an autoencoder's figures, in bins
of the one-hot image."""

from __future__ import annotations

import numpy as np

from hotdance_jax.pose.skeletons import OPENPOSE_18, Skeleton

MIN_APART_BINS = 4.0  # a left/right pair closer than this is not counted by side_swaps


def reconstruction_errors(keypoints: np.ndarray, confidence: np.ndarray,
                          true_keypoints: np.ndarray, true_confidence: np.ndarray,
                          size: np.ndarray, bins: int,
                          skeleton: Skeleton = OPENPOSE_18) -> dict[str, float]:
    """Decoded keypoints (N, T, K, 2) pixels and confidence (N, T, K) against the true ones, in
    frames of `size` (N, 2) pixels (width, height) cut into `bins` bins each way.

    error_bins_mean / error_bins_p99: the per-axis error in bins of every keypoint visible in
    both; visibility_accuracy: the fraction of keypoints whose visibility was kept; side_swaps:
    of the left/right twins visible in both whose true places lie at least MIN_APART_BINS
    apart, the fraction decoded nearer their twin's true place than their own (0 for an
    autoencoder that keeps sides, 0.5 for one that cannot tell left from right). NaN where
    nothing is counted.
    """
    scale = bins / np.asarray(size, np.float32)[:, None, None, :]  # bins per pixel
    decoded, truth = keypoints * scale, true_keypoints * scale
    seen = (confidence > 0) & (true_confidence > 0)
    error = np.abs(decoded - truth)[seen]
    own, other, counted = [], [], []
    for a, b in skeleton.flip_pairs:
        apart = np.linalg.norm(truth[..., a, :] - truth[..., b, :], axis=-1) >= MIN_APART_BINS
        both = seen[..., a] & seen[..., b] & apart
        for j, twin in ((a, b), (b, a)):
            own.append(np.linalg.norm(decoded[..., j, :] - truth[..., j, :], axis=-1))
            other.append(np.linalg.norm(decoded[..., j, :] - truth[..., twin, :], axis=-1))
            counted.append(both)
    counted = np.stack(counted)
    swapped = (np.stack(other) < np.stack(own))[counted]
    nan = float("nan")
    return {
        "error_bins_mean": float(error.mean()) if error.size else nan,
        "error_bins_p99": float(np.percentile(error, 99)) if error.size else nan,
        "visibility_accuracy": float(((confidence > 0) == (true_confidence > 0)).mean()),
        "side_swaps": float(swapped.mean()) if swapped.size else nan,
    }
