"""The synthetic source: deterministic songs whose dancer hits the beats of its drum music."""

from __future__ import annotations

import collections
import itertools

import librosa
import ml_collections
import numpy as np
import pytest

from data_pipeline.sources import synthetic
from hotdance_jax.errors import InputError
from hotdance_jax.metrics import beat_align_score

LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # OpenPose-18 limbs
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def songs() -> list[synthetic.SyntheticPerformance]:
    return [synthetic.synthesize_performance(seed) for seed in SEEDS]


def body_height(keypoints: np.ndarray) -> float:
    """Nose-neck-midhip-knee-ankle bone chain of the first frame, in pixels."""
    k = keypoints[0]
    chain = [k[0], k[1], (k[8] + k[11]) / 2, k[9], k[10]]
    return float(sum(np.linalg.norm(b - a) for a, b in itertools.pairwise(chain)))


def beat_f_measure(estimated: np.ndarray, reference: np.ndarray, window: float = 0.07) -> float:
    """F-measure of beat times (seconds), each estimate matching at most one reference beat."""
    used, hits = set(), 0
    for beat in reference:
        candidates = [i for i in np.argsort(np.abs(estimated - beat)) if i not in used]
        if candidates and abs(estimated[candidates[0]] - beat) <= window:
            used.add(candidates[0])
            hits += 1
    if hits == 0:
        return 0.0
    precision, recall = hits / len(estimated), hits / len(reference)
    return 2 * precision * recall / (precision + recall)


def test_same_seed_same_song_other_seed_other_song():
    a, b, c = (synthetic.synthesize_performance(s, seconds=6.0) for s in (7, 7, 8))
    for field in ("audio", "beat_times", "keypoints", "confidence", "tempo_bpm"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.name == "synthetic_0007"
    assert not np.array_equal(a.keypoints, c.keypoints)
    assert not np.array_equal(a.beat_times, c.beat_times)


def test_shapes_and_dtypes(songs):
    perf = songs[0]
    frames, beats = int(20.0 * perf.fps), len(perf.beat_times)
    assert (perf.audio.shape, perf.audio.dtype) == ((20 * 22050,), np.float32)
    assert 0.85 <= np.abs(perf.audio).max() <= 0.9 + 1e-6
    assert (perf.keypoints.shape, perf.keypoints.dtype) == ((frames, 18, 2), np.float32)
    assert (perf.confidence.shape, perf.confidence.dtype) == ((frames, 18), np.float32)
    np.testing.assert_array_equal(perf.confidence, 1.0)
    assert perf.tempo_bpm.shape == (beats - 1,)
    assert np.all(np.diff(perf.beat_times) > 0)
    assert 0 <= perf.beat_times[0] < perf.beat_times[-1] < 20


def test_tempo_in_range_and_varies_within_each_song():
    for seed in range(10):
        tempo = synthetic.synthesize_performance(seed).tempo_bpm
        assert 80 - 1e-6 <= tempo.min() <= tempo.max() <= 140 + 1e-6
        assert tempo.max() / tempo.min() >= 1.03, f"seed {seed}: steady tempo"


@pytest.mark.parametrize(("width", "height"), [(512, 512), (384, 512), (640, 360)])
def test_whole_body_in_frame_at_a_plausible_size(width, height):
    for seed in range(6):
        perf = synthetic.synthesize_performance(seed, width=width, height=height)
        k = perf.keypoints
        assert k.min() >= 0
        assert np.all(k.max(axis=(0, 1)) < (width, height))
        assert 0.25 * height <= body_height(k) <= 0.7 * height


def test_bones_are_rigid(songs):
    for perf in songs:
        lengths = np.stack(
            [np.linalg.norm(perf.keypoints[:, a] - perf.keypoints[:, b], axis=-1) for a, b in LIMBS]
        )
        spread = (lengths.max(axis=1) - lengths.min(axis=1)) / lengths.mean(axis=1)
        assert spread.max() < 0.01


def test_no_jumps_between_frames():
    for seed in range(8):
        perf = synthetic.synthesize_performance(seed)
        step = np.linalg.norm(np.diff(perf.keypoints, axis=0), axis=-1).max()
        assert step < 0.08 * body_height(perf.keypoints), f"seed {seed}"


def test_librosa_beat_tracker_finds_the_true_beats(songs):
    for perf in songs:
        _, found = librosa.beat.beat_track(y=perf.audio, sr=perf.sample_rate, units="time")
        assert beat_f_measure(found, perf.beat_times) >= 0.8, perf.name


def test_motion_beats_land_on_music_beats(songs):
    for perf in songs:
        on_beat = beat_align_score(perf.keypoints, perf.confidence, perf.beat_times, perf.fps)
        off_beat = beat_align_score(perf.keypoints, perf.confidence,
                                    perf.beat_times[:-1] + np.diff(perf.beat_times) / 2, perf.fps)
        assert on_beat >= 0.8, f"{perf.name}: BAS {on_beat:.3f}"
        assert off_beat <= 0.3, f"{perf.name}: BAS half a beat off {off_beat:.3f}"


def test_write_read_round_trip(tmp_path, songs):
    perf = songs[0]
    synthetic.write_performance(perf, tmp_path / perf.name)
    assert sorted(p.name for p in (tmp_path / perf.name).iterdir()) == ["audio.wav", "poses.npz"]
    back = synthetic.read_performance(tmp_path / perf.name)
    assert (back.name, back.sample_rate) == (perf.name, perf.sample_rate)
    assert (back.fps, back.width, back.height) == (perf.fps, perf.width, perf.height)
    np.testing.assert_allclose(back.audio, perf.audio, atol=1e-4)
    for field in ("beat_times", "keypoints", "confidence", "tempo_bpm"):
        np.testing.assert_array_equal(getattr(back, field), getattr(perf, field))


def test_read_missing_files_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"missing audio\.wav"):
        synthetic.read_performance(tmp_path)


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError):
        synthetic.synthesize_performance(0, seconds=0.5)


def test_performances_writes_songs_and_splits_them(tmp_path):
    config = ml_collections.ConfigDict(
        {"synthetic": {"num_songs": 4, "val_songs": 1, "test_songs": 1, "seconds": 3.0,
                       "width": 256, "height": 256}}
    )
    stats = collections.Counter()
    perfs = list(synthetic.performances(tmp_path, config, stats))
    assert [p.split for p in perfs] == ["train", "train", "val", "test"]
    assert stats["synthetic_songs_written"] == 4
    for perf in perfs:
        assert (perf.keypoints.shape, perf.audio_offset) == ((90, 18, 2), 0.0)
        assert (tmp_path / perf.sequence_id / "audio.wav").is_file()
        np.testing.assert_array_equal(
            synthetic.read_performance(tmp_path / perf.sequence_id).keypoints, perf.keypoints
        )
