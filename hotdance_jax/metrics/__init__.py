"""Dance metrics in 2D pose space (DESIGN.md section 1, "Evaluation")."""

from hotdance_jax.metrics.beat import beat_align_score, motion_beats

__all__ = ["beat_align_score", "motion_beats"]
