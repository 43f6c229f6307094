"""Frozen image autoencoders behind one interface (base.Autoencoder).

  onehot-kl     an SD-style KL autoencoder on the 2K one-hot channels, trained here
                (python -m hotdance_jax.vae.train); the default
  taef2         the pretrained tiny FLUX.2 autoencoder, over the channels in RGB groups
  diffusers-kl  diffusers AutoencoderKL weights (SD 1.x/SDXL, SD3/FLUX), in RGB groups
  raw-coords    no network: the codec-decoded keypoint coordinates and visibilities, 8 frames
                per latent column (the paper's raw-coordinate ablation; no weights)
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from hotdance_jax.errors import InputError
from hotdance_jax.pose.skeletons import pipeline_skeleton
from hotdance_jax.vae.base import RAW_COORDS, Autoencoder, Refinement

AUTOENCODERS = ("onehot-kl", "taef2", "diffusers-kl", RAW_COORDS)


def image_channels(skeleton: str) -> int:
    """2K, the one-hot image channels of the K keypoints of the layout config.pose.skeleton
    names (an x and a y channel per keypoint)."""
    return 2 * pipeline_skeleton(skeleton).num_joints


def load_autoencoder(name: str, weights: str, image_channels: int,
                     bins: int | None = None, refine: Refinement | None = None) -> Autoencoder:
    """The frozen autoencoder `name` with its weights from the local path `weights`.

    weights: the onehot-kl .msgpack file, the taef2 folder, or the diffusers folder/.safetensors;
    "" for raw-coords, which has none. bins: B of the one-hot images, needed only by raw-coords
    (its one latent row stands for all B bins, which decode renders again). refine: how its
    `refine` moves latents, onehot-kl only (its decoder's loss is what it descends).
    """
    if refine and name != "onehot-kl":
        raise InputError(f"{name}: latents refine only through the onehot-kl decoder's loss "
                         f"(config.latents.refine_steps = {refine.steps})")
    if name == RAW_COORDS:
        from hotdance_jax.vae.raw_coords import raw_coords_autoencoder

        if weights:
            raise InputError(f"{RAW_COORDS} has no weights; got {weights!r}, expected ''")
        if bins is None:
            raise InputError(f"{RAW_COORDS} needs bins (the one-hot images' B), got None")
        return raw_coords_autoencoder(image_channels, bins)
    if name == "onehot-kl":
        from hotdance_jax.vae.onehot_kl import onehot_kl_autoencoder

        load = functools.partial(onehot_kl_autoencoder, refine=refine)
    elif name == "taef2":
        from hotdance_jax.vae.taef2 import taef2_autoencoder as load
    elif name == "diffusers-kl":
        from hotdance_jax.vae.kl import diffusers_kl_autoencoder as load
    else:
        raise InputError(f"unknown autoencoder {name!r}; expected one of {list(AUTOENCODERS)}")
    return dataclasses.replace(load(weights, image_channels), weights=str(Path(weights).resolve()))


__all__ = ["AUTOENCODERS", "RAW_COORDS", "Autoencoder", "Refinement", "load_autoencoder"]
