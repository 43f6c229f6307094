"""Stored outputs of the PyTorch references the autoencoder ports are tested against.

The tests compare the JAX ports with these files and need neither torch nor diffusers. The files
under tests/data/torch_reference are written by this module, run once in an environment with
the reference libraries (pinned in requirements-reference.txt):

  pip install -r requirements-reference.txt
  HOTDANCE_SHARED=../shared python -m tests.torch_reference

  - diffusers_{sd,flux}/: config.json (diffusers' save_pretrained), parameters.json (each
    weight's name and shape, in diffusers' order) and outputs.npz: the AutoencoderKL with the
    random weights of `random_weights`, applied to this module's inputs.
  - taef2.npz and taef2_tensors.json: a minimal PyTorch TAEF2 (taesd.py's FLUX.2 variant) with
    the real weights from $HOTDANCE_SHARED/weights/taef2 on `taef2_images()`, and the sha256 of
    every tensor torch.load reads from those weights.
  - views.pth: torch.save of tensors that are views of one storage, and other dtypes
    (`VIEWS_EXPECTED` holds their values).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

REFERENCE_DIR = Path(__file__).parent / "data" / "torch_reference"

# Small diffusers configs: SD 1.x/SDXL-like (quant convs, stride 2) and SD3/FLUX-like (16 latent
# channels, no quant convs, shift_factor, stride 8).
DIFFUSERS_CONFIGS = {
    "sd": dict(block_out_channels=(32, 64), layers_per_block=2, norm_num_groups=8,
               latent_channels=4, scaling_factor=0.18215),
    "flux": dict(block_out_channels=(32, 32, 64, 64), layers_per_block=1, norm_num_groups=32,
                 latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                 scaling_factor=0.3611, shift_factor=0.1159),
}
GROUPED_CHANNELS = 7  # one-hot channels of the grouped factory's test: 3 RGB groups, 2 padded


def random_weights(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Weights for parameter shapes in diffusers' order: norm scales ~ N(1, 0.1), other vectors
    ~ N(0, 0.1), kernels ~ N(0, 0.05); float32."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in shapes.items():
        mean = 1.0 if "norm" in name and name.endswith("weight") else 0.0
        std = 0.1 if len(shape) == 1 else 0.05
        weights[name] = rng.normal(mean, std, shape).astype(np.float32)
    return weights


def diffusers_folder(name: str, folder: Path) -> Path:
    """`folder` with config.json and diffusion_pytorch_model.safetensors of the reference VAE."""
    from safetensors.numpy import save_file

    source = REFERENCE_DIR / f"diffusers_{name}"
    shapes = json.loads((source / "parameters.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text((source / "config.json").read_text())
    save_file(random_weights(shapes), folder / "diffusion_pytorch_model.safetensors")
    return folder


def diffusers_outputs(name: str) -> dict[str, np.ndarray]:
    """The reference VAE's outputs (NHWC) on `diffusers_inputs`."""
    with np.load(REFERENCE_DIR / f"diffusers_{name}" / "outputs.npz") as data:
        return dict(data)


def stride_of(name: str) -> int:
    return 2 ** (len(DIFFUSERS_CONFIGS[name]["block_out_channels"]) - 1)


def diffusers_inputs(name: str) -> dict[str, np.ndarray]:
    """x (2, 4s, 3s, 3) in [-1, 1] to encode, z (2, 4, 3, c) to decode; for "flux" also one-hot
    `images` (2, 4s, 2s, GROUPED_CHANNELS) for the grouped factory."""
    s, c = stride_of(name), DIFFUSERS_CONFIGS[name]["latent_channels"]
    inputs = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 4 * s, 3 * s, 3)).astype(np.float32),
              "z": np.random.default_rng(1).normal(size=(2, 4, 3, c)).astype(np.float32)}
    if name == "flux":
        rng = np.random.default_rng(2)
        bins, frames = 4 * s, 2 * s
        hot_bin = rng.integers(0, bins, (2, 1, frames, GROUPED_CHANNELS))
        confidence = rng.uniform(0.5, 1, (2, 1, frames, GROUPED_CHANNELS))
        inputs["images"] = ((np.arange(bins)[:, None, None] == hot_bin)
                            * confidence).astype(np.float32)
    return inputs


def grouped_rgb(images: np.ndarray) -> np.ndarray:
    """One-hot images (N, B, T, C) -> the RGB groups (G, N, B, T, 3) in [-1, 1] the grouped
    factory encodes, zero-padded to whole groups."""
    groups = -(-images.shape[-1] // 3)
    padded = np.concatenate(
        [images, np.zeros((*images.shape[:-1], 3 * groups - images.shape[-1]), images.dtype)], -1)
    return np.stack([padded[..., 3 * g:3 * g + 3] for g in range(groups)]) * 2 - 1


def taef2_images() -> np.ndarray:
    """(2, 64, 64, 3) uniform in [0, 1]: the TAEF2 reference's input."""
    return np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)


def tensor_sha256(array: np.ndarray) -> dict:
    """dtype, shape and sha256 of an array's C-order bytes."""
    array = np.ascontiguousarray(array)
    return {"dtype": str(array.dtype), "shape": list(array.shape),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest()}


VIEWS_BASE = np.arange(24, dtype=np.float32).reshape(4, 6)
VIEWS_EXPECTED = {"t": VIEWS_BASE.T, "slice": VIEWS_BASE[1:, ::2], "same": VIEWS_BASE,
                  "bf16": np.linspace(-2, 2, 5), "long": np.array([1, -2]),
                  "scalar": np.array(3.5)}


def _reference_outputs(torch, vae, name: str) -> dict[str, np.ndarray]:
    """The diffusers VAE `vae` on diffusers_inputs(name), NHWC."""
    def run(fn, x_nhwc):
        with torch.no_grad():
            out = fn(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
        return out.numpy().transpose(0, 2, 3, 1)

    def encode(x):
        return run(lambda t: vae.encode(t).latent_dist.mean, x)

    inputs = diffusers_inputs(name)
    outputs = {"mean": encode(inputs["x"]),
               "logvar": run(lambda t: vae.encode(t).latent_dist.logvar, inputs["x"]),
               "decoded": run(lambda t: vae.decode(t).sample, inputs["z"])}
    if "images" in inputs:
        outputs["group_means"] = np.stack([encode(rgb) for rgb in grouped_rgb(inputs["images"])])
        shift, scale = vae.config.shift_factor, vae.config.scaling_factor
        group_1 = (outputs["group_means"][1] - shift) * scale  # as the grouped factory scales
        outputs["rgb_of_group_1"] = run(lambda t: vae.decode(t / scale + shift).sample, group_1)
    return outputs


def _write_diffusers(torch, diffusers) -> None:
    for name, kwargs in DIFFUSERS_CONFIGS.items():
        folder = REFERENCE_DIR / f"diffusers_{name}"
        levels = len(kwargs["block_out_channels"])
        vae = diffusers.AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * levels,
                                      up_block_types=("UpDecoderBlock2D",) * levels, **kwargs)
        shapes = {key: list(p.shape) for key, p in vae.state_dict().items()}
        vae.load_state_dict({k: torch.from_numpy(v) for k, v in random_weights(shapes).items()})
        vae.eval().save_pretrained(folder, safe_serialization=True)
        (folder / "diffusion_pytorch_model.safetensors").unlink()  # rebuilt by random_weights
        (folder / "parameters.json").write_text(json.dumps(shapes, indent=0) + "\n")
        np.savez_compressed(folder / "outputs.npz", **_reference_outputs(torch, vae, name))


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


def _write_taef2(torch) -> None:
    weights_dir = Path(os.environ["HOTDANCE_SHARED"]) / "weights" / "taef2"
    encoder, decoder = torch_taef2(torch, weights_dir)
    with torch.no_grad():
        z = encoder(torch.from_numpy(taef2_images()).permute(0, 3, 1, 2))
        x = decoder(z).permute(0, 2, 3, 1).numpy()
    np.savez_compressed(REFERENCE_DIR / "taef2.npz", latents=z.permute(0, 2, 3, 1).numpy(),
                        images=x)
    tensors = {name: {key: tensor_sha256(t.numpy()) for key, t in
                      torch.load(weights_dir / name, weights_only=True).items()}
               for name in ("taef2_encoder.pth", "taef2_decoder.pth")}
    (REFERENCE_DIR / "taef2_tensors.json").write_text(json.dumps(tensors, indent=1) + "\n")


def _write_views(torch) -> None:
    base = torch.from_numpy(VIEWS_BASE.copy())
    torch.save({"t": base.t(), "slice": base[1:, ::2], "same": base,
                "bf16": torch.linspace(-2, 2, 5, dtype=torch.bfloat16),
                "long": torch.tensor([1, -2], dtype=torch.int64), "scalar": torch.tensor(3.5)},
               REFERENCE_DIR / "views.pth")


def main() -> None:
    import diffusers
    import torch

    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    _write_diffusers(torch, diffusers)
    _write_taef2(torch)
    _write_views(torch)


if __name__ == "__main__":
    main()
