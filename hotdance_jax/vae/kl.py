"""An SD-style KL autoencoder in Flax NNX, parameter for parameter diffusers' `AutoencoderKL`.

Channels last throughout: images (N, H, W, C), latents (N, H / s, W / s, c) with s = 2 **
(levels - 1). Module and parameter paths mirror diffusers' state-dict keys
("encoder.down_blocks.0.resnets.1.conv1.kernel" is "encoder.down_blocks.0.resnets.1.conv1.weight"),
so diffusers weights load by name: `load_diffusers`. `diffusers_kl_autoencoder` runs such an RGB
model over the one-hot channels in groups of three; `save_onehot_kl`/`load_onehot_kl` keep the
project's own onehot-kl weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from flax import nnx, serialization, traverse_util
from safetensors import SafetensorError

from hotdance_jax.errors import InputError
from hotdance_jax.io import atomic_path
from hotdance_jax.vae.base import Autoencoder, file_sha256, with_weights
from hotdance_jax.vae.grouping import grouped, num_groups

ONEHOT_KL_FORMAT = "hotdance-onehot-kl"
ONEHOT_KL_VERSION = 1
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


@dataclasses.dataclass(frozen=True)
class KLConfig:
    """The architecture (diffusers' AutoencoderKL config keys); defaults are SD 1.x's VAE.

    stride = 2 ** (len(block_out_channels) - 1), along H and W. Latents are normalised for
    diffusion as (mean - shift_factor) * scaling_factor. dtype: compute
    dtype ("float32" or "bfloat16"); params stay float32.
    """

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True
    scaling_factor: float = 0.18215
    shift_factor: float | None = None
    dtype: str = "float32"

    @property
    def stride(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)



# ---------------------------------------------------------------- layers


# PyTorch's default init of conv and linear kernels, U(+-1 / sqrt(fan_in)): what diffusers'
# AutoencoderKL starts training from.
_KERNEL_INIT = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def _conv(cin: int, cout: int, kernel: int, config: KLConfig, rngs: nnx.Rngs, **kw) -> nnx.Conv:
    """A kernel x kernel conv with torch's symmetric padding (kernel // 2) unless given."""
    kw.setdefault("padding", kernel // 2)
    return nnx.Conv(cin, cout, (kernel, kernel), dtype=jnp.dtype(config.dtype),
                    kernel_init=_KERNEL_INIT, rngs=rngs, **kw)


def _linear(channels: int, config: KLConfig, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(channels, channels, dtype=jnp.dtype(config.dtype), kernel_init=_KERNEL_INIT,
                      rngs=rngs)


def _norm(channels: int, config: KLConfig, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(channels, config.norm_num_groups, epsilon=1e-6,
                         dtype=jnp.dtype(config.dtype), use_fast_variance=False, rngs=rngs)


class ResnetBlock2D(nnx.Module):
    """norm1, SiLU, conv1, norm2, SiLU, conv2, plus the input (1x1 conv_shortcut if cin != cout)."""

    def __init__(self, cin: int, cout: int, config: KLConfig, rngs: nnx.Rngs):
        self.norm1 = _norm(cin, config, rngs)
        self.conv1 = _conv(cin, cout, 3, config, rngs)
        self.norm2 = _norm(cout, config, rngs)
        self.conv2 = _conv(cout, cout, 3, config, rngs)
        self.conv_shortcut = _conv(cin, cout, 1, config, rngs) if cin != cout else None

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut else x) + h


class Attention(nnx.Module):
    """Single-head self-attention over the H * W positions after a group norm, residual."""

    def __init__(self, channels: int, config: KLConfig, rngs: nnx.Rngs):
        self.group_norm = _norm(channels, config, rngs)
        self.to_q = _linear(channels, config, rngs)
        self.to_k = _linear(channels, config, rngs)
        self.to_v = _linear(channels, config, rngs)
        self.to_out = nnx.List([_linear(channels, config, rngs)])

    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        tokens = self.group_norm(x).reshape(n, h * w, 1, c)  # (N, L, heads=1, C)
        out = jax.nn.dot_product_attention(self.to_q(tokens), self.to_k(tokens), self.to_v(tokens))
        return x + self.to_out[0](out.reshape(n, h, w, c))


class Downsample2D(nnx.Module):
    """Stride-2 3x3 conv after zero padding one row/column at the bottom/right: (H, W) -> /2."""

    def __init__(self, channels: int, config: KLConfig, rngs: nnx.Rngs):
        self.conv = _conv(channels, channels, 3, config, rngs, strides=2, padding="VALID")

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))))


class Upsample2D(nnx.Module):
    """Nearest-neighbour x2 then a 3x3 conv."""

    def __init__(self, channels: int, config: KLConfig, rngs: nnx.Rngs):
        self.conv = _conv(channels, channels, 3, config, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(x.repeat(2, axis=1).repeat(2, axis=2))


class UNetMidBlock2D(nnx.Module):
    """resnet, attention (if mid_block_add_attention), resnet."""

    def __init__(self, channels: int, config: KLConfig, rngs: nnx.Rngs):
        self.resnets = nnx.List([ResnetBlock2D(channels, channels, config, rngs) for _ in range(2)])
        self.attentions = nnx.List(
            [Attention(channels, config, rngs)] if config.mid_block_add_attention else [])

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.resnets[0](x)
        for attention in self.attentions:
            x = attention(x)
        return self.resnets[1](x)


def _resnets(cin: int, cout: int, layers: int, config: KLConfig, rngs: nnx.Rngs) -> nnx.List:
    return nnx.List([ResnetBlock2D(cin if i == 0 else cout, cout, config, rngs)
                     for i in range(layers)])


class DownEncoderBlock2D(nnx.Module):
    """layers_per_block resnets, then a Downsample2D unless it is the last block (level)."""

    def __init__(self, cin: int, cout: int, level: int, config: KLConfig, rngs: nnx.Rngs):
        self.resnets = _resnets(cin, cout, config.layers_per_block, config, rngs)
        self.downsamplers = nnx.List(
            [Downsample2D(cout, config, rngs)]
            if level < len(config.block_out_channels) - 1 else [])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in [*self.resnets, *self.downsamplers]:
            x = layer(x)
        return x


class UpDecoderBlock2D(nnx.Module):
    """layers_per_block + 1 resnets, then an Upsample2D unless it is the last block; up block i
    mirrors encoder level (levels - 2 - i)."""

    def __init__(self, cin: int, cout: int, index: int, config: KLConfig, rngs: nnx.Rngs):
        self.resnets = _resnets(cin, cout, config.layers_per_block + 1, config, rngs)
        mirror = len(config.block_out_channels) - 2 - index
        self.upsamplers = nnx.List(
            [Upsample2D(cout, config, rngs)] if mirror >= 0 else [])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in [*self.resnets, *self.upsamplers]:
            x = layer(x)
        return x


class Encoder(nnx.Module):
    """(N, H, W, in_channels) -> (N, H / s_H, W / s, 2 * latent_channels): mean and logvar."""

    def __init__(self, config: KLConfig, rngs: nnx.Rngs):
        channels = config.block_out_channels
        self.conv_in = _conv(config.in_channels, channels[0], 3, config, rngs)
        self.down_blocks = nnx.List([
            DownEncoderBlock2D(channels[max(i - 1, 0)], c, i, config, rngs)
            for i, c in enumerate(channels)])
        self.mid_block = UNetMidBlock2D(channels[-1], config, rngs)
        self.conv_norm_out = _norm(channels[-1], config, rngs)
        self.conv_out = _conv(channels[-1], 2 * config.latent_channels, 3, config, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        return self.conv_out(jax.nn.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nnx.Module):
    """(N, h, w, latent_channels) -> (N, h * s_H, w * s, out_channels)."""

    def __init__(self, config: KLConfig, rngs: nnx.Rngs):
        channels = config.block_out_channels[::-1]
        self.conv_in = _conv(config.latent_channels, channels[0], 3, config, rngs)
        self.mid_block = UNetMidBlock2D(channels[0], config, rngs)
        self.up_blocks = nnx.List([
            UpDecoderBlock2D(channels[max(i - 1, 0)], c, i, config, rngs)
            for i, c in enumerate(channels)])
        self.conv_norm_out = _norm(channels[-1], config, rngs)
        self.conv_out = _conv(channels[-1], config.out_channels, 3, config, rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(jax.nn.silu(self.conv_norm_out(x)))


class AutoencoderKL(nnx.Module):
    """The KL autoencoder: encode(x) -> (mean, logvar), decode(z) -> image; see KLConfig."""

    def __init__(self, config: KLConfig, *, rngs: nnx.Rngs):
        c = config.latent_channels
        self.encoder = Encoder(config, rngs)
        self.decoder = Decoder(config, rngs)
        self.quant_conv = _conv(2 * c, 2 * c, 1, config, rngs) if config.use_quant_conv else None
        self.post_quant_conv = _conv(c, c, 1, config, rngs) if config.use_post_quant_conv else None

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(N, H, W, in_channels) -> posterior mean and logvar (clipped to [-30, 20]), each
        (N, H / s_H, W / s, latent_channels)."""
        moments = self.encoder(x)
        if self.quant_conv:
            moments = self.quant_conv(moments)
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return mean, jnp.clip(logvar, -30.0, 20.0)

    def decode(self, z: jax.Array) -> jax.Array:
        """(N, h, w, latent_channels) -> (N, h * s_H, w * s, out_channels)."""
        if self.post_quant_conv:
            z = self.post_quant_conv(z)
        return self.decoder(z)


# ---------------------------------------------------------------- weights


def _abstract(config: KLConfig) -> AutoencoderKL:
    return nnx.eval_shape(lambda: AutoencoderKL(config, rngs=nnx.Rngs(0)))


def _flat_params(model: AutoencoderKL) -> dict[tuple, jax.Array]:
    """{path: array} of every Param; a path is a tuple of attribute names and list indices."""
    return traverse_util.flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def _dotted(path: tuple) -> str:
    return ".".join(map(str, path))


def _build(config: KLConfig, params: dict[str, np.ndarray], source: str | os.PathLike,
           name: Callable[[str], str] = str) -> AutoencoderKL:
    """The model of `config` with params {dotted path: array}; InputError naming `source` and
    the key (as `name(key)` spells it) that is missing, unexpected or of the wrong shape."""
    model = _abstract(config)
    expected = {_dotted(p): (p, v.shape) for p, v in _flat_params(model).items()}
    for problem, keys in (("no weight for", expected.keys() - params.keys()),
                          ("unexpected weight", params.keys() - expected.keys())):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise InputError(f"{source}: {problem} {name(min(keys))}{more}")
    for key, (_, shape) in expected.items():
        if np.shape(params[key]) != shape:
            raise InputError(f"{source}: {name(key)} has shape {np.shape(params[key])}, "
                             f"the config needs {shape}")
    pure = traverse_util.unflatten_dict(
        {path: jnp.asarray(params[key], jnp.float32) for key, (path, _) in expected.items()})
    graphdef, state = nnx.split(model)
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state)


def _diffusers_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights .safetensors, config .json) of a diffusers folder or of a .safetensors file with
    NAME.json or config.json beside it."""
    path = Path(path)
    if path.is_dir():
        return path / DIFFUSERS_WEIGHTS, path / "config.json"
    beside = path.with_suffix(".json")
    return path, beside if beside.is_file() else path.parent / "config.json"


def _config_from_diffusers(source: Path) -> KLConfig:
    """KLConfig from diffusers' AutoencoderKL config.json (its defaults where keys are absent)."""
    try:
        raw = json.loads(source.read_text())
    except (ValueError, OSError) as e:
        raise InputError(f"{source}: unreadable config json ({e})") from e
    if not isinstance(raw, dict):
        raise InputError(f"{source}: not a diffusers config (a json object)")
    levels = len(raw.get("block_out_channels", ()))
    if (raw.get("act_fn", "silu") != "silu"
            or raw.get("down_block_types") != ["DownEncoderBlock2D"] * levels
            or raw.get("up_block_types") != ["UpDecoderBlock2D"] * levels):
        raise InputError(f"{source}: not an SD-style AutoencoderKL config (act_fn silu, "
                         "DownEncoderBlock2D/UpDecoderBlock2D per block_out_channels entry)")
    defaults = KLConfig()
    fields = {f.name: raw.get(f.name, getattr(defaults, f.name))
              for f in dataclasses.fields(KLConfig) if f.name != "dtype"}
    fields["block_out_channels"] = tuple(fields["block_out_channels"])
    return KLConfig(**fields)


def _from_diffusers(key: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    """A diffusers state-dict entry -> (dotted param path, array in Flax layout).

    Conv OIHW -> HWIO, Linear (out, in) -> (in, out), GroupNorm weight -> scale; legacy attention
    names (query, key, value, proj_attn; also as 1x1 convs) -> to_q, to_k, to_v, to_out.0.
    """
    module, _, leaf = key.rpartition(".")
    parent, _, last = module.rpartition(".")
    if last in _LEGACY_ATTENTION:
        module = f"{parent}.{_LEGACY_ATTENTION[last]}"
    if leaf != "weight" or array.ndim == 1:
        return f"{module}.{'scale' if leaf == 'weight' else leaf}", array
    if ".attentions." in module:
        return f"{module}.kernel", array.reshape(array.shape[:2]).T
    return f"{module}.kernel", array.transpose(2, 3, 1, 0)


def _diffusers_name(key: str) -> str:
    """A dotted param path as diffusers names it (for messages)."""
    module, _, leaf = key.rpartition(".")
    return f"{module}.{'bias' if leaf == 'bias' else 'weight'}"


def load_diffusers(path: str | os.PathLike) -> tuple[AutoencoderKL, KLConfig]:
    """diffusers AutoencoderKL weights: a folder with config.json and
    diffusion_pytorch_model.safetensors, or a .safetensors file with its config json beside it.

    float16/float32 weights (bfloat16 is not readable without torch); params become float32.
    """
    weights, config_file = _diffusers_files(path)
    for file in (weights, config_file):
        if not file.is_file():
            raise InputError(f"{file}: no such file (diffusers AutoencoderKL weights need "
                             f"{DIFFUSERS_WEIGHTS} and config.json)")
    config = _config_from_diffusers(config_file)
    try:
        arrays = safetensors.numpy.load_file(weights)
    except (SafetensorError, TypeError, OSError) as e:  # TypeError: a dtype numpy lacks
        raise InputError(f"{weights}: unreadable safetensors ({e})") from e
    params = dict(_from_diffusers(k, v) for k, v in arrays.items())
    return _build(config, params, weights, _diffusers_name), config


def diffusers_kl_autoencoder(path: str | os.PathLike, image_channels: int) -> Autoencoder:
    """A diffusers RGB AutoencoderKL over one-hot images, in RGB groups (vae.grouping).

    Latents are the grouped posterior means, normalised as diffusion pipelines do:
    (mean - shift_factor) * scaling_factor; decode inverts that.
    """
    model, config = load_diffusers(path)
    shift, scale = config.shift_factor or 0.0, config.scaling_factor

    def encode(m, x):
        return grouped(lambda rgb: (m.encode(rgb)[0] - shift) * scale, image_channels)(x)

    def decode(m, z):
        return grouped(lambda lat: m.decode(lat / scale + shift), image_channels, decode=True)(z)

    latent_channels = num_groups(image_channels) * config.latent_channels
    return Autoencoder("diffusers-kl", (config.stride,) * 2, image_channels,
                       latent_channels, file_sha256(_diffusers_files(path)[0]),
                       with_weights(model, encode), with_weights(model, decode))


# ---------------------------------------------------------------- onehot-kl weights file


def save_onehot_kl(path: str | os.PathLike, model: AutoencoderKL, config: KLConfig) -> None:
    """Writes config and params to one msgpack file, atomically."""
    params = {_dotted(p): np.asarray(v) for p, v in _flat_params(model).items()}
    config_dict = dataclasses.asdict(config)
    config_dict["block_out_channels"] = list(config.block_out_channels)
    data = serialization.msgpack_serialize({
        "format": ONEHOT_KL_FORMAT, "version": ONEHOT_KL_VERSION, "config": config_dict,
        "params": traverse_util.unflatten_dict(params, sep=".")})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_onehot_kl(path: str | os.PathLike) -> tuple[AutoencoderKL, KLConfig]:
    """The model and config written by save_onehot_kl; InputError naming the file if it is
    missing, not a onehot-kl file, corrupt, or its params do not fit its config."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such onehot-kl weights file")
    try:
        data = serialization.msgpack_restore(path.read_bytes())
        if data.get("format") != ONEHOT_KL_FORMAT or data.get("version") != ONEHOT_KL_VERSION:
            raise ValueError(f"not a {ONEHOT_KL_FORMAT} v{ONEHOT_KL_VERSION} file")
        raw = dict(data["config"])
        if raw.pop("height_stride", None) not in (None, 2 ** (len(raw["block_out_channels"]) - 1)):
            raise ValueError("its bins are downsampled less than its frames (bin_stride, removed)")
        config = KLConfig(**{**raw, "block_out_channels": tuple(raw["block_out_channels"])})
        params = traverse_util.flatten_dict(data["params"], sep=".")
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise InputError(f"{path}: unreadable onehot-kl weights ({e})") from e
    return _build(config, params, path), config
