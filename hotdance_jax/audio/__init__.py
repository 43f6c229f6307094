"""Music in: audio loading, frame-aligned music features, beats and tempo, music tokens."""

from hotdance_jax.audio.features import (
    BEAT,
    BEAT_CYCLE_NAMES,
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
    num_music_features,
    tempo_bpm,
)
from hotdance_jax.audio.loading import load_audio, require_duration

__all__ = [
    "BEAT",
    "BEAT_CYCLE_NAMES",
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
    "num_music_features",
    "require_duration",
    "tempo_bpm",
]
