"""Audio loading, frame-aligned music features, beats and tempo, tokens, external features."""

from __future__ import annotations

import os
import subprocess
import sys

import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import soundfile

from hotdance_jax.audio import (
    BEAT,
    FEATURE_NAMES,
    NUM_BASELINE_FEATURES,
    ONSET_PEAK,
    beat_times,
    load_audio,
    load_external_features,
    music_features,
    music_tokens,
    require_duration,
    tempo_bpm,
)
from hotdance_jax.errors import InputError
from tests.conftest import shared_file

SR = 22050
CLICKS = np.arange(0.3, 5.8, 0.5)  # seconds, 120 BPM


def f_measure(estimated: np.ndarray, reference: np.ndarray, window: float = 0.07) -> float:
    """Beat F-measure of times (s), greedily matched one-to-one within `window` seconds."""
    unused = list(estimated)
    hits = 0
    for ref in reference:
        if unused and min(abs(e - ref) for e in unused) <= window:
            unused.remove(min(unused, key=lambda e: abs(e - ref)))
            hits += 1
    if hits == 0:
        return 0.0
    precision, recall = hits / len(estimated), hits / len(reference)
    return 2 * precision * recall / (precision + recall)


def click_track(seconds: float = 6.1) -> np.ndarray:
    """(seconds * SR,) float32 clicks at CLICKS."""
    return librosa.clicks(times=CLICKS, sr=SR, length=int(seconds * SR)).astype(np.float32)


# Real data.


def test_beats_match_madmom_annotations():
    audio = load_audio(shared_file("data/music/madmom/sample.wav"), SR)
    reference = np.loadtxt(shared_file("data/music/madmom/sample.beats"), comments="#")[:, 0]
    annotated_bpm = 87.5  # sample.tempo; librosa alone reads this 2.8 s clip as ~116 BPM (3:2)
    assert f_measure(beat_times(audio, SR, bpm=annotated_bpm), reference) >= 0.8


def test_tempo_of_a_120_bpm_loop():
    audio = load_audio(shared_file("data/music/sonic-pi/loop_mika.flac"), SR)
    assert tempo_bpm(audio, SR) == pytest.approx(120, abs=3)


@pytest.mark.slow  # starts a Python process
def test_librosa_example_audio_decodes(monkeypatch):
    folder = shared_file("data/music/librosa-data/audio")
    monkeypatch.setenv("LIBROSA_DATA_DIR", str(folder))
    # librosa reads LIBROSA_DATA_DIR at import, so ask a fresh interpreter (no download: cached).
    found = subprocess.run(
        [sys.executable, "-c", "import librosa; print(librosa.example('choice'))"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    ).stdout.strip()
    assert os.path.dirname(found) == str(folder)
    assert os.path.isfile(found)
    files = sorted(folder.glob("*.ogg"))
    assert len(files) >= 6
    for path in files:
        audio = load_audio(path, SR)
        assert audio.dtype == np.float32
        assert audio.ndim == 1
        assert len(audio) > SR


def test_mp3_offset_and_duration():
    audio = load_audio(shared_file("data/dwm/DANCE_C_2/audio.mp3"), 16000, offset=30, duration=2.5)
    assert audio.shape == (40000,)
    assert audio.dtype == np.float32


# Frame-aligned features.


@pytest.mark.parametrize(("fps", "num_frames"), [(25, 151), (30, 97), (60, 365), (29.97, 77)])
def test_features_one_row_per_frame_aligned_to_clicks(fps, num_frames):
    features = music_features(click_track(), SR, fps, num_frames)
    assert features.shape == (num_frames, NUM_BASELINE_FEATURES) == (num_frames, 35)
    assert features.dtype == np.float32
    assert not np.isnan(features).any()
    clicks = CLICKS[CLICKS * fps < num_frames - 1] * fps  # in frames
    peaks = np.flatnonzero(features[:, ONSET_PEAK])
    beats = np.flatnonzero(features[:, BEAT])
    assert len(peaks) == len(clicks)
    assert np.all(np.abs(peaks - clicks) <= 1)
    assert len(beats) >= 0.7 * len(clicks)  # the tracker may trim the edges
    assert all(np.min(np.abs(beat - clicks)) <= 1 for beat in beats)


def test_features_pad_past_the_end_and_crop():
    audio = click_track(3.0)
    short, long = music_features(audio, SR, 30, 40), music_features(audio, SR, 30, 150)
    np.testing.assert_array_equal(long[:40], short)
    past_end = long[100:, :ONSET_PEAK]  # the audio ends at frame 90
    np.testing.assert_array_equal(past_end, np.repeat(past_end[:1], 50, axis=0))


def test_feature_names():
    assert len(FEATURE_NAMES) == NUM_BASELINE_FEATURES == 35
    assert FEATURE_NAMES[ONSET_PEAK] == "onset_peak"
    assert FEATURE_NAMES[BEAT] == "beat"


# Tokens and external features.


@pytest.mark.parametrize("xp", [np, jnp])
def test_music_tokens_group_frames(xp):
    frames = xp.arange(2 * 32 * 5, dtype=xp.float32).reshape(2, 32, 5)
    tokens = music_tokens(frames)
    assert tokens.shape == (2, 4, 40)
    np.testing.assert_array_equal(np.asarray(tokens[1, 2, 5:10]), np.asarray(frames[1, 17]))
    np.testing.assert_array_equal(np.asarray(tokens.reshape(2, 32, 5)), np.asarray(frames))
    with pytest.raises(InputError, match="multiple"):
        music_tokens(frames[:, :30])


def test_external_features_resampled_onto_frames(tmp_path):
    path = tmp_path / "jukebox.npy"
    times = np.arange(50) / 10.0  # 10 Hz, 5 s
    np.save(path, np.stack([times, 3 * times + 1], axis=1))
    out = load_external_features(path, 10.0, 30.0, 120, start_seconds=0.9)
    t = 0.9 + np.arange(120) / 30.0
    assert out.shape == (120, 2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.stack([t, 3 * t + 1], axis=1), atol=1e-5)


def test_external_feature_errors(tmp_path):
    flat, short = tmp_path / "flat.npy", tmp_path / "short.npy"
    np.save(flat, np.zeros(100))
    np.save(short, np.zeros((20, 4)))  # 2 s at 10 Hz
    with pytest.raises(InputError, match=r"flat\.npy.*\(N, D\)"):
        load_external_features(flat, 10.0, 30.0, 30)
    with pytest.raises(InputError, match=r"short\.npy.*2\.00 s"):
        load_external_features(short, 10.0, 30.0, 90)
    with pytest.raises(InputError, match=r"missing\.npy"):
        load_external_features(tmp_path / "missing.npy", 10.0, 30.0, 30)
    assert load_external_features(short, 10.0, 30.0, 61).shape == (61, 4)  # 1 row past: held


# Bad input.


def test_bad_audio_files(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio\n")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(SR, np.float32), SR)
    cases = {
        tmp_path / "missing.wav": "no such",
        text: "not a readable audio file",
        silent: "silent",
    }
    for path, problem in cases.items():
        with pytest.raises(InputError, match=rf"{path.name}.*{problem}"):
            load_audio(path, SR)


def test_audio_shorter_than_a_segment(tmp_path):
    path = tmp_path / "short.wav"
    soundfile.write(path, click_track(1.0), SR)
    audio = load_audio(path, SR)
    require_duration(audio, SR, 1.0, path)
    with pytest.raises(InputError, match=r"short\.wav.*1\.00 s.*8\.53 s"):
        require_duration(audio, SR, 256 / 30, path)
