"""TAEF2 in NNX: the safe .pth reader, the port against a PyTorch reference, grouped channels.

Real weights come from $HOTDANCE_SHARED/weights/taef2; what torch reads and computes from them is
stored in tests/data/torch_reference (tests/torch_reference.py).
"""

import json
import os
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hotdance_jax.errors import InputError
from hotdance_jax.vae import load_autoencoder
from hotdance_jax.vae.taef2 import load_taef2, read_pth
from tests.conftest import shared_file
from tests.torch_reference import REFERENCE_DIR, VIEWS_EXPECTED, taef2_images, tensor_sha256


@pytest.fixture(scope="module")
def weights_dir():
    return shared_file("weights/taef2/taef2_encoder.pth").parent


@pytest.fixture(scope="module")
def taef2(weights_dir):
    encoder, decoder = load_taef2(weights_dir)
    return jax.jit(lambda x: encoder(x)), jax.jit(lambda z: decoder(z))


def test_reader_matches_torch_load(weights_dir):
    expected = json.loads((REFERENCE_DIR / "taef2_tensors.json").read_text())
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        ours = read_pth(weights_dir / name)
        assert list(ours) == list(expected[name])
        for key, tensor in ours.items():
            assert tensor.dtype == np.float16
            assert tensor_sha256(tensor) == expected[name][key], key


def test_reader_rebuilds_views_shared_storages_and_dtypes():
    ours = read_pth(REFERENCE_DIR / "views.pth")
    assert list(ours) == list(VIEWS_EXPECTED)
    for key, expected in VIEWS_EXPECTED.items():
        np.testing.assert_array_equal(ours[key].astype(np.float64), expected, err_msg=key)
        assert ours[key].shape == expected.shape
    assert ours["bf16"].dtype.name == "bfloat16"
    assert ours["long"].dtype == np.int64


class _Exploit:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_reader_refuses_code_in_the_pickle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"0.weight": _Exploit()}, protocol=2))
    with pytest.raises(InputError, match=r"evil\.pth.*refused global (posix|nt)\.system"):
        read_pth(path)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(InputError, match=r"legacy\.pth"):
        read_pth(tmp_path / "legacy.pth")
    with pytest.raises(InputError, match="no such weights file"):
        load_autoencoder("taef2", str(tmp_path), 36)


def test_port_matches_pytorch_reference(taef2):
    with np.load(REFERENCE_DIR / "taef2.npz") as reference:
        z_ref, x_ref = reference["latents"], reference["images"]
    z = np.asarray(taef2[0](taef2_images()))
    x = np.asarray(taef2[1](z_ref))
    for name, ours, ref in (("latents", z, z_ref), ("images", x, x_ref)):
        err = np.abs(ours - ref).max()
        print(f"{name}: max abs err {err:.2e}, relative to max |ref| {err / np.abs(ref).max():.2e}")
        np.testing.assert_allclose(ours, ref, atol=1e-3 * np.abs(ref).max(), rtol=0)


def smooth_image(size: int = 128) -> np.ndarray:
    """(size, size, 3) in [0, 1]: colour gradients, a disc and a bar."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([x, y, 0.5 + 0.3 * np.sin(3 * x + 2 * y)], -1)
    image[(x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.04] = (0.9, 0.2, 0.1)
    image[(np.abs(x - 0.25) < 0.08) & (y > 0.55)] = (0.1, 0.3, 0.8)
    return image.astype(np.float32)


def test_round_trip_is_meaningful(taef2):
    image = smooth_image()[None]
    decoded = np.asarray(taef2[1](taef2[0](image)))
    psnr = -10 * np.log10(np.mean((decoded - image) ** 2))
    noise = np.random.default_rng(0).uniform(size=image.shape)
    noise_psnr = -10 * np.log10(np.mean((noise - image) ** 2))
    print(f"round-trip PSNR {psnr:.1f} dB (uniform noise {noise_psnr:.1f} dB)")
    assert psnr > 25
    assert noise_psnr < 10


def test_grouped_one_hot_autoencoder(weights_dir):
    ae = load_autoencoder("taef2", str(weights_dir), 36)
    assert (ae.name, ae.stride, ae.latent_channels) == ("taef2", (8, 8), 12 * 32)
    assert len(ae.weights_sha256) == 64
    bins = jax.random.randint(jax.random.key(0), (2, 1, 64, 36), 0, 64)
    images = (jnp.arange(64)[None, :, None, None] == bins).astype(jnp.float32)
    latents = ae.encode(images)
    assert latents.shape == (2, 8, 8, 384)
    decoded = ae.decode(latents)
    assert decoded.shape == (2, 64, 64, 36)
    assert bool(jnp.isfinite(decoded).all())
