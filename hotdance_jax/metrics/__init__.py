"""Dance metrics in 2D pose space (docs/design.md section 1, "Evaluation")."""

from hotdance_jax.metrics.beat import beat_align_score, motion_beats
from hotdance_jax.metrics.distances import diversity, fid, frechet_distance, standardise
from hotdance_jax.metrics.features import (
    GEOMETRIC_FEATURES,
    body_frame,
    geometric_features,
    kinetic_features,
    windows,
)
from hotdance_jax.metrics.reconstruction import reconstruction_errors
from hotdance_jax.metrics.smoothness import (
    jitter,
    mean_keypoint_speed,
    seam_frames,
    seam_jump,
    speed_changes,
)

__all__ = [
    "GEOMETRIC_FEATURES",
    "beat_align_score",
    "body_frame",
    "diversity",
    "fid",
    "frechet_distance",
    "geometric_features",
    "jitter",
    "kinetic_features",
    "mean_keypoint_speed",
    "motion_beats",
    "reconstruction_errors",
    "seam_frames",
    "seam_jump",
    "speed_changes",
    "standardise",
    "windows",
]
