"""The autoencoder's training crops: windows of whole frames, mirrored, moved in the frame."""

from __future__ import annotations

import numpy as np

from hotdance_jax.vae import train as vae_train
from tests.test_vae_train import micro_config


def ramp_record() -> dict:
    """A 64-frame segment whose joints all sit at (frame, frame) pixels in a 640 x 360 frame."""
    frames = np.arange(64, dtype=np.float32)
    return {"keypoints": np.stack([frames, frames], -1)[:, None, :].repeat(18, 1),
            "confidence": np.ones((64, 18), np.float32), "width": 640.0, "height": 360.0}


def test_random_crop_is_a_window_of_whole_frames_mirrored_at_the_flip_rate():
    record = ramp_record()
    train = micro_config().vae.train
    train.update(crop_frames=16, flip=0.0)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        crop = vae_train.random_crop(record, rng, train)
        y = crop["keypoints"][:, 0, 1]
        np.testing.assert_array_equal(np.diff(y), 1.0)  # consecutive frames ...
        assert 0 <= y[0] <= 64 - 16  # ... inside the segment
        starts.add(float(y[0]))
        np.testing.assert_array_equal(crop["keypoints"][:, 0, 0], y)  # not mirrored
        np.testing.assert_array_equal(crop["size"], [640.0, 360.0])
    assert len(starts) > 20
    train.flip = 1.0
    crop = vae_train.random_crop(record, rng, train)
    y = crop["keypoints"][:, 0, 1]
    np.testing.assert_allclose(crop["keypoints"][:, 0, 0], 640.0 - y)  # mirrored in x


def test_a_shifted_crop_moves_as_one_and_stays_in_the_frame():
    record = ramp_record()
    record["keypoints"][:, 3] += [300.0, 100.0]  # one joint far off: a box of 315 x 115 px
    train = micro_config().vae.train
    train.update(crop_frames=16, flip=0.0, shift=True)
    rng = np.random.default_rng(0)
    ramp = record["keypoints"][:16] - record["keypoints"][0, 0]  # the crop's shape, at 0
    corners = []
    for _ in range(50):
        kp = vae_train.random_crop(record, rng, train)["keypoints"]
        np.testing.assert_allclose(kp - kp[0, 0], ramp, atol=1e-3)  # one offset for all
        assert kp.min() >= 0
        assert (kp.max(axis=(0, 1)) <= [639.0, 359.0]).all()
        corners.append(kp[0, 0])
    assert (np.ptp(np.array(corners), axis=0) > 100).all()  # all over the frame, both ways
