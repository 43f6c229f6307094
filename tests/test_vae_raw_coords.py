"""raw-coords, the raw-coordinate ablation's autoencoder: round trip, latent layout, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from hotdance_jax.errors import InputError
from hotdance_jax.pose import decode, encode
from hotdance_jax.vae import load_autoencoder
from tests.test_pose import DWM_FRAME, bin_error, load_dwm_2d

F = 54  # features per frame: 36 coordinates, 18 visibilities


def random_poses(frames=64, seed=0, width=640.0, height=480.0):
    """(1, T, 18, 2) pixels, (1, T, 18) confidence, frame size: random joints, a fifth of them
    invisible, confidences in [0.2, 1], one joint on the frame's edge, one with y outside."""
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(0, 1, (1, frames, 18, 2)) * [width, height]
    confidence = rng.uniform(0.2, 1.0, (1, frames, 18))
    confidence[rng.uniform(size=confidence.shape) < 0.2] = 0
    keypoints[0, 5, 3] = [0.0, height - 1e-3]
    confidence[0, 5, 3] = 1.0
    keypoints[0, 9, 4, 1] = height + 5.0
    return keypoints.astype(np.float32), confidence.astype(np.float32), (width, height)


def real_poses():
    """The first 256 frames of a Dance-with-Melody performance (needs HOTDANCE_SHARED)."""
    keypoints, confidence = load_dwm_2d("C_2")
    return keypoints[None, :256], confidence[None, :256], DWM_FRAME


@pytest.mark.parametrize(("poses", "bins"), [(random_poses, 64), (real_poses, 256)])
def test_round_trip_keeps_keypoints_to_the_codec_floor_and_visibility_exactly(poses, bins):
    keypoints, confidence, frame = poses()
    images = encode(keypoints, confidence, *frame, bins)
    autoencoder = load_autoencoder("raw-coords", "", 36, bins=bins)
    latents = autoencoder.encode(images)
    frames = keypoints.shape[1]
    assert latents.shape == (1, 1, frames // 8, 8 * F)
    back = autoencoder.decode(latents)
    assert back.shape == images.shape
    codec_keypoints, codec_confidence = decode(images, *frame)
    round_keypoints, round_confidence = decode(back, *frame)
    np.testing.assert_array_equal(round_confidence, codec_confidence)
    visible = np.asarray(round_confidence) > 0
    assert visible.mean() > 0.5
    assert bin_error(round_keypoints, keypoints, bins, frame)[visible].max() <= 0.5 + 1e-3
    np.testing.assert_allclose(np.asarray(round_keypoints)[visible],
                               np.asarray(codec_keypoints)[visible], atol=1e-3)


def test_latent_layout_by_hand():
    keypoints, confidence, frame = random_poses(frames=16)
    bins = 64
    autoencoder = load_autoencoder("raw-coords", "", 36, bins=bins)
    assert (autoencoder.stride, autoencoder.latent_channels) == ((64, 8), 8 * F)
    latents = np.asarray(autoencoder.encode(encode(keypoints, confidence, *frame, bins)))
    decoded, visibility = (np.asarray(a) for a in decode(encode(keypoints, confidence, *frame,
                                                                 bins), *frame))
    u = decoded / np.asarray(frame)  # (1, T, 18, 2) in [0, 1)
    for t, k in [(0, 0), (13, 7), (9, 4), (5, 3)]:  # (9, 4) has y outside: invisible
        column, phase = divmod(t, 8)
        cell = latents[0, 0, column, phase * F:(phase + 1) * F]
        np.testing.assert_allclose(cell[36 + k], visibility[0, t, k])
        expected = 2 * u[0, t, k] - 1 if visibility[0, t, k] > 0 else [0.0, 0.0]
        np.testing.assert_allclose(cell[2 * k:2 * k + 2], expected, atol=1e-6)
    assert visibility[0, 9, 4] == 0
    # decode: x at 2u - 1 = -0.5 -> u = 0.25, bin 16 of 64; y at 0.5 -> bin 48; visibility 1.7
    # clipped to 1; keypoint 1's x at 1.0 (u = 1) is outside the frame: an empty x column (the
    # codec's decode calls the keypoint invisible), its y at 0 in bin 32.
    hand = np.zeros((1, 1, 1, 8 * F), np.float32)
    hand[..., [0, 1, 36]] = [-0.5, 0.5, 1.7]
    hand[..., [2, 3, 37]] = [1.0, 0.0, 1.0]
    image = np.asarray(autoencoder.decode(hand))
    assert image.shape == (1, 64, 8, 36)
    assert image[0, 16, 0, 0] == image[0, 48, 0, 1] == 1.0
    assert image[0, :, 0, :2].sum() == 2.0
    assert not image[0, :, 0, 2].any()
    assert image[0, 32, 0, 3] == 1.0
    assert decode(image, 1.0, 1.0)[1][0, 0, 1] == 0
    assert not image[0, :, 1:].any()  # frames 1..7: visibility 0


def test_identity_depends_on_the_bins_only():
    a, b = (load_autoencoder("raw-coords", "", 36, bins=64) for _ in range(2))
    assert a.weights_sha256 == b.weights_sha256
    assert len(a.weights_sha256) == 64
    assert load_autoencoder("raw-coords", "", 36, bins=32).weights_sha256 != a.weights_sha256
    assert a.weights == ""


def test_bad_input_is_refused():
    with pytest.raises(InputError, match=r"raw-coords has no weights; got 'x\.msgpack'"):
        load_autoencoder("raw-coords", "x.msgpack", 36, bins=64)
    with pytest.raises(InputError, match="needs bins"):
        load_autoencoder("raw-coords", "", 36)
    with pytest.raises(InputError, match="image_channels must be 2K"):
        load_autoencoder("raw-coords", "", 35, bins=64)
    autoencoder = load_autoencoder("raw-coords", "", 36, bins=64)
    with pytest.raises(InputError, match="must have 64 bins"):
        autoencoder.encode(np.zeros((1, 128, 8, 36), np.float32))
    with pytest.raises(InputError, match="one row"):
        autoencoder.decode(np.zeros((1, 2, 1, 8 * F), np.float32))
