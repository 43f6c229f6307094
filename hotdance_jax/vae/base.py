"""One interface for every image autoencoder that turns one-hot pose images into latents.

Images are (N, B, T, C) float32, channels last: B bins, T frames, C = 2K one-hot channels.
Latents are (N, B / s_b, T / s_t, c). Every autoencoder is frozen: encode returns the posterior
mean (deterministic), decode maps latents back to one-hot space.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hotdance_jax.errors import InputError

RAW_COORDS = "raw-coords"  # the name of the no-network autoencoder (vae/raw_coords.py)
ArrayFn = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Refinement:
    """How onehot-kl's refine_latents moves latents (Autoencoder.refine): `steps` Adam steps on
    the decoder's fit to a position target blurred by `target_sigma` bins."""

    steps: int
    target_sigma: float = 0.0


@dataclasses.dataclass(frozen=True)
class Autoencoder:
    """A frozen autoencoder: jitted encode/decode sharded over the batch on all devices.

    name: "onehot-kl", "taef2", "diffusers-kl" or "raw-coords"; weights_sha256 identifies its
    weights (raw-coords: its layout), weights is their path when it was loaded from a file
    (load_autoencoder; "" for raw-coords).
    stride: (bins, frames) downsampling; latent_channels: c; image_channels: C.
    refine_fn, when given: (images, latents) -> the latents moved to fit the images better
    (onehot-kl loaded with a Refinement: vae.onehot_kl.refine_latents).
    """

    name: str
    stride: tuple[int, int]
    image_channels: int
    latent_channels: int
    weights_sha256: str
    encode_fn: ArrayFn
    decode_fn: ArrayFn
    weights: str = ""
    refine_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None

    def encode(self, images: jax.Array) -> jax.Array:
        """(N, B, T, C) -> (N, B / s_b, T / s_t, c)."""
        b, t, c = images.shape[1:]
        if c != self.image_channels or b % self.stride[0] or t % self.stride[1]:
            raise InputError(
                f"{self.name}: images must be (N, B, T, {self.image_channels}) with B divisible "
                f"by {self.stride[0]} and T by {self.stride[1]}, got {tuple(images.shape)}"
            )
        return on_all_devices(self.encode_fn, images)

    def decode(self, latents: jax.Array) -> jax.Array:
        """(N, B', T', c) -> (N, B' * s_b, T' * s_t, C)."""
        if latents.shape[-1] != self.latent_channels:
            raise InputError(
                f"{self.name}: latents must have {self.latent_channels} channels, "
                f"got {tuple(latents.shape)}"
            )
        return on_all_devices(self.decode_fn, latents)

    def refine(self, images: jax.Array, latents: jax.Array) -> jax.Array:
        """encode's latents (N, B', T', c) of images (N, B, T, C) refined by refine_fn."""
        if self.refine_fn is None:
            raise InputError(f"{self.name}: loaded without a refinement of its latents")
        return on_all_devices(self.refine_fn, images, latents)


def with_weights(model: nnx.Module, fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """(x, ...) -> fn(model, x, ...), jitted with the weights as an argument (not baked-in
    constants)."""
    graphdef, state = nnx.split(model)
    jitted = jax.jit(lambda state, *xs: fn(nnx.merge(graphdef, state), *xs))
    return functools.partial(jitted, state)


def on_all_devices(fn: Callable[..., jax.Array], *batches: jax.Array) -> jax.Array:
    """fn(*batches) with the batch axis (the first, of equal length) of each sharded over every
    device (padded to a multiple of them).

    `fn` should be jitted; its output keeps the batch sharding.
    """
    devices = jax.devices()
    mesh = Mesh(np.asarray(devices), ("data",))
    n = jnp.shape(batches[0])[0]
    pad = -n % len(devices)
    sharded = []
    for batch in map(jnp.asarray, batches):
        if pad:
            batch = jnp.concatenate([batch, jnp.zeros((pad, *batch.shape[1:]), batch.dtype)])
        sharded.append(jax.device_put(batch, NamedSharding(mesh, PartitionSpec("data"))))
    return fn(*sharded)[:n]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a weights file; InputError naming it when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such weights file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
