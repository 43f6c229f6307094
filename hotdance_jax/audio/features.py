"""Music features on the pose-frame grid, beats and tempo, music tokens, external feature files.

Frame alignment: `music_features` resamples the audio to sr = fps * HOP_LENGTH and runs librosa's
centred frames with hop HOP_LENGTH (as EDGE does at 30 fps), so librosa frame i is centred on
sample i * HOP_LENGTH, i.e. at time i / fps exactly: row i describes the music at time i / fps
from the first sample. The onset-strength column is librosa's on that grid (as EDGE's); its peak
trails a sharp attack by up to one frame (a click on a frame time peaks one frame later at 30 and
60 fps). The onset-peak and beat columns come from a finer onset envelope (about RHYTHM_FRAME_RATE
Hz whatever the fps; clicks land within 5 ms), placed on the nearest frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import librosa
import numpy as np

from hotdance_jax.errors import InputError

if TYPE_CHECKING:
    import jax

HOP_LENGTH = 512  # samples per pose frame at the feature sample rate fps * HOP_LENGTH
MIN_FPS = 17.0  # chroma CENS's CQT filters reach 4.08 kHz, under Nyquist fps * 512 / 2 above 16
RHYTHM_FRAME_RATE = 100.0  # Hz, onset envelope for onset peaks, beats, tempo (2.4 BPM steps at 120)

NUM_MFCC = 20
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FEATURE_NAMES = (
    "onset_envelope",
    *(f"mfcc_{i}" for i in range(NUM_MFCC)),
    *(f"chroma_cens_{p}" for p in PITCH_CLASSES),
    "onset_peak",
    "beat",
)
NUM_BASELINE_FEATURES = len(FEATURE_NAMES)  # 35, FACT/EDGE's "baseline" features
ONSET_ENVELOPE = 0
MFCC = slice(1, 1 + NUM_MFCC)
CHROMA = slice(MFCC.stop, MFCC.stop + len(PITCH_CLASSES))
ONSET_PEAK = CHROMA.stop
BEAT = ONSET_PEAK + 1


def compile_librosa() -> None:
    """Music features of 2 s of noise, so that librosa compiles its numba functions into its
    cache now (about 17 s in a new environment on a 2-core CPU) rather than in the first build;
    two processes compiling the same cached gufunc at once can write mismatched cache files and
    crash (numba/numba#10128)."""
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 2 * 22050).astype(np.float32)
    music_features(noise, 22050, 30.0, 60)


def music_features(
    audio: np.ndarray,
    sample_rate: float,
    fps: float,
    num_frames: int,
    *,
    bpm: float | None = None,
) -> np.ndarray:
    """(num_frames, 35) float32 features, row i at time i / fps.

    Columns follow FEATURE_NAMES: onset strength, 20 MFCC, 12 chroma CENS, onset-peak one-hot,
    beat one-hot. `audio` is (num_samples,) at `sample_rate` Hz; past its end the
    continuous columns repeat their last value. `bpm`, when known, fixes the beat tracker's tempo.
    """
    if fps < MIN_FPS or num_frames < 1:
        raise InputError(
            f"music features need fps >= {MIN_FPS:g} and num_frames >= 1, got "
            f"fps={fps:g}, num_frames={num_frames}"
        )
    grid_sr = fps * HOP_LENGTH
    y = librosa.resample(audio, orig_sr=sample_rate, target_sr=grid_sr)
    envelope = librosa.onset.onset_strength(y=y, sr=grid_sr, hop_length=HOP_LENGTH)
    mfcc = librosa.feature.mfcc(y=y, sr=grid_sr, n_mfcc=NUM_MFCC, hop_length=HOP_LENGTH)
    chroma = librosa.feature.chroma_cens(y=y, sr=grid_sr, hop_length=HOP_LENGTH)
    rhythm, hop = _rhythm_envelope(audio, sample_rate)
    peaks = librosa.onset.onset_detect(
        onset_envelope=rhythm, sr=sample_rate, hop_length=hop, units="time"
    )
    beats = _track_beats(rhythm, sample_rate, hop, bpm)
    columns = [
        _fit_frames(envelope[None], num_frames),
        _fit_frames(mfcc, num_frames),
        _fit_frames(chroma, num_frames),
        _one_hot(peaks, fps, num_frames),
        _one_hot(beats, fps, num_frames),
    ]
    return np.concatenate(columns, axis=0).T.astype(np.float32)


def _fit_frames(feature: np.ndarray, num_frames: int) -> np.ndarray:
    """(D, F) librosa frames -> (D, num_frames): cropped, or padded with the last frame."""
    feature = feature[:, :num_frames]
    return np.pad(feature, ((0, 0), (0, num_frames - feature.shape[1])), mode="edge")


def _one_hot(times: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """(1, num_frames) 0/1 row, 1 at the frames nearest to event `times` (seconds) on the grid."""
    frames = np.rint(np.asarray(times) * fps).astype(int)
    row = np.zeros((1, num_frames), np.float32)
    row[0, frames[(frames >= 0) & (frames < num_frames)]] = 1.0
    return row


def _rhythm_envelope(audio: np.ndarray, sample_rate: float) -> tuple[np.ndarray, int]:
    """(F,) onset strength at about RHYTHM_FRAME_RATE Hz for events and tempo, and its hop."""
    hop = max(1, round(sample_rate / RHYTHM_FRAME_RATE))
    return librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=hop), hop


def beat_times(audio: np.ndarray, sample_rate: float, *, bpm: float | None = None) -> np.ndarray:
    """(num_beats,) beat times in seconds from librosa's dynamic-programming beat tracker.

    The onset envelope runs at ~100 Hz rather than librosa's default 43 Hz (hop 512 at 22050 Hz):
    its autocorrelation lags are the tempo grid, whose steps near 120 BPM are 5.6 BPM wide at
    43 Hz (117.5 or 123.0, so a 120 BPM loop reads 117.5) and 2.4 BPM at 100 Hz. `bpm`, when known
    (AIST++ file names encode it; EDGE passes it too), replaces the tempo estimate: on short clips
    the autocorrelation can settle on another metrical level, e.g. 116 BPM for madmom's 2.8 s,
    87.5 BPM sample (a 3:2 confusion, in every frequency band), and the tracker then only places
    the beats.
    """
    envelope, hop = _rhythm_envelope(audio, sample_rate)
    return _track_beats(envelope, sample_rate, hop, bpm)


def _track_beats(
    envelope: np.ndarray, sample_rate: float, hop: int, bpm: float | None
) -> np.ndarray:
    """(num_beats,) beat times in seconds tracked on an onset `envelope` with hop `hop` samples."""
    _, beats = librosa.beat.beat_track(
        onset_envelope=envelope, sr=sample_rate, hop_length=hop, bpm=bpm, units="time"
    )
    return beats


def tempo_bpm(audio: np.ndarray, sample_rate: float) -> float:
    """Global tempo in beats per minute (librosa's autocorrelation estimate, as `beat_times`)."""
    envelope, hop = _rhythm_envelope(audio, sample_rate)
    return float(librosa.feature.tempo(onset_envelope=envelope, sr=sample_rate, hop_length=hop)[0])


def music_tokens(
    frame_features: np.ndarray | jax.Array, frames_per_token: int = 8
) -> np.ndarray | jax.Array:
    """(..., num_frames, D) -> (..., num_frames // frames_per_token, frames_per_token * D).

    One token per latent time column: token j concatenates frame rows j * frames_per_token ..
    (j + 1) * frames_per_token - 1 in order, so nothing is lost. numpy or jax arrays.
    """
    *batch, num_frames, dim = frame_features.shape
    if num_frames % frames_per_token:
        raise InputError(
            f"num_frames {num_frames} is not a multiple of frames_per_token {frames_per_token}"
        )
    return frame_features.reshape((*batch, num_frames // frames_per_token, frames_per_token * dim))


def load_external_features(
    path: str | os.PathLike,
    rate_hz: float,
    fps: float,
    num_frames: int,
    start_seconds: float = 0.0,
) -> np.ndarray:
    """(num_frames, D) float32 rows of an (N, D) .npy at `rate_hz` rows/s, at t = start + i / fps.

    Row n of the file describes time n / rate_hz; values between rows are linearly interpolated,
    and the grid may overrun the last row by at most one row (that value is held).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such feature file")
    try:
        features = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise InputError(f"{path}: not a .npy array ({str(e).splitlines()[0]})") from e
    if features.ndim != 2 or features.shape[0] == 0 or not np.issubdtype(features.dtype, np.number):
        raise InputError(
            f"{path}: features must be numeric (N, D) with N >= 1, got {features.dtype} "
            f"{features.shape}"
        )
    if np.isnan(features).any():
        raise InputError(f"{path}: features contain NaN")
    positions = (start_seconds + np.arange(num_frames) / fps) * rate_hz  # in file rows
    if start_seconds < 0 or positions[-1] > features.shape[0]:
        raise InputError(
            f"{path}: {features.shape[0]} rows at {rate_hz:g} Hz cover "
            f"{features.shape[0] / rate_hz:.2f} s, but frames span {start_seconds:g} to "
            f"{start_seconds + (num_frames - 1) / fps:.2f} s"
        )
    return _interpolate_rows(features, positions).astype(np.float32)


def _interpolate_rows(features: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(N, D) rows linearly interpolated at fractional row `positions` (F,), clamped -> (F, D)."""
    positions = np.clip(positions, 0, features.shape[0] - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, features.shape[0] - 1)
    weight = (positions - low)[:, None]
    return (1 - weight) * features[low] + weight * features[high]
