"""The latent DiT (docs/design.md, section 1): a velocity model over pose latents, music, reference.

Tokens. The noisy latent x_t, the reference latent (both (b, B', T', c)) and the reference mask
(b, B', T', 8) are concatenated on channels and cut into (p_bins, p_time) patches: nb x nt pose
tokens, bin-major (token i_bin * nt + j_time); with config.reference False (the paper's
no-reference ablation) x_t alone is cut, and the reference and mask inputs are ignored. The
music frame features (b, T, D), T = 8 T', are grouped 8 frames per latent column
(`music_tokens`) and encoded (LayerNorm, MLP) into T' music tokens; for the examples with
drop_music they are all replaced by one learned null token (classifier-free guidance). The
sequence is [music tokens; pose tokens].

Attention. Every block is single-stream joint attention over the whole sequence (music and pose
tokens share the weights, as FLUX's single-stream blocks), so music tokens are refined layer by
layer alongside the pose. (Cross attention from the pose to the music tokens, PixArt/EDGE-style,
lost an ablation and was removed: docs/quality.md, "Joint or cross attention".) With
config.aligned_music, each pose token also gets, through a zero-initialised
linear map, the mean of the encoded music tokens of its own latent columns (the null token for
dropped music) added to its embedding: a direct path from the music of a moment to the pose of
that moment, beside the attention.

Positions. Rotary embeddings on two axes, (time, bin), in `token_positions`. Pose token (i, j)
sits at bin i and time j p_time + (p_time - 1) / 2, its patch centre in latent columns.
temporal_index "shared": music token k at time k (the same unit, so the pose and the music of one
moment share the time index) and at the reserved bin MUSIC_BIN, outside the pose bins.
"sequential" (the paper's ablation): music token k at time k + T' (after the pose), same bin.

Conditioning. adaLN-Zero (facebookresearch/DiT) on the flow time: a sinusoidal embedding of 1000 t
through an MLP gives shift, scale and gate for attention and MLP in every block; the modulation
and the final projection start at zero, so the untrained model outputs exactly 0. QK-norm (RMSNorm
per head), SwiGLU MLP, `jax.nn.dot_product_attention` (its cuDNN flash attention where
DiTConfig.attention_implementation asks for it).

Sharding. Parameters carry logical axis names (LOGICAL_AXES): "embed" the model width, "mlp" MLP
and modulation hidden units, "heads" the attention projections' heads x head_dim units (head-major,
so sharding it splits whole heads when heads divide evenly), "norm" norm scales; None marks small
input/output feature axes. Built under `jax.set_mesh(mesh)` and `nnx.logical_axis_rules(rules)`,
the parameters are created sharded (Flax eager sharding); built without a mesh they are plain
arrays that keep the names for `nnx.get_partition_spec`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hotdance_jax.audio.features import music_tokens
from hotdance_jax.errors import InputError
from hotdance_jax.models.rope import apply_rope, rope_frequencies

LOGICAL_AXES = ("embed", "mlp", "heads", "norm")
TEMPORAL_INDEX = ("shared", "sequential")
# config.remat -> what a block keeps for the backward pass (jax.checkpoint_policies); the rest is
# recomputed. "none": no rematerialisation, everything kept.
REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_saveable,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
MUSIC_BIN = -1.0  # the music tokens' position on the bin axis (pose bins are 0 .. nb - 1)
TIME_FEATURES = 256  # sinusoidal features of the flow time


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """The DiT's shapes and sizes; defaults are DiT-B/2-like on the paper's 64 x 32 latents.

    latent_bins, latent_frames, latent_channels: B', T', c of a latent segment.
    music_features: D, features per music frame; frames_per_token: frames per latent column.
    patch: (p_bins, p_time) latent cells per pose token.
    width, depth, heads: transformer size; mlp_ratio: a plain MLP's hidden / width (SwiGLU uses
    2/3 of it, rounded up to a multiple of 64: the same parameter count).
    temporal_index: "shared" or "sequential" (see the module docstring).
    reference: whether the pose tokens see the reference latent and mask (False: the paper's
    no-reference ablation).
    aligned_music: also add each pose token's own columns' music to it (module docstring).
    rope_theta: rotary base. dtype: compute dtype, "float32" or "bfloat16"; params stay float32.
    attention_implementation: `jax.nn.dot_product_attention`'s backend, "xla" or "cudnn" (cuDNN
    flash attention: NVIDIA GPUs, bfloat16, head_dim a multiple of 8 up to 128).
    remat: "none" or a key of REMAT_POLICIES: what each block recomputes in the backward pass
    (less memory, more FLOPs; the same values).
    """

    latent_bins: int = 64
    latent_frames: int = 32
    latent_channels: int = 16
    music_features: int = 35
    frames_per_token: int = 8
    patch: tuple[int, int] = (2, 1)
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    temporal_index: str = "shared"
    reference: bool = True
    aligned_music: bool = False
    rope_theta: float = 10000.0
    dtype: str = "float32"
    attention_implementation: str = "xla"
    remat: str = "none"

    def __post_init__(self):
        object.__setattr__(self, "patch", tuple(self.patch))
        checks = {
            f"temporal_index {self.temporal_index!r} not in {TEMPORAL_INDEX}":
                self.temporal_index in TEMPORAL_INDEX,
            f"dtype {self.dtype!r} not float32/bfloat16": self.dtype in ("float32", "bfloat16"),
            f"attention_implementation {self.attention_implementation!r} not xla/cudnn":
                self.attention_implementation in ("xla", "cudnn"),
            f"remat {self.remat!r} not none/{'/'.join(REMAT_POLICIES)}":
                self.remat == "none" or self.remat in REMAT_POLICIES,
            f"patch {self.patch} does not tile latents {self.latent_bins} x {self.latent_frames}":
                len(self.patch) == 2 and self.latent_bins % self.patch[0] == 0
                and self.latent_frames % self.patch[1] == 0,
            f"width {self.width} is not heads {self.heads} x an even head_dim":
                self.width % self.heads == 0 and (self.width // self.heads) % 2 == 0,
        }
        problems = [message for message, ok in checks.items() if not ok]
        if problems:
            raise InputError("DiTConfig: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def grid(self) -> tuple[int, int]:
        """(nb, nt): pose tokens along bins and along time."""
        return self.latent_bins // self.patch[0], self.latent_frames // self.patch[1]

    @property
    def mlp_hidden(self) -> int:
        return 64 * math.ceil(2 * self.mlp_ratio * self.width / 3 / 64)

    @property
    def rope_dims(self) -> tuple[int, int]:
        """Head channels rotated by the (time, bin) axes: about half each, both even."""
        time = 2 * (self.head_dim // 4)
        return time, self.head_dim - time


def token_positions(config: DiTConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rotary (time, bin) positions: music (T', 2) and pose (nb * nt, 2), in token order."""
    nb, nt = config.grid
    p_time = config.patch[1]
    bins, columns = np.meshgrid(np.arange(nb), np.arange(nt), indexing="ij")
    pose_time = columns.ravel() * p_time + (p_time - 1) / 2
    music_time = np.arange(config.latent_frames, dtype=np.float64)
    music_bin = np.full_like(music_time, MUSIC_BIN)
    if config.temporal_index == "sequential":
        music_time = music_time + config.latent_frames
    music = np.stack([music_time, music_bin], axis=-1).astype(np.float32)
    pose = np.stack([pose_time, bins.ravel()], axis=-1).astype(np.float32)
    return music, pose


def music_per_pose_token(music: jax.Array, config: DiTConfig) -> jax.Array:
    """Music tokens (b, T', w) -> (b, nb * nt, w) in pose-token order: for each pose token the
    mean of the music tokens of its p_time latent columns."""
    nb, nt = config.grid
    b, _, width = music.shape
    per_column = music.reshape(b, nt, config.patch[1], width).mean(axis=2)
    return jnp.broadcast_to(per_column[:, None], (b, nb, nt, width)).reshape(b, nb * nt, width)


def patchify(x: jax.Array, patch: tuple[int, int]) -> jax.Array:
    """(b, B', T', C) -> (b, nb * nt, p_bins * p_time * C), bin-major tokens."""
    b, bins, frames, channels = x.shape
    pb, pt = patch
    x = x.reshape(b, bins // pb, pb, frames // pt, pt, channels).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (bins // pb) * (frames // pt), pb * pt * channels)


def unpatchify(tokens: jax.Array, patch: tuple[int, int], grid: tuple[int, int]) -> jax.Array:
    """(b, nb * nt, p_bins * p_time * C) -> (b, nb * p_bins, nt * p_time, C); undoes patchify."""
    (pb, pt), (nb, nt) = patch, grid
    x = tokens.reshape(tokens.shape[0], nb, nt, pb, pt, -1).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(tokens.shape[0], nb * pb, nt * pt, -1)


# ---------------------------------------------------------------- layers


def _partitioned(init: nnx.Initializer, axes: tuple[str | None, ...]) -> nnx.Initializer:
    """`init` with logical axis names; sharded at creation only when a mesh is set."""
    return nnx.with_partitioning(
        init, axes, eager_sharding=not jax.sharding.get_abstract_mesh().empty
    )


def _linear(
    cin: int, cout: int, axes: tuple[str | None, str | None], config: DiTConfig, rngs: nnx.Rngs,
    *, zero: bool = False,
) -> nnx.Linear:
    """Linear with a xavier-uniform (or zero) kernel named `axes` and a zero bias."""
    kernel = nnx.initializers.zeros_init() if zero else nnx.initializers.xavier_uniform()
    return nnx.Linear(
        cin, cout, dtype=jnp.dtype(config.dtype), rngs=rngs,
        kernel_init=_partitioned(kernel, axes),
        bias_init=_partitioned(nnx.initializers.zeros_init(), axes[1:]),
    )


def _plain_norm(config: DiTConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """LayerNorm without parameters (the adaLN modulation supplies shift and scale)."""
    return nnx.LayerNorm(config.width, epsilon=1e-6, use_bias=False, use_scale=False,
                         dtype=jnp.dtype(config.dtype), rngs=rngs)


def _rms_norm(features: int, config: DiTConfig, rngs: nnx.Rngs) -> nnx.RMSNorm:
    return nnx.RMSNorm(features, epsilon=1e-6, dtype=jnp.dtype(config.dtype), rngs=rngs,
                       scale_init=_partitioned(nnx.initializers.ones_init(), ("norm",)))


def _modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    return x * (1 + scale) + shift


def timestep_features(t: jax.Array, dim: int = TIME_FEATURES) -> jax.Array:
    """(b,) flow times in [0, 1] -> (b, dim) float32: [cos, sin] of 1000 t at geometric rates."""
    freqs = jnp.exp(-math.log(10000.0) * jnp.arange(dim // 2, dtype=jnp.float32) / (dim // 2))
    angles = 1000.0 * t.astype(jnp.float32)[:, None] * freqs
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class TimeEmbedding(nnx.Module):
    """(b,) flow time -> (b, width) conditioning: sinusoidal features, Linear, SiLU, Linear."""

    def __init__(self, config: DiTConfig, rngs: nnx.Rngs):
        self.hidden = _linear(TIME_FEATURES, config.width, (None, "mlp"), config, rngs)
        self.out = _linear(config.width, config.width, ("mlp", "embed"), config, rngs)

    def __call__(self, t: jax.Array) -> jax.Array:
        return self.out(jax.nn.silu(self.hidden(timestep_features(t))))


class MusicEncoder(nnx.Module):
    """(b, T, D) frame features -> (b, T', width) tokens; dropped examples get the null token."""

    def __init__(self, config: DiTConfig, rngs: nnx.Rngs):
        features = config.frames_per_token * config.music_features
        self.frames_per_token = config.frames_per_token
        self.norm = nnx.LayerNorm(
            features, epsilon=1e-6, dtype=jnp.dtype(config.dtype), rngs=rngs,
            scale_init=_partitioned(nnx.initializers.ones_init(), ("norm",)),
            bias_init=_partitioned(nnx.initializers.zeros_init(), ("norm",)),
        )
        self.hidden = _linear(features, config.width, (None, "mlp"), config, rngs)
        self.out = _linear(config.width, config.width, ("mlp", "embed"), config, rngs)
        null = _partitioned(nnx.initializers.normal(0.02), ("embed",))
        self.null = nnx.Param(null(rngs.params(), (config.width,)))

    def __call__(self, music: jax.Array, drop: jax.Array) -> jax.Array:
        tokens = music_tokens(music, self.frames_per_token)
        encoded = self.out(jax.nn.gelu(self.hidden(self.norm(tokens))))
        return jnp.where(drop[:, None, None], self.null[...].astype(encoded.dtype), encoded)


class Attention(nnx.Module):
    """Multi-head self-attention with QK-norm and rotary positions: x (b, N, width) at rotations
    (cos, sin) (b or 1, N, rotated dims) -> (b, N, width)."""

    def __init__(self, config: DiTConfig, rngs: nnx.Rngs):
        width, self.heads = config.width, config.heads
        self.query, self.key, self.value = (
            _linear(width, width, ("embed", "heads"), config, rngs) for _ in range(3)
        )
        self.query_norm = _rms_norm(config.head_dim, config, rngs)
        self.key_norm = _rms_norm(config.head_dim, config, rngs)
        self.out = _linear(width, width, ("heads", "embed"), config, rngs)
        self.implementation = config.attention_implementation

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
        b, n, width = x.shape

        def split(y):  # (b, N, width) -> (b, N, heads, head_dim)
            return y.reshape(b, n, self.heads, width // self.heads)

        q = apply_rope(self.query_norm(split(self.query(x))), cos, sin)
        k = apply_rope(self.key_norm(split(self.key(x))), cos, sin)
        y = jax.nn.dot_product_attention(q, k, split(self.value(x)),
                                         implementation=self.implementation)
        return self.out(y.reshape(b, n, width))


class MLP(nnx.Module):
    """SwiGLU MLP, down(silu(gate(x)) * up(x)): (..., width) -> same."""

    def __init__(self, config: DiTConfig, rngs: nnx.Rngs):
        hidden = config.mlp_hidden
        self.up = _linear(config.width, hidden, ("embed", "mlp"), config, rngs)
        self.gate = _linear(config.width, hidden, ("embed", "mlp"), config, rngs)
        self.down = _linear(hidden, config.width, ("mlp", "embed"), config, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down(jax.nn.silu(self.gate(x)) * self.up(x))


class Block(nnx.Module):
    """adaLN-Zero transformer block: (b, N, width) tokens, (b, width) conditioning -> tokens."""

    def __init__(self, config: DiTConfig, rngs: nnx.Rngs):
        self.attention_norm = _plain_norm(config, rngs)
        self.attention = Attention(config, rngs)
        self.mlp_norm = _plain_norm(config, rngs)
        self.mlp = MLP(config, rngs)
        self.modulation = _linear(config.width, 6 * config.width, ("embed", "mlp"), config,
                                  rngs, zero=True)

    def __call__(self, x: jax.Array, c: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = jnp.split(
            self.modulation(jax.nn.silu(c))[:, None, :], 6, axis=-1)
        h = _modulate(self.attention_norm(x), shift_a, scale_a)
        x = x + gate_a * self.attention(h, cos, sin)
        return x + gate_m * self.mlp(_modulate(self.mlp_norm(x), shift_m, scale_m))


class FinalLayer(nnx.Module):
    """adaLN-modulated LayerNorm, zero-initialised Linear: (b, N, width) -> (b, N, patch_out)."""

    def __init__(self, config: DiTConfig, rngs: nnx.Rngs):
        out = config.patch[0] * config.patch[1] * config.latent_channels
        self.norm = _plain_norm(config, rngs)
        self.modulation = _linear(config.width, 2 * config.width, ("embed", "mlp"), config, rngs,
                                  zero=True)
        self.out = _linear(config.width, out, ("embed", None), config, rngs, zero=True)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        shift, scale = jnp.split(self.modulation(jax.nn.silu(c))[:, None, :], 2, axis=-1)
        return self.out(_modulate(self.norm(x), shift, scale))


class DiT(nnx.Module):
    """The velocity model v(x_t, t | reference, mask, music); see the module docstring."""

    def __init__(self, config: DiTConfig, *, rngs: nnx.Rngs):
        self.config = config
        conditioning = config.latent_channels + config.frames_per_token if config.reference else 0
        in_features = config.patch[0] * config.patch[1] * (config.latent_channels + conditioning)
        self.pose_embed = _linear(in_features, config.width, (None, "embed"), config, rngs)
        self.music_encoder = MusicEncoder(config, rngs)
        self.music_to_pose = (_linear(config.width, config.width, ("embed", "mlp"), config, rngs,
                                      zero=True) if config.aligned_music else None)
        self.time_embed = TimeEmbedding(config, rngs)
        self.blocks = nnx.List([Block(config, rngs) for _ in range(config.depth)])
        self.final = FinalLayer(config, rngs)

    def __call__(
        self, x_t: jax.Array, t: jax.Array, reference: jax.Array | None,
        mask: jax.Array | None, music: jax.Array, drop_music: jax.Array,
    ) -> jax.Array:
        """Velocity (b, B', T', c) float32.

        Args:
          x_t, reference: (b, B', T', c) noisy and reference latents.
          t: (b,) flow times in [0, 1].
          mask: (b, B', T', frames_per_token) reference phase mask (`reference_mask`).
            reference and mask are ignored (may be None) when config.reference is False.
          music: (b, T' * frames_per_token, D) music frame features.
          drop_music: (b,) bool, True replaces that example's music by the null token.
        """
        config = self.config
        _check_shapes(config, x_t, t, reference, mask, music, drop_music)
        pose_inputs = [x_t, reference, mask] if config.reference else [x_t]
        pose = self.pose_embed(patchify(jnp.concatenate(pose_inputs, -1), config.patch))
        music_tokens = self.music_encoder(music, drop_music)
        if self.music_to_pose is not None:
            pose = pose + self.music_to_pose(music_per_pose_token(music_tokens, config))
        music_positions, pose_positions = token_positions(config)
        c = self.time_embed(t)
        run = _rematerialised(config.remat)
        tokens = jnp.concatenate([music_tokens, pose], axis=1)
        cos, sin = self._rope(np.concatenate([music_positions, pose_positions]))
        for block in self.blocks:
            tokens = run(block, tokens, c, cos, sin)
        out = self.final(tokens[:, config.latent_frames:], c)
        return unpatchify(out, config.patch, config.grid).astype(jnp.float32)

    def _rope(self, positions: np.ndarray) -> tuple[jax.Array, jax.Array]:
        return rope_frequencies(jnp.asarray(positions), self.config.rope_dims,
                                self.config.rope_theta)


def _call_block(block: Block, *args) -> jax.Array:
    return block(*args)


def _rematerialised(remat: str):
    """_call_block, under nnx.remat with REMAT_POLICIES[remat] unless remat is "none"."""
    if remat == "none":
        return _call_block
    return nnx.remat(_call_block, policy=REMAT_POLICIES[remat])


def _check_shapes(config: DiTConfig, x_t, t, reference, mask, music, drop_music) -> None:
    """Raises InputError naming the first input whose shape does not fit `config` (reference
    and mask only when the model uses them)."""
    b = x_t.shape[0]
    latent = (b, config.latent_bins, config.latent_frames)
    expected = {
        "x_t": (x_t, (*latent, config.latent_channels)),
        "t": (t, (b,)),
        "music": (music, (b, config.latent_frames * config.frames_per_token,
                          config.music_features)),
        "drop_music": (drop_music, (b,)),
    }
    if config.reference:
        expected["reference"] = (reference, (*latent, config.latent_channels))
        expected["mask"] = (mask, (*latent, config.frames_per_token))
    for name, (array, shape) in expected.items():
        if tuple(array.shape) != shape:
            raise InputError(f"DiT input {name}: expected shape {shape}, got {tuple(array.shape)}")
