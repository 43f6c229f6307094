"""bench/pack_dwm.py: the compact copy of real dwm performances reads back as the originals."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

from bench.pack_dwm import SAMPLE_RATE, pack_performance
from configs.base import get_config
from data_pipeline.sources import dwm
from hotdance_jax.audio import load_audio
from tests.conftest import shared_file

# Danced from song frame 50 (the cut moves start_position) and from frame 0 (nothing to cut).
NAMES = ("DANCE_W_10", "DANCE_W_22")
# Rounding center and skeletons to 0.1 cm moves a grounded joint by at most 0.1 cm across the
# floor axis (0.05 each, times cos + sin <= 1.42) and 0.2 cm in height (the floor moves too); the
# fixed camera draws 1 cm as PX_PER_CM pixels.
TOLERANCE_PX = 0.2 * dwm.PX_PER_CM


def _load(root):
    data = get_config().data
    data.dwm.camera = "fixed"
    return {p.sequence_id: p for p in dwm.performances(root, data, collections.Counter())}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(originals, packed copies) of NAMES by name, read by the dwm source."""
    root = tmp_path_factory.mktemp("dwm")
    original, packed = root / "original", root / "packed"
    original.mkdir()
    for name in NAMES:
        folder = shared_file(f"data/dwm/{name}/config.json").parent
        (original / name).symlink_to(folder)
        pack_performance(folder, packed / name)
    return _load(original), _load(packed)


def test_files(pair):
    for name, perf in pair[1].items():
        song = Path(perf.audio_path)
        assert (song.parent.name, song.name) == (name, "audio.ogg")
        assert sorted(p.name for p in song.parent.iterdir()) == [
            "audio.ogg", "config.json", "skeletons.json.gz"]


def test_same_poses_and_frames(pair):
    original, packed = pair
    assert original.keys() == packed.keys() == set(NAMES)
    for name in NAMES:
        a, b = original[name], packed[name]
        assert (a.num_frames, a.fps, a.split, a.width, a.height) == (
            b.num_frames, b.fps, b.split, b.width, b.height)
        np.testing.assert_array_equal(a.confidence, b.confidence)
        seen = a.confidence > 0
        assert np.abs(a.keypoints[seen] - b.keypoints[seen]).max() <= TOLERANCE_PX


def test_music_at_the_same_song_time(pair):
    """Frame 0 meets the same music: the packed song from its offset matches the original from
    its own, sample for sample (lag 0 of +-0.2 s), and lasts as long past the dance's end."""
    original, packed = pair
    for name in NAMES:
        a, b = original[name], packed[name]
        cut = (a.audio_offset - b.audio_offset) * dwm.FPS  # frames cut from the song's start
        assert cut == pytest.approx(round(cut), abs=1e-9)
        assert round(cut) == (12 if name == "DANCE_W_10" else 0)  # 50 less the 1.5 s margin
        seconds = a.num_frames / a.fps + 1.0  # what the build reads
        song_a = load_audio(a.audio_path, SAMPLE_RATE, offset=a.audio_offset, duration=seconds)
        song_b = load_audio(b.audio_path, SAMPLE_RATE, offset=b.audio_offset, duration=seconds)
        assert len(song_a) == len(song_b)
        window, lags = song_a[SAMPLE_RATE:6 * SAMPLE_RATE], range(-4410, 4411)
        shifted = [np.dot(window, song_b[SAMPLE_RATE + lag:6 * SAMPLE_RATE + lag]) for lag in lags]
        assert lags[int(np.argmax(shifted))] == 0
        assert np.corrcoef(window, song_b[SAMPLE_RATE:6 * SAMPLE_RATE])[0, 1] > 0.95
