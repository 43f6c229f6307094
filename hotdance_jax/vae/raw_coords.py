"""raw-coords: the paper's raw-coordinate ablation behind the autoencoder interface.

The same DiT models normalised keypoint coordinates instead of VAE latents of one-hot images.
encode reads every column of a one-hot image (N, B, T, C = 2K) with the codec's decode (sub-bin
soft-argmax, the frame normalised to [0, 1)) and packs per frame F = C + K features: the 2K
coordinates mapped to 2u - 1 (x_0, y_0, x_1, ..., y_{K-1}; 0 where the keypoint is invisible),
then the K visibilities (the codec's confidence, 0 where invisible). Eight frames make one latent
column and all B bins one latent row: latents (N, 1, T / 8, 8 F), stride (B, 8), channel p F + f
holding feature f of frame 8 j + p in column j. decode unpacks and renders the one-hot image again
with the codec's encode (hot value: the visibility clipped to [0, 1]; a coordinate outside
[-1, 1) is outside the frame, an empty column), so the codec's decode reads the poses back within
its half-bin floor.

It has no weights: its weights_sha256 is the sha256 of its layout description (with B), so a
latent cache and a run made with it name the same identity.
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp

from hotdance_jax.errors import InputError
from hotdance_jax.pose import onehot
from hotdance_jax.vae.base import RAW_COORDS, Autoencoder

FRAMES_PER_COLUMN = 8
LAYOUT = ("raw-coords v1: per frame 2u-1 of the 2K codec-decoded coordinates, then K "
          "visibilities; 8 frames per latent column, frame-major; one latent row of {bins} bins")


def features_per_frame(image_channels: int) -> int:
    """F = C + K: 2K coordinates and K visibilities."""
    return image_channels + image_channels // 2


def encode_raw(images: jax.Array) -> jax.Array:
    """One-hot images (N, B, T, C) -> latents (N, 1, T / 8, 8 F) (module docstring)."""
    n, _, t, _ = images.shape
    keypoints, confidence = onehot.decode(images, 1.0, 1.0, jump_cost=0.0)  # (N,T,K,2), (N,T,K)
    coords = jnp.where(confidence[..., None] > 0, 2.0 * keypoints - 1.0, 0.0)
    features = jnp.concatenate([coords.reshape(n, t, -1), confidence], axis=-1)  # (N, T, F)
    return features.reshape(n, 1, t // FRAMES_PER_COLUMN, -1)


def decode_raw(latents: jax.Array, bins: int, image_channels: int) -> jax.Array:
    """Latents (N, 1, T', 8 F) -> one-hot images (N, B, 8 T', C) (module docstring)."""
    n, _, columns, _ = latents.shape
    features = latents.reshape(n, columns * FRAMES_PER_COLUMN, -1)  # (N, T, F)
    coords, visibility = features[..., :image_channels], features[..., image_channels:]
    keypoints = (coords.reshape(*coords.shape[:-1], -1, 2) + 1.0) / 2.0  # (N, T, K, 2) in [0, 1)
    return onehot.encode(keypoints, jnp.clip(visibility, 0.0, 1.0), 1.0, 1.0, bins)


def raw_coords_autoencoder(image_channels: int, bins: int) -> Autoencoder:
    """The raw-coords autoencoder for one-hot images of `bins` bins and `image_channels` = 2K."""
    if image_channels % 2 or image_channels <= 0:
        raise InputError(f"raw-coords: image_channels must be 2K (x and y per keypoint), "
                         f"got {image_channels}")

    def encode(images):
        if images.shape[1] != bins:
            raise InputError(f"raw-coords: images must have {bins} bins, got "
                             f"{tuple(images.shape)}")
        return encode_raw(images)

    def decode(latents):
        if latents.shape[1] != 1:
            raise InputError(f"raw-coords: latents must have one row, got {tuple(latents.shape)}")
        return decode_raw(latents, bins, image_channels)

    identity = hashlib.sha256(LAYOUT.format(bins=bins).encode()).hexdigest()
    return Autoencoder(RAW_COORDS, (bins, FRAMES_PER_COLUMN), image_channels,
                       FRAMES_PER_COLUMN * features_per_frame(image_channels), identity,
                       jax.jit(encode), jax.jit(decode))
