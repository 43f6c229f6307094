"""TAEF2: the pretrained tiny autoencoder of the FLUX.2 latent space, in Flax NNX.

The architecture is madebyollin/taesd's `Encoder`/`Decoder` with the FLUX.2 mid-block GroupNorm
branch ("use_midblock_gn"). Every conv is 3x3 with padding 1 unless noted; `Block` is
x' = x + pool(x) (pooled blocks only), then relu(conv(x') + x'), conv = conv-relu-conv-relu-conv,
pool = 1x1 conv 64->256, GroupNorm(4 groups), relu, 1x1 conv 256->64 (no biases on the 1x1s).

  encoder  conv 3->64, Block, 3 x [conv stride 2 (no bias), 3 Blocks (pooled in the last stage)],
           conv 64->32: (N, H, W, 3) RGB in [0, 1] -> (N, H/8, W/8, 32) FLUX.2 VAE latents
  decoder  tanh(z/3)*3, conv 32->64, relu, 3 x [3 Blocks (pooled in the first stage), nearest
           upsample x2, conv (no bias)], Block, conv 64->3: latents -> RGB in about [0, 1]

Modules are channels last and mirror the PyTorch `nn.Sequential` indices (`layers[i]` is torch
module `i`), so the weights load by name. The `.pth` files are read without torch and without
running pickled code (`read_pth`).
"""

from __future__ import annotations

import collections
import hashlib
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util

from hotdance_jax.errors import InputError
from hotdance_jax.vae import grouping
from hotdance_jax.vae.base import Autoencoder, file_sha256, with_weights

ENCODER_FILE = "taef2_encoder.pth"
DECODER_FILE = "taef2_decoder.pth"
STRIDE = 8

_STORAGE_DTYPES = {
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BFloat16Storage": jnp.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


# ---- the .pth reader


def _rebuild_tensor(storage, offset, size, stride, *_) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 for a numpy storage: the strided view, copied."""
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError("a tensor without a storage")
    offset, size, stride = int(offset), tuple(map(int, size)), tuple(map(int, stride))
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True) if n > 0)
    if offset < 0 or min(stride, default=0) < 0 or (0 not in size and last >= storage.size):
        raise pickle.UnpicklingError("a tensor outside its storage")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], size, tuple(s * item for s in stride), writeable=False)
    return np.array(view)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a plain state dict only: globals outside an allow-list are refused."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(file)
        self.archive, self.prefix, self.byteorder = archive, prefix, byteorder
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        """('storage', dtype, key, location, numel) -> the storage as a flat numpy array."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], np.dtype)):
            raise pickle.UnpicklingError(f"refused persistent id {pid!r}")
        _, dtype, key, _, numel = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            stored = dtype.newbyteorder("<" if self.byteorder == "little" else ">")
            self.storages[key] = np.frombuffer(raw, stored, count=int(numel)).astype(dtype)
        return self.storages[key]


def read_pth(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch zip-format state dict (`torch.save(module.state_dict())`) as numpy arrays.

    Never imports torch nor runs pickled code; anything but a plain state dict is an InputError.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            (pkl,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            prefix = pkl.removesuffix("/data.pkl")
            names = set(archive.namelist())
            byteorder = "little"
            if f"{prefix}/byteorder" in names:
                byteorder = archive.read(f"{prefix}/byteorder").decode().strip()
            with archive.open(pkl) as f:
                state = _StateDictUnpickler(f, archive, prefix, byteorder).load()
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError,
            zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise InputError(f"{path}: not a readable PyTorch state dict ({e})") from None
    if not (isinstance(state, dict) and all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items())):
        raise InputError(f"{path}: not a PyTorch state dict of tensors")
    return dict(state)


# ---- the network


def _conv(n_in: int, n_out: int, rngs: nnx.Rngs, *, kernel: int = 3, stride: int = 1,
          bias: bool = True) -> nnx.Conv:
    pad = kernel // 2
    return nnx.Conv(n_in, n_out, (kernel, kernel), strides=stride,
                    padding=((pad, pad), (pad, pad)), use_bias=bias, rngs=rngs)


def _clamp(z: jax.Array) -> jax.Array:
    """Soft clamp of latents to (-3, 3)."""
    return jnp.tanh(z / 3) * 3


def _upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour x2: (N, H, W, C) -> (N, 2H, 2W, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class Block(nnx.Module):
    """TAESD residual block, (N, H, W, C) -> (N, H, W, C); `pooled` adds the GroupNorm branch."""

    def __init__(self, channels: int, *, pooled: bool, rngs: nnx.Rngs):
        c = channels
        self.conv = nnx.Sequential(
            _conv(c, c, rngs), nnx.relu, _conv(c, c, rngs), nnx.relu, _conv(c, c, rngs))
        self.pool = nnx.Sequential(
            _conv(c, 4 * c, rngs, kernel=1, bias=False),
            nnx.GroupNorm(4 * c, num_groups=4, epsilon=1e-5, use_fast_variance=False, rngs=rngs),
            nnx.relu,
            _conv(4 * c, c, rngs, kernel=1, bias=False),
        ) if pooled else None

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.pool is not None:
            x = x + self.pool(x)
        return nnx.relu(self.conv(x) + x)


def _blocks(n: int, *, pooled: bool, rngs: nnx.Rngs) -> list[Block]:
    return [Block(64, pooled=pooled, rngs=rngs) for _ in range(n)]


def encoder(latent_channels: int = 32, *, rngs: nnx.Rngs) -> nnx.Sequential:
    """(N, H, W, 3) RGB in [0, 1] -> (N, H/8, W/8, latent_channels)."""
    def down():
        return _conv(64, 64, rngs, stride=2, bias=False)

    return nnx.Sequential(
        _conv(3, 64, rngs), *_blocks(1, pooled=False, rngs=rngs),
        down(), *_blocks(3, pooled=False, rngs=rngs),
        down(), *_blocks(3, pooled=False, rngs=rngs),
        down(), *_blocks(3, pooled=True, rngs=rngs),
        _conv(64, latent_channels, rngs),
    )


def decoder(latent_channels: int = 32, *, rngs: nnx.Rngs) -> nnx.Sequential:
    """(N, h, w, latent_channels) -> (N, 8h, 8w, 3) RGB in about [0, 1]."""
    def up():
        return [_upsample, _conv(64, 64, rngs, bias=False)]

    return nnx.Sequential(
        _clamp, _conv(latent_channels, 64, rngs), nnx.relu,
        *_blocks(3, pooled=True, rngs=rngs), *up(),
        *_blocks(3, pooled=False, rngs=rngs), *up(),
        *_blocks(3, pooled=False, rngs=rngs), *up(),
        *_blocks(1, pooled=False, rngs=rngs), _conv(64, 3, rngs),
    )


def _torch_key(path: tuple) -> str:
    """NNX parameter path -> state dict key: ('layers', 11, 'pool', 'layers', 0, 'kernel')
    -> '11.pool.0.weight'."""
    *module, leaf = (str(p) for p in path if p != "layers")
    return ".".join([*module, "bias" if leaf == "bias" else "weight"])


def load_state_dict(build: Callable[[], nnx.Module], tensors: dict[str, np.ndarray],
                    path: Path) -> nnx.Module:
    """The module `build()` makes, with every parameter from `tensors` (float32, HWIO kernels).

    Missing, unexpected or misshapen tensors are an InputError naming `path`.
    """
    graphdef, state = nnx.split(nnx.eval_shape(build))
    tensors, params = dict(tensors), {}
    for keypath, var in nnx.to_flat_state(state):
        key = _torch_key(keypath)
        if key not in tensors:
            raise InputError(f"{path}: missing tensor {key}")
        value = tensors.pop(key).astype(np.float32)
        if value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if value.shape != var.shape:
            raise InputError(f"{path}: {key} has shape {value.shape}, expected {var.shape}")
        params[keypath] = jnp.asarray(value)
    if tensors:
        raise InputError(f"{path}: unexpected tensors {sorted(tensors)[:5]}")
    nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(params))
    return nnx.merge(graphdef, state)


def load_taef2(weights_dir: str | Path) -> tuple[nnx.Sequential, nnx.Sequential]:
    """(encoder, decoder) with the pretrained weights in `weights_dir` (taef2_*.pth)."""
    weights_dir = Path(weights_dir)
    enc_path, dec_path = weights_dir / ENCODER_FILE, weights_dir / DECODER_FILE
    enc, dec = read_pth(enc_path), read_pth(dec_path)
    if "1.weight" not in dec:
        raise InputError(f"{dec_path}: missing tensor 1.weight")
    latent_channels = dec["1.weight"].shape[1]
    return (load_state_dict(lambda: encoder(latent_channels, rngs=nnx.Rngs(0)), enc, enc_path),
            load_state_dict(lambda: decoder(latent_channels, rngs=nnx.Rngs(0)), dec, dec_path))


def taef2_autoencoder(weights_dir: str | Path, image_channels: int) -> Autoencoder:
    """TAEF2 over `image_channels` one-hot channels in RGB groups: stride (8, 8), G * 32 latents.

    grouping hands the RGB functions images in [-1, 1]; TAEF2 works in [0, 1], so they convert.
    """
    weights_dir = Path(weights_dir)
    digests = file_sha256(weights_dir / ENCODER_FILE) + file_sha256(weights_dir / DECODER_FILE)
    enc, dec = load_taef2(weights_dir)
    latent_channels = enc.layers[-1].out_features
    return Autoencoder(
        name="taef2",
        stride=(STRIDE, STRIDE),
        image_channels=image_channels,
        latent_channels=grouping.num_groups(image_channels) * latent_channels,
        weights_sha256=hashlib.sha256(digests.encode()).hexdigest(),
        encode_fn=with_weights(
            enc, lambda m, x: grouping.grouped(lambda rgb: m((rgb + 1) / 2), image_channels)(x)),
        decode_fn=with_weights(
            dec, lambda m, z: grouping.grouped(lambda lat: m(lat) * 2 - 1, image_channels,
                                               decode=True)(z)),
    )
