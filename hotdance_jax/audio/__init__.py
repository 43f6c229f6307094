"""Music in: audio loading, frame-aligned music features, beats and tempo, music tokens."""

from hotdance_jax.audio.features import (
    BEAT,
    CHROMA,
    FEATURE_NAMES,
    HOP_LENGTH,
    MFCC,
    NUM_BASELINE_FEATURES,
    ONSET_ENVELOPE,
    ONSET_PEAK,
    beat_times,
    load_external_features,
    music_features,
    music_tokens,
    tempo_bpm,
)
from hotdance_jax.audio.loading import load_audio, require_duration

__all__ = [
    "BEAT",
    "CHROMA",
    "FEATURE_NAMES",
    "HOP_LENGTH",
    "MFCC",
    "NUM_BASELINE_FEATURES",
    "ONSET_ENVELOPE",
    "ONSET_PEAK",
    "beat_times",
    "load_audio",
    "load_external_features",
    "music_features",
    "music_tokens",
    "require_duration",
    "tempo_bpm",
]
