"""The command lines: config files and overrides, one-line errors, and the demo end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k not in ("LIBROSA_DATA_DIR", "HOTDANCE_SHARED")}


def run_demo(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "hotdance_jax.demo", "--config", "configs/tiny_cpu.py",
         "--out", str(tmp_path / "out"), *args],
        capture_output=True, text=True, cwd=REPO, env=ENV,
    )


def test_demo_runs_end_to_end_with_an_override(tmp_path):
    result = run_demo(tmp_path, "--config.data.synthetic.seconds=5")
    assert result.returncode == 0, result.stderr
    assert "5 s," in result.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "dance.npz", "music.wav", "onehot.png", "speed_beats.png"]
    with np.load(out / "dance.npz") as dance:
        frames = dance["keypoints"].shape[0]
        assert frames == 5 * 30 // 64 * 64  # whole 64-frame segments of 5 s at 30 fps
        assert dance["keypoints"].shape == (frames, 18, 2)
        assert dance["confidence"].shape == (frames, 18)
        assert str(dance["skeleton"]) == "openpose18"
        assert float(dance["fps"]) == 30.0
        assert np.isfinite(dance["keypoints"]).all()


def test_unknown_config_key_is_a_one_line_error(tmp_path):
    result = run_demo(tmp_path, "--config.pose.nope=3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: config key 'nope' does not exist (check the --config.* overrides)"]
    assert not (tmp_path / "out").exists()


def test_bad_override_value_and_missing_config_file(tmp_path):
    bad_value = run_demo(tmp_path, "--config.pose.bins=many")
    assert bad_value.returncode == 2
    assert len(bad_value.stderr.strip().splitlines()) == 1
    assert "config.pose.bins=many" in bad_value.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "hotdance_jax.demo", "--config", "configs/nothere.py"],
        capture_output=True, text=True, cwd=REPO, env=ENV)
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "configs/nothere.py" in missing.stderr
