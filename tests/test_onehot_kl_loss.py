"""The onehot-kl autoencoder's loss: its parts, and the Gaussian position target."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hotdance_jax.pose import encode
from hotdance_jax.vae import Refinement, load_autoencoder
from hotdance_jax.vae.kl import load_onehot_kl
from hotdance_jax.vae.onehot_kl import (
    fit_terms,
    gaussian_along_bins,
    image_from_outputs,
    onehot_kl_loss,
)
from tests.conftest import random_onehot_kl


def test_loss_parts_by_hand():
    """A decoder that reproduces the target exactly has near-zero position loss."""
    kp = jnp.array([[[[3.0, 5.0]] * 2] * 4])  # (1, T=4, K=2, 2) pixels in a 16 x 16 frame
    conf = jnp.array([[[1.0, 0.0]] * 4])
    images = encode(kp, conf, 16, 16, 16)  # (1, 16, 4, 4)

    class Perfect(nnx.Module):
        def encode(self, x):
            return jnp.zeros((1, 2, 1, 1)), jnp.zeros((1, 2, 1, 1))

        def decode(self, z):
            position = jnp.where(images > 0, 50.0, -50.0)
            visibility = jnp.where(images.max(-3, keepdims=True) > 0, 50.0, -50.0)
            return jnp.concatenate([position, jnp.broadcast_to(visibility, images.shape)], -1)

    loss, parts = onehot_kl_loss(Perfect(), images, jax.random.key(0), 1.0, 1.0)
    assert float(loss) < 1e-5
    assert float(parts["position"]) < 1e-6
    assert float(parts["visibility"]) < 1e-6
    assert float(parts["kl"]) == pytest.approx(0.0)
    np.testing.assert_allclose(image_from_outputs(Perfect().decode(None)), images, atol=1e-6)


def columns_at(bins_hot, bins=32):
    """One-hot images (1, bins, 1, C): channel c hot at bins_hot[c]."""
    return jax.nn.one_hot(jnp.array(bins_hot), bins).T[None, :, None, :]


def test_gaussian_target_is_centred_on_the_hot_bin_and_zero_sigma_keeps_it():
    images = columns_at([3, 16, 31])
    np.testing.assert_array_equal(gaussian_along_bins(images, 0.0), images)
    blurred = np.asarray(gaussian_along_bins(images, 1.5))[0, :, 0]  # (B, C)
    bins = np.arange(32)
    inside = blurred[:, 1]
    assert inside.sum() == pytest.approx(1.0, abs=1e-6)
    assert (inside * bins).sum() == pytest.approx(16.0, abs=1e-6)  # symmetric about the hot bin
    assert ((inside * (bins - 16.0) ** 2).sum()) == pytest.approx(1.5**2, rel=0.03)
    assert blurred[:, 2].sum() < 0.7  # at the frame's edge the tail outside is dropped
    assert blurred[:, 2].argmax() == 31


@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_a_near_miss_costs_less_than_a_far_one_only_with_a_gaussian_target(sigma):
    """Decoders sure of the wrong bin: 1 bin off against 8 bins off, for a column hot at bin 16."""
    target = columns_at([16])

    def sure_of(bin_index):
        logits = jnp.where(columns_at([bin_index]) > 0, 10.0, -10.0)
        return jnp.concatenate([logits, jnp.full_like(logits, 10.0)], axis=-1)

    near = float(fit_terms(sure_of(17), target, sigma)["position"])
    far = float(fit_terms(sure_of(24), target, sigma)["position"])
    if sigma:
        assert near < far - 3.0  # nats: the Gaussian puts a fifth of the target on bin 17
    else:
        assert near == pytest.approx(far)


def test_refinement_lowers_the_decoders_fit_of_each_latent_alone(tmp_path):
    """Autoencoder.refine: Adam steps on the decoder's fit lower it; a latent's steps do not
    depend on the others in its batch; no steps leave the latents as they are."""
    weights = str(random_onehot_kl(tmp_path / "vae.msgpack", 4, levels=2))
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 16, (3, 8, 2, 2)).astype(np.float32)  # (N, T, K=2, 2) in 16 x 16 frames
    images = encode(kp, np.ones((3, 8, 2), np.float32), 16, 16, 16)
    model, _ = load_onehot_kl(weights)

    def fit(latents):
        parts = fit_terms(model.decode(latents), images)
        return float(parts["position"] + parts["visibility"])

    def refined(steps, batch=slice(None)):
        autoencoder = load_autoencoder("onehot-kl", weights, 4, refine=Refinement(steps))
        return np.asarray(autoencoder.refine(images[batch], latents[batch]))

    latents = np.asarray(load_autoencoder("onehot-kl", weights, 4).encode(images))
    moved = refined(20)
    assert fit(moved) < fit(latents) - 0.02
    np.testing.assert_allclose(refined(20, slice(1, 2)), moved[1:2], atol=1e-4)
    np.testing.assert_array_equal(refined(0), latents)
