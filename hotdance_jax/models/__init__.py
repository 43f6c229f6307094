"""The latent DiT (dit.py) and its multi-axis rotary position embeddings (rope.py)."""

from hotdance_jax.models.dit import DiT, DiTConfig, token_positions
from hotdance_jax.models.rope import apply_rope, rope_frequencies

__all__ = ["DiT", "DiTConfig", "apply_rope", "rope_frequencies", "token_positions"]
