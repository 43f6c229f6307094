"""HotDance-JAX: music in, a 2D dance out (arXiv 2512.11720, in JAX/Flax)."""

__version__ = "0.1.0"
