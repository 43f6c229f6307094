"""The onehot-kl autoencoder: a KL autoencoder fitted to one-hot pose images (the default VAE).

Its decoder emits 2C channels for an image of C one-hot channels: per channel, position logits
over the bins and visibility logits. The decoded image is, per column (channel c, frame t),

  image[:, t, c] = softmax_bins(position[:, t, c]) * sigmoid(mean_bins(visibility[:, t, c]))

so each column is a distribution over bins scaled by a confidence in [0, 1], which the one-hot
codec's decode reads like a one-hot column. The loss (`onehot_kl_loss`) is the per-column
cross-entropy over bins for visible columns (against the hot bin, or with `target_sigma` > 0
against a Gaussian of that many bins around it: SimCC's label smoothing, so a near miss costs less
than a far one), a binary cross-entropy of the visibility against the column's hot value, and a
small KL term on the latent posterior.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hotdance_jax.errors import InputError
from hotdance_jax.vae.base import Autoencoder, file_sha256, with_weights
from hotdance_jax.vae.kl import AutoencoderKL, load_onehot_kl


def split_outputs(outputs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Decoder outputs (N, B, T, 2C) -> position logits (N, B, T, C), visibility (N, T, C)."""
    position, visibility = jnp.split(outputs, 2, axis=-1)
    return position, visibility.mean(axis=-3)


def image_from_outputs(outputs: jax.Array) -> jax.Array:
    """Decoder outputs (N, B, T, 2C) -> decoded one-hot-space image (N, B, T, C) in [0, 1]."""
    position, visibility = split_outputs(outputs)
    return jax.nn.softmax(position, axis=-3) * jax.nn.sigmoid(visibility)[..., None, :, :]


def gaussian_along_bins(images: jax.Array, sigma: float) -> jax.Array:
    """Images (N, B, T, C) blurred along the bins by a Gaussian of `sigma` bins (cut at 3 sigma,
    zero outside the frame); `sigma` 0 returns them as they are."""
    if sigma == 0:
        return images
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    bins = images.shape[-3]
    padded = jnp.pad(images, [(0, 0), (radius, radius), (0, 0), (0, 0)])
    return sum(float(k) * padded[:, i:i + bins] for i, k in enumerate(kernel))


def fit_terms(outputs: jax.Array, images: jax.Array, target_sigma: float = 0.0
              ) -> dict[str, jax.Array]:
    """How well decoder outputs (N, B, T, 2C) fit one-hot images (N, B, T, C): "position" (mean
    cross-entropy over bins of visible columns against the hot bin blurred by a Gaussian of
    `target_sigma` bins, nats), "visibility" (mean binary cross-entropy of every column)."""
    position, visibility = split_outputs(outputs.astype(jnp.float32))
    hot = images.max(axis=-3)  # (N, T, C): the column's confidence, 0 if invisible
    visible = hot > 0
    target = gaussian_along_bins(images, target_sigma)
    target = target / jnp.maximum(target.sum(axis=-3, keepdims=True), 1e-12)
    log_probability = jax.nn.log_softmax(position, axis=-3)
    cross_entropy = -(target * log_probability).sum(axis=-3)
    count = jnp.maximum(visible.sum(), 1)
    return {"position": jnp.where(visible, cross_entropy, 0.0).sum() / count,
            "visibility": optax.sigmoid_binary_cross_entropy(visibility, hot).mean()}


def onehot_kl_loss(
    model: AutoencoderKL,
    images: jax.Array,
    key: jax.Array,
    kl_weight: float,
    visibility_weight: float,
    target_sigma: float = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Training loss of one batch of one-hot images (N, B, T, C); returns (loss, parts):
    fit_terms' parts (position target blurred by `target_sigma` bins) and "kl" (mean KL per
    latent element)."""
    mean, logvar = model.encode(images)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
    parts = fit_terms(model.decode(z), images, target_sigma)
    parts["kl"] = 0.5 * (mean**2 + jnp.exp(logvar) - 1.0 - logvar).mean()
    loss = parts["position"] + visibility_weight * parts["visibility"] + kl_weight * parts["kl"]
    return loss, parts


def onehot_kl_autoencoder(weights: str, image_channels: int) -> Autoencoder:
    """The frozen onehot-kl autoencoder from its weights file (written by vae.train)."""
    model, config = load_onehot_kl(weights)
    if config.in_channels != image_channels:
        raise InputError(f"{weights}: onehot-kl for {config.in_channels} channels, "
                         f"the images have {image_channels}")
    return Autoencoder(
        "onehot-kl", (config.stride,) * 2, image_channels, config.latent_channels,
        file_sha256(weights),
        with_weights(model, lambda m, x: m.encode(x)[0]),
        with_weights(model, lambda m, z: image_from_outputs(m.decode(z).astype(jnp.float32))),
    )
