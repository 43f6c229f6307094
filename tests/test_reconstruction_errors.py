"""An autoencoder's figures: errors in bins, visibility, and left/right swaps (in the plane and in
height)."""

from __future__ import annotations

import numpy as np

from hotdance_jax.metrics import reconstruction_errors
from hotdance_jax.pose import OPENPOSE_18

SIZE = np.array([[512.0, 256.0]], np.float32)  # 2 px per bin across, 1 down at 256 bins


def poses(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(1, 8, 18, 2) keypoints with every left joint 40 px right of its twin and 10 px (10 bins)
    lower, all visible."""
    rng = np.random.default_rng(seed)
    kp = rng.uniform(100, 200, (1, 8, 18, 2)).astype(np.float32)
    for a, b in OPENPOSE_18.flip_pairs:
        kp[..., b, :] = kp[..., a, :] + np.array([40.0, 10.0])
    return kp, np.ones((1, 8, 18), np.float32)


def test_exact_poses_have_no_error_and_no_swaps():
    kp, conf = poses()
    figures = reconstruction_errors(kp, conf, kp, conf, SIZE, 256)
    assert figures == {"error_bins_mean": 0.0, "error_bins_p99": 0.0,
                       "visibility_accuracy": 1.0, "side_swaps": 0.0, "height_swaps": 0.0}


def test_errors_are_in_bins_of_each_axis():
    kp, conf = poses()
    shifted = kp + np.array([4.0, 0.0], np.float32)
    figures = reconstruction_errors(shifted, conf, kp, conf, SIZE, 256)
    assert figures["error_bins_mean"] == 1.0  # 4 px across is 2 bins, on half of the axes
    assert figures["error_bins_p99"] == 2.0
    assert figures["side_swaps"] == 0.0


def test_twins_traded_are_all_swaps_and_one_collapsed_pair_half():
    kp, conf = poses()
    mirrored = kp[..., OPENPOSE_18.flip_permutation(), :]
    figures = reconstruction_errors(mirrored, conf, kp, conf, SIZE, 256)
    assert figures["side_swaps"] == figures["height_swaps"] == 1.0
    collapsed = kp.copy()
    collapsed[..., 7, :] = kp[..., 4, :]  # the left wrist decoded on the right one
    pairs = len(OPENPOSE_18.flip_pairs)
    assert reconstruction_errors(collapsed, conf, kp, conf, SIZE, 256)["side_swaps"] == (
        1 / (2 * pairs))  # one of the two joints of one pair, in every frame


def test_invisible_and_close_twins_are_not_counted():
    kp, conf = poses()
    decoded_conf = conf.copy()
    decoded_conf[..., 0] = 0  # the nose lost
    figures = reconstruction_errors(kp, decoded_conf, kp, conf, SIZE, 256)
    assert figures["visibility_accuracy"] == 1 - 1 / 18
    for a, b in OPENPOSE_18.flip_pairs:
        kp[..., b, :] = kp[..., a, :] + np.array([6.0, 0.0])  # 3 bins apart: too close to say
    assert np.isnan(reconstruction_errors(kp + 1.0, conf, kp, conf, SIZE, 256)[
        "side_swaps"])


def test_heights_traded_between_twins_are_height_swaps_only():
    """Each joint decoded at its own x and its twin's y (the y channels taken for each other's):
    the sides across are kept, which twin is the higher is not."""
    kp, conf = poses()
    traded = kp.copy()
    traded[..., 1] = kp[..., OPENPOSE_18.flip_permutation(), 1]
    figures = reconstruction_errors(traded, conf, kp, conf, SIZE, 256)
    assert figures["side_swaps"] == 0.0  # 10 bins off in y, 20 from the twin across
    assert figures["height_swaps"] == 1.0
    level = kp.copy()
    for a, b in OPENPOSE_18.flip_pairs:
        level[..., b, 1] = kp[..., a, 1] + 2.0  # 2 bins apart in height: too close to say
    assert np.isnan(reconstruction_errors(level, conf, level, conf, SIZE, 256)["height_swaps"])
