"""bench/vae_quality.py: decoded segments written as dances the evaluator reads, the errors by
joint and by performance, decoding in batches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import vae_quality
from data_pipeline.segments import SegmentStore
from hotdance_jax import evaluate
from hotdance_jax.pose import skeleton_of

BENCH = Path(vae_quality.__file__)


@pytest.mark.slow  # starts a process
def test_dances_are_the_real_and_the_decoded_test_segments(cache, tmp_path):
    root, config, _, _ = cache
    store = SegmentStore(root / "segments", "test")
    records = store.__getitems__(range(len(store)))
    frames = len(records[0]["keypoints"])
    run = subprocess.run([sys.executable, str(BENCH), "--segments", str(root / "segments"),
                          "--bins", str(config.pose.bins), "--num", "99", "--frames",
                          str(frames), "--dances", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codec", "real"]
    names = [f"{r['sequence_id']}_{int(r['start_frame']):06d}.npz" for r in records]
    for folder in ("codec", "real"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == sorted(names)
    real = evaluate.read_dance_set(tmp_path / "real", "")
    codec = evaluate.read_dance_set(tmp_path / "codec", "")
    assert real.fps == codec.fps == records[0]["fps"]
    record = records[0]
    real_dance = np.load(tmp_path / "real" / names[0])
    visible = record["confidence"] > 0
    np.testing.assert_allclose(real_dance["keypoints"][visible], record["keypoints"][visible])
    assert float(real_dance["music_offset"]) == np.float32(record["audio_offset"])
    decoded = np.load(tmp_path / "codec" / names[0])
    both = visible & (decoded["confidence"] > 0)
    bin_px = np.array([record["width"], record["height"]]) / config.pose.bins
    error = np.abs(decoded["keypoints"] - record["keypoints"])[both] / bin_px
    assert both.mean() > 0.9
    assert np.percentile(error, 99) <= 1.0


def test_joint_errors_find_the_joint_that_makes_the_p99():
    """Every keypoint 0.5 bins off in x, the right wrist's y 10 bins off in 2 of 20 frames: that
    joint and axis hold every error above the p99; a joint never seen is left out."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(100, 400, (3, 20, 18, 2)).astype(np.float32)
    confidence = np.ones((3, 20, 18), np.float32)
    confidence[..., 0] = 0.0  # the nose is never seen
    decoded = truth.copy()
    decoded[..., 0] += 1.0  # 0.5 bins: 512 px in 256 bins
    decoded[:, :2, 4, 1] += 20.0  # the right wrist's y, 10 bins
    data = {"keypoints": truth, "confidence": confidence,
            "size": np.full((3, 2), 512, np.float32)}
    error, seen = vae_quality.body_errors(decoded, confidence, data, 256)
    rows = vae_quality.joint_errors(error, seen, skeleton_of(18), p99=1.0)
    assert "nose x" not in rows
    every = 1 / len(rows)  # every joint but the nose seen in every frame
    assert rows["neck x"] == pytest.approx((0.5, 0.5, 0.0, every))
    assert rows["neck y"] == pytest.approx((0.0, 0.0, 0.0, every), abs=1e-6)
    mean, p99, share, _ = rows["right_wrist y"]
    assert mean == pytest.approx(1.0)  # 10 bins in 2 of 20 frames
    assert p99 == pytest.approx(10.0)
    assert share == 1.0


def test_sequence_errors_find_the_performance_that_makes_the_p99():
    """Three segments of two performances; only the second performance's segment is 10 bins off
    in its wrists' x in 5 frames: that performance holds every error above the p99."""
    rng = np.random.default_rng(1)
    truth = rng.uniform(100, 400, (3, 20, 18, 2)).astype(np.float32)
    confidence = np.ones((3, 20, 18), np.float32)
    decoded = truth + 1.0  # 0.5 bins everywhere: 512 px in 256 bins
    decoded[2, :5, [4, 7], 0] += 20.0
    data = {"keypoints": truth, "confidence": confidence, "size": np.full((3, 2), 512, np.float32),
            "sequences": ["DANCE_W_1", "DANCE_W_1", "DANCE_R_2"]}
    error, seen = vae_quality.body_errors(decoded, confidence, data, 256)
    rows = vae_quality.sequence_errors(error, seen, data["sequences"], p99=1.0)
    assert list(rows) == ["DANCE_R_2", "DANCE_W_1"]
    assert rows["DANCE_W_1"] == pytest.approx((0.5, 0.5, 0.0, 2 / 3))  # two of three segments
    mean, p99, share, _ = rows["DANCE_R_2"]
    assert mean == pytest.approx(0.5 + 10 * 10 / (20 * 18 * 2))  # 10 of 720 errors 10 bins more
    assert p99 == pytest.approx(10.5)
    assert share == 1.0


def test_speed_errors_find_the_fast_motion_that_makes_the_p99():
    """Still keypoints 0.5 bins off; the right wrist's x moves 3 bins a frame and is 10 bins off:
    the band of 2 to 4 bins/frame holds every error above the p99. Where the wrist is unseen for
    a frame (its place 0), its neighbours' speeds are not counted: no band of 4 and more."""
    truth = np.full((2, 20, 18, 2), 300.0, np.float32)
    truth[:, :, 4, 0] += 6.0 * np.arange(20)  # 3 bins a frame: 512 px in 256 bins
    confidence = np.ones((2, 20, 18), np.float32)
    confidence[1, 10, 4] = 0.0
    truth[1, 10, 4] = 0.0
    decoded = truth + 1.0
    decoded[:, :, 4, 0] += 20.0
    decoded[1, [9, 11], 4, 0] += 100.0  # would move the band's mean if counted
    data = {"keypoints": truth, "confidence": confidence, "size": np.full((2, 2), 512, np.float32)}
    error, seen = vae_quality.body_errors(decoded, confidence, data, 256)
    rows = vae_quality.speed_errors(error, seen, vae_quality.body_bins(truth, data["size"], 256),
                                    p99=1.0)
    assert list(rows) == ["0 to 1 bins/frame", "2 to 4 bins/frame"]
    counted = error.size - 6  # not the wrist in 3 frames, 2 axes
    fast = 2 * 20 - 3  # the wrist's x
    assert rows["0 to 1 bins/frame"] == pytest.approx((0.5, 0.5, 0.0, 1 - fast / counted))
    assert rows["2 to 4 bins/frame"] == pytest.approx((10.5, 10.5, 1.0, fast / counted))


class _Identity:
    """An autoencoder whose latents are the images."""

    refine_fn = None

    def encode(self, images):
        return images

    def decode(self, latents):
        return latents


def test_decoding_in_batches_gives_what_one_batch_gives():
    """Five segments decoded 2 at a time (three batches, the last one short) or all at once:
    the same keypoints and confidence in the same order, through the codec and an autoencoder."""
    rng = np.random.default_rng(2)
    truth = rng.uniform(50, 450, (5, 12, 18, 2)).astype(np.float32)
    confidence = np.ones((5, 12, 18), np.float32)
    confidence[1, :4, 3] = 0.0
    data = {"keypoints": truth, "confidence": confidence, "size": np.full((5, 2), 512, np.float32)}
    pose = {"decode_radius": 2, "smooth_window": 0}
    whole = vae_quality.decode_in_batches(data, 64, pose, {"same": _Identity()}, batch=8)
    parts = vae_quality.decode_in_batches(data, 64, pose, {"same": _Identity()}, batch=2)
    for row in ("codec", "same"):
        np.testing.assert_array_equal(parts[row]["keypoints"], whole[row]["keypoints"])
        np.testing.assert_array_equal(parts[row]["confidence"], whole[row]["confidence"])
        assert parts[row]["keypoints"].shape == (5, 12, 18, 2)
    np.testing.assert_allclose(whole["codec"]["keypoints"][confidence > 0],
                               truth[confidence > 0], atol=512 / 64)
    assert (whole["codec"]["confidence"][1, :4, 3] == 0).all()
    assert whole["same"]["latent_shape"] == whole["codec"]["latent_shape"] == (64, 12, 36)
    assert parts["same"]["segments_per_s"] > 0
