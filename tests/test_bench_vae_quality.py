"""bench/vae_quality.py --dances: decoded segments written as dances the evaluator reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import vae_quality
from data_pipeline.segments import SegmentStore
from hotdance_jax import evaluate

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
    rows = vae_quality.joint_errors(decoded, confidence, data, 256, p99=1.0)
    assert "nose x" not in rows
    assert rows["neck x"] == pytest.approx((0.5, 0.5, 0.0))
    assert rows["neck y"] == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    mean, p99, share = rows["right_wrist y"]
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
    rows = vae_quality.sequence_errors(decoded, confidence, data, 256, p99=1.0)
    assert list(rows) == ["DANCE_R_2", "DANCE_W_1"]
    assert rows["DANCE_W_1"] == pytest.approx((0.5, 0.5, 0.0))
    mean, p99, share = rows["DANCE_R_2"]
    assert mean == pytest.approx(0.5 + 10 * 10 / (20 * 18 * 2))  # 10 of 720 errors 10 bins more
    assert p99 == pytest.approx(10.5)
    assert share == 1.0
