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
