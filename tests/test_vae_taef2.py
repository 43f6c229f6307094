"""TAEF2 in NNX: the safe .pth reader, the port against a PyTorch reference, grouped channels.

Real weights come from $HOTDANCE_SHARED/weights/taef2; the reference needs torch (dev only).
"""

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


@pytest.fixture(scope="module")
def weights_dir():
    return shared_file("weights/taef2/taef2_encoder.pth").parent


@pytest.fixture(scope="module")
def taef2(weights_dir):
    encoder, decoder = load_taef2(weights_dir)
    return jax.jit(lambda x: encoder(x)), jax.jit(lambda z: decoder(z))


def torch_taef2(torch, weights_dir):
    """A minimal PyTorch TAEF2 (taesd.py's FLUX.2 variant) with the real weights, float32."""
    nn = torch.nn

    def conv(n_in, n_out, **kwargs):
        return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)

    class Clamp(nn.Module):
        def forward(self, x):
            return torch.tanh(x / 3) * 3

    class Block(nn.Module):
        def __init__(self, pooled=False):
            super().__init__()
            self.conv = nn.Sequential(conv(64, 64), nn.ReLU(), conv(64, 64), nn.ReLU(),
                                      conv(64, 64))
            self.pool = nn.Sequential(
                nn.Conv2d(64, 256, 1, bias=False), nn.GroupNorm(4, 256), nn.ReLU(),
                nn.Conv2d(256, 64, 1, bias=False)) if pooled else None

        def forward(self, x):
            if self.pool is not None:
                x = x + self.pool(x)
            return torch.relu(self.conv(x) + x)

    def down():
        return conv(64, 64, stride=2, bias=False)

    def up():
        return [nn.Upsample(scale_factor=2), conv(64, 64, bias=False)]

    def stage(pooled=False):
        return [Block(pooled) for _ in range(3)]

    encoder = nn.Sequential(conv(3, 64), Block(), down(), *stage(), down(), *stage(), down(),
                            *stage(pooled=True), conv(64, 32))
    decoder = nn.Sequential(Clamp(), conv(32, 64), nn.ReLU(), *stage(pooled=True), *up(),
                            *stage(), *up(), *stage(), *up(), Block(), conv(64, 3))
    for module, name in ((encoder, "encoder"), (decoder, "decoder")):
        state = torch.load(weights_dir / f"taef2_{name}.pth", weights_only=True)
        module.load_state_dict(state)  # strict: the same architecture, key by key
        module.float().eval()
    return encoder, decoder


def test_reader_matches_torch_load(weights_dir):
    torch = pytest.importorskip("torch")
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        ours = read_pth(weights_dir / name)
        theirs = torch.load(weights_dir / name, weights_only=True)
        assert list(ours) == list(theirs)
        for key, tensor in theirs.items():
            assert ours[key].dtype == np.float16
            np.testing.assert_array_equal(ours[key], tensor.numpy())


def test_reader_rebuilds_views_shared_storages_and_dtypes(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {"t": base.t(), "slice": base[1:, ::2], "same": base,
             "bf16": torch.linspace(-2, 2, 5, dtype=torch.bfloat16),
             "long": torch.tensor([1, -2], dtype=torch.int64), "scalar": torch.tensor(3.5)}
    torch.save(state, tmp_path / "views.pth")
    ours = read_pth(tmp_path / "views.pth")
    for key, tensor in state.items():
        np.testing.assert_array_equal(ours[key].astype(np.float64),
                                      tensor.double().numpy(), err_msg=key)
        assert ours[key].shape == tuple(tensor.shape)


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


def test_port_matches_pytorch_reference(weights_dir, taef2):
    torch = pytest.importorskip("torch")
    encoder, decoder = torch_taef2(torch, weights_dir)
    images = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        z_ref = encoder(torch.from_numpy(images).permute(0, 3, 1, 2))
        x_ref = decoder(z_ref).permute(0, 2, 3, 1).numpy()
        z_ref = z_ref.permute(0, 2, 3, 1).numpy()
    z = np.asarray(taef2[0](images))
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
