"""The autoencoder interface: RGB grouping of one-hot channels and batch sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hotdance_jax.errors import InputError
from hotdance_jax.vae import load_autoencoder
from hotdance_jax.vae.base import Autoencoder, on_all_devices
from hotdance_jax.vae.grouping import (
    from_rgb_groups,
    grouped,
    stack_latents,
    to_rgb_groups,
    unstack_latents,
)


def test_rgb_groups_by_hand_and_inverse():
    images = jnp.arange(2 * 4 * 3 * 7, dtype=jnp.float32).reshape(2, 4, 3, 7) / 200
    rgb = to_rgb_groups(images)
    assert rgb.shape == (2 * 3, 4, 3, 3)
    np.testing.assert_allclose(rgb[1], images[0, ..., 3:6] * 2 - 1)  # example 0, group 1
    np.testing.assert_allclose(rgb[5, ..., 0], images[1, ..., 6] * 2 - 1)  # last group, padded
    np.testing.assert_allclose(rgb[5, ..., 1:], -1.0)  # zero padding, mapped to -1
    np.testing.assert_allclose(from_rgb_groups(rgb, 7), images, rtol=1e-6, atol=1e-6)


def test_latent_stacking_is_group_major_and_invertible():
    latents = jnp.arange(2 * 3 * 2 * 2 * 4, dtype=jnp.float32).reshape(6, 2, 2, 4)
    stacked = stack_latents(latents, groups=3)
    assert stacked.shape == (2, 2, 2, 12)
    np.testing.assert_array_equal(stacked[1, ..., 4:8], latents[4])  # example 1, group 1
    np.testing.assert_array_equal(unstack_latents(stacked, 3), latents)


def test_grouped_runs_the_rgb_function_per_group():
    def rgb_encode(x):  # (N, H, W, 3) -> (N, H/2, W/2, 1): mean of a 2x2 block of channel sum
        n, h, w, _ = x.shape
        return x.sum(-1).reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))[..., None]

    images = jax.random.uniform(jax.random.key(0), (2, 4, 4, 5))
    latents = grouped(rgb_encode, 5)(images)
    assert latents.shape == (2, 2, 2, 2)
    last_group = jnp.concatenate([images[..., 3:5], jnp.zeros((2, 4, 4, 1))], -1)
    by_hand = rgb_encode(last_group * 2 - 1)
    np.testing.assert_allclose(latents[..., 1:2], by_hand, rtol=1e-5, atol=1e-6)


def test_on_all_devices_pads_shards_and_unpads():
    fn = jax.jit(lambda x: x * 2)
    out = on_all_devices(fn, jnp.arange(5.0))
    np.testing.assert_array_equal(out, [0, 2, 4, 6, 8])
    two = on_all_devices(jax.jit(lambda x, y: x - y), jnp.arange(5.0), jnp.ones(5))
    np.testing.assert_array_equal(two, [-1, 0, 1, 2, 3])


def test_autoencoder_checks_shapes_and_names():
    pool = jax.jit(lambda x: x.reshape(x.shape[0], x.shape[1] // 8, 8, x.shape[2] // 8, 8,
                                       x.shape[3]).mean((2, 4)))
    ae = Autoencoder("avgpool", (8, 8), 36, 36, "0" * 64, pool, pool)
    assert ae.encode(jnp.ones((3, 16, 8, 36))).shape == (3, 2, 1, 36)
    with pytest.raises(InputError, match=r"\(N, B, T, 36\)"):
        ae.encode(jnp.ones((1, 12, 8, 36)))
    with pytest.raises(InputError, match="unknown autoencoder"):
        load_autoencoder("sdxl", "/tmp/x", 36)
    with pytest.raises(InputError, match="avgpool: loaded without a refinement of its latents"):
        ae.refine(jnp.ones((3, 16, 8, 36)), jnp.ones((3, 2, 1, 36)))
