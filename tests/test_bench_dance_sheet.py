"""bench/dance_sheet.py: generated dances matched to the real dance of their song and drawn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import dance_sheet
from hotdance_jax import evaluate
from tests.conftest import shared_file

BENCH = Path(dance_sheet.__file__)


def _write_dance(path: Path, music: Path, offset: float, seed: int) -> None:
    """A 10 s dance at 30 fps of a standing body swaying, danced to `music` from `offset` s."""
    rng = np.random.default_rng(seed)
    t = np.arange(300) / 30
    base = rng.uniform(200, 300, (18, 2))
    keypoints = base + 20 * np.sin(2 * np.pi * t)[:, None, None] * [1, 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, keypoints=keypoints.astype(np.float32),
             confidence=np.ones((300, 18), np.float32), fps=30.0, skeleton="openpose18",
             music_path=str(music), music_offset=offset, width=512, height=512)


@pytest.mark.slow  # starts a Python process
def test_generated_dances_sit_beside_the_real_dance_of_their_song(tmp_path):
    amen = shared_file("data/music/sonic-pi/loop_amen_full.flac")
    mika = shared_file("data/music/sonic-pi/loop_mika.flac")
    _write_dance(tmp_path / "real" / "a.npz", amen, 0.0, 0)
    _write_dance(tmp_path / "real" / "b.npz", mika, 0.0, 1)
    _write_dance(tmp_path / "real" / "c.npz", amen, 1.0, 2)  # another part of that song
    for i in range(2):
        _write_dance(tmp_path / "gen" / f"000_{i}.npz", amen, 0.0, 10 + i)
    _write_dance(tmp_path / "gen" / "001_0.npz", mika, 0.0, 20)
    reference = evaluate.read_dance_set(tmp_path / "real", "")
    generated = evaluate.read_dance_set(tmp_path / "gen", "")
    rows = dance_sheet.matched(reference, generated)
    assert [(real.sequence_id, [d.sequence_id for d in mine]) for real, mine in rows] == [
        ("a", ["000_0", "000_1"]), ("b", ["001_0"])]

    out = tmp_path / "sheet.png"
    run = subprocess.run([sys.executable, str(BENCH), "--generated", str(tmp_path / "gen"),
                          "--reference", str(tmp_path / "real"), "--start", "1", "--seconds",
                          "4", "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2 songs, 3 generated dances" in run.stdout
    width, height = Image.open(out).size
    assert width > height > 0  # two rows of three cells
