"""Audio files in, float32 mono waveforms out, with one-line InputErrors for bad files.

Decoding goes through librosa.load: libsndfile (wav, flac, ogg, mp3, aiff, ...) first, audioread
(ffmpeg or gstreamer, where installed) as its fallback; librosa resamples with soxr.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import audioread
import librosa
import numpy as np
import soundfile

from hotdance_jax.errors import InputError

SILENCE_PEAK = 1e-4  # peak |sample| below this (-80 dBFS) counts as silence


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = 22050,
    *,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """(num_samples,) float32 mono waveform of an audio file, resampled to `sample_rate` Hz.

    `offset` and `duration` (seconds) select a part of the file; duration None reads to the end.
    Raises InputError for a missing file, a file no decoder reads, and silence.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such audio file")
    audio = _decode(path, sample_rate, offset, duration)
    if audio.size == 0:
        raise InputError(f"{path}: no audio samples from offset {offset:g} s (past its end?)")
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK:
        raise InputError(f"{path}: audio is silent (peak {peak:.1e}, below -80 dBFS)")
    return audio.astype(np.float32, copy=False)


def _decode(path: Path, sample_rate: int, offset: float, duration: float | None) -> np.ndarray:
    """librosa.load, with its decoder failures turned into an InputError."""
    try:
        with warnings.catch_warnings():
            # librosa warns before its audioread fallback; if both fail, the InputError says so.
            warnings.filterwarnings("ignore", message="PySoundFile failed")
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*audioread")
            # librosa.load always imports audioread's backends, which import aifc/audioop/sunau.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="audioread")
            audio, _ = librosa.load(
                path, sr=sample_rate, mono=True, offset=offset, duration=duration
            )
    except (soundfile.LibsndfileError, audioread.DecodeError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else "no decoder recognises its format"
        raise InputError(f"{path}: not a readable audio file ({reason})") from e
    return audio


def require_duration(
    audio: np.ndarray, sample_rate: int, min_seconds: float, path: str | os.PathLike
) -> None:
    """Raises InputError when `audio` ((num_samples,) at `sample_rate` Hz) is below `min_seconds`.

    `path` names the file in the message: its length and the minimum, in seconds.
    """
    seconds = audio.shape[-1] / sample_rate
    if seconds < min_seconds:
        raise InputError(
            f"{path}: audio lasts {seconds:.2f} s, shorter than the {min_seconds:.2f} s needed"
        )
