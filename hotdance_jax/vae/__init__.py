"""Frozen image autoencoders behind one interface (base.Autoencoder).

  onehot-kl     an SD-style KL autoencoder on the 2K one-hot channels, trained here
                (python -m hotdance_jax.vae.train); the default
  taef2         the pretrained tiny FLUX.2 autoencoder, over the channels in RGB groups
  diffusers-kl  diffusers AutoencoderKL weights (SD 1.x/SDXL, SD3/FLUX), in RGB groups
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hotdance_jax.errors import InputError
from hotdance_jax.vae.base import Autoencoder

AUTOENCODERS = ("onehot-kl", "taef2", "diffusers-kl")


def load_autoencoder(name: str, weights: str, image_channels: int) -> Autoencoder:
    """The frozen autoencoder `name` with its weights from the local path `weights`.

    weights: the onehot-kl .msgpack file, the taef2 folder, or the diffusers folder/.safetensors.
    """
    if name == "onehot-kl":
        from hotdance_jax.vae.onehot_kl import onehot_kl_autoencoder as load
    elif name == "taef2":
        from hotdance_jax.vae.taef2 import taef2_autoencoder as load
    elif name == "diffusers-kl":
        from hotdance_jax.vae.kl import diffusers_kl_autoencoder as load
    else:
        raise InputError(f"unknown autoencoder {name!r}; expected one of {list(AUTOENCODERS)}")
    return dataclasses.replace(load(weights, image_channels), weights=str(Path(weights).resolve()))


__all__ = ["AUTOENCODERS", "Autoencoder", "load_autoencoder"]
