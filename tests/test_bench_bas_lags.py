"""bench/bas_lags.py: BAS of a dance against its own music, other musics and lagged beats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import bas_lags
from hotdance_jax import evaluate
from tests.conftest import shared_file

BENCH = Path(bas_lags.__file__)
FPS = 30.0


def _stepping_body(beat_times: np.ndarray, frames: int, lag: float) -> np.ndarray:
    """(T, 18, 2) pixels of a body that travels in steps, at rest `lag` s after every beat."""
    t = np.arange(frames) / FPS
    phase = np.interp(t - lag, beat_times, np.arange(len(beat_times)))
    x = 200 + 20 * (phase - np.sin(2 * np.pi * phase) / (2 * np.pi))
    base = np.random.default_rng(0).uniform(150, 250, (18, 2))
    return (base + np.stack([x, np.zeros_like(x)], -1)[:, None]).astype(np.float32)


def test_lag_profile_peaks_at_the_lag_the_body_rests_after_the_beat():
    beats = np.cumsum(np.full(30, 0.5)) + 0.3
    lags = np.arange(-12, 13) / FPS
    keypoints = _stepping_body(beats, 450, lag=0.2)
    profile = bas_lags.lag_profile(keypoints, np.ones((450, 18)), beats, FPS, lags)
    assert lags[profile.argmax()] == pytest.approx(0.2)
    assert profile.max() > 0.9 > 0.5 > profile[12]  # on its beats, not at lag 0


def _write_dance(path: Path, music: Path, lag: float) -> None:
    """A 10 s dance at rest `lag` s after every beat of `music`."""
    beats = evaluate.music_beats(str(music), 0.0, 10.0)
    keypoints = _stepping_body(np.concatenate([beats, beats[-1:] + 10]), 300, lag)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, keypoints=keypoints, confidence=np.ones((300, 18), np.float32), fps=FPS,
             skeleton="openpose18", music_path=str(music), music_offset=0.0, width=512,
             height=512)


@pytest.mark.slow  # starts a Python process
def test_a_set_on_its_own_beats_scores_its_music_above_both_baselines(tmp_path):
    amen = shared_file("data/music/sonic-pi/loop_amen_full.flac")
    mika = shared_file("data/music/sonic-pi/loop_mika.flac")
    _write_dance(tmp_path / "on" / "a.npz", amen, 0.0)
    _write_dance(tmp_path / "on" / "b.npz", mika, 0.0)
    _write_dance(tmp_path / "late" / "a.npz", amen, 0.1)
    _write_dance(tmp_path / "late" / "b.npz", mika, 0.1)
    run = subprocess.run([sys.executable, str(BENCH), str(tmp_path / "on"),
                          str(tmp_path / "late"), "--seconds", "10"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines()
            if line.startswith(f"| {tmp_path}")]
    (_, n, own, other, lagged, best, r), late = rows
    assert int(n) == 2
    assert float(r) == 1.0
    assert float(best) == 0.0
    assert float(own) > 0.75
    assert float(own) > float(other) + 0.3
    assert float(own) > float(lagged) + 0.3
    assert float(late[5]) == pytest.approx(0.1)  # motion a tenth of a second after the beat
    assert float(late[6]) < 0.5  # its profile is the first's shifted: not the same
    assert float(late[2]) < float(late[4])  # which BAS at lag 0 scores below unlocked motion


def test_a_set_of_one_music_is_refused_with_its_path(tmp_path):
    amen = shared_file("data/music/sonic-pi/loop_amen_full.flac")
    _write_dance(tmp_path / "one" / "a.npz", amen, 0.0)
    with pytest.raises(SystemExit, match=r"one: every dance has the same music"):
        bas_lags.main([str(tmp_path / "one")])
