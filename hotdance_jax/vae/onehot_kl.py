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

`refine_latents` moves the encoder's latents by gradient descent on that fit (inference by
optimisation from the encoder's guess); an autoencoder loaded with a Refinement does it in its
`refine` (data_pipeline.precompute: config.latents.refine_steps). docs/real_dances.md (session
38) measures what it closes and costs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hotdance_jax.errors import InputError
from hotdance_jax.vae.base import Autoencoder, Refinement, file_sha256, with_weights
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


def column_terms(outputs: jax.Array, images: jax.Array, target_sigma: float = 0.0
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per column (N, T, C) of decoder outputs (N, B, T, 2C) against one-hot images (N, B, T,
    C): the cross-entropy over bins against the hot bin blurred by a Gaussian of `target_sigma`
    bins (nats, 0 where the column is invisible), the visibility's binary cross-entropy, and
    whether the column is visible."""
    position, visibility = split_outputs(outputs.astype(jnp.float32))
    hot = images.max(axis=-3)  # (N, T, C): the column's confidence, 0 if invisible
    visible = hot > 0
    target = gaussian_along_bins(images, target_sigma)
    target = target / jnp.maximum(target.sum(axis=-3, keepdims=True), 1e-12)
    cross_entropy = -(target * jax.nn.log_softmax(position, axis=-3)).sum(axis=-3)
    return (jnp.where(visible, cross_entropy, 0.0),
            optax.sigmoid_binary_cross_entropy(visibility, hot), visible)


def fit_terms(outputs: jax.Array, images: jax.Array, target_sigma: float = 0.0
              ) -> dict[str, jax.Array]:
    """How well decoder outputs (N, B, T, 2C) fit one-hot images (N, B, T, C): "position" (mean
    of column_terms' cross-entropy over visible columns, nats), "visibility" (mean binary
    cross-entropy of every column)."""
    position, visibility, visible = column_terms(outputs, images, target_sigma)
    return {"position": position.sum() / jnp.maximum(visible.sum(), 1),
            "visibility": visibility.mean()}


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


# Refinement's Adam: the step (latent units) and eps (nats per latent unit: latents whose
# gradient is far below it move proportionally less, so those the decoder hardly reads stay put);
# docs/real_dances.md (session 38).
REFINE_LEARNING_RATE = 0.2
REFINE_EPS = 0.3


def refine_latents(model: AutoencoderKL, images: jax.Array, latents: jax.Array,
                   refine: Refinement) -> jax.Array:
    """Latents (N, h, w, c) of one-hot images (N, B, T, C) after refine.steps Adam steps on the
    sum of column_terms' position and visibility terms of the decoder's outputs: each latent's
    steps depend on its own image alone."""
    adam = optax.adam(REFINE_LEARNING_RATE, eps=REFINE_EPS)

    def loss(z):
        position, visibility, _ = column_terms(model.decode(z), images, refine.target_sigma)
        return position.sum() + visibility.sum()

    def step(_, carry):
        z, adam_state = carry
        updates, adam_state = adam.update(jax.grad(loss)(z), adam_state)
        return optax.apply_updates(z, updates), adam_state

    # unrolled: XLA's CPU backend runs the rolled loop's convolutions 5x slower
    return jax.lax.fori_loop(0, refine.steps, step, (latents, adam.init(latents)),
                             unroll=True)[0]


def onehot_kl_autoencoder(weights: str, image_channels: int,
                          refine: Refinement | None = None) -> Autoencoder:
    """The frozen onehot-kl autoencoder from its weights file (written by vae.train); with
    `refine`, its refine_fn is refine_latents with those settings."""
    model, config = load_onehot_kl(weights)
    if config.in_channels != image_channels:
        raise InputError(f"{weights}: onehot-kl for {config.in_channels} channels, "
                         f"the images have {image_channels}")
    return Autoencoder(
        "onehot-kl", (config.stride,) * 2, image_channels, config.latent_channels,
        file_sha256(weights),
        with_weights(model, lambda m, x: m.encode(x)[0]),
        with_weights(model, lambda m, z: image_from_outputs(m.decode(z).astype(jnp.float32))),
        refine_fn=(with_weights(model, lambda m, x, z: refine_latents(m, x, z, refine))
                   if refine else None),
    )
