"""The Flax KL autoencoder: equal to diffusers' AutoencoderKL, grouped factory, weights files."""

import dataclasses
import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx, serialization
from safetensors import numpy as safetensors_numpy

from hotdance_jax.errors import InputError
from hotdance_jax.vae.kl import (
    AutoencoderKL,
    KLConfig,
    diffusers_kl_autoencoder,
    load_diffusers,
    load_onehot_kl,
    save_onehot_kl,
)
from tests.torch_reference import (
    DIFFUSERS_CONFIGS,
    GROUPED_CHANNELS,
    diffusers_folder,
    diffusers_inputs,
    diffusers_outputs,
    stride_of,
)


@pytest.fixture(scope="module")
def diffusers_vaes(tmp_path_factory):
    """name -> the folder of the reference VAE DIFFUSERS_CONFIGS[name] (tests/torch_reference.py),
    written once on demand."""
    return functools.cache(lambda name: diffusers_folder(name, tmp_path_factory.mktemp(name)))


def _close(actual, expected):
    """Equal within float32 error, relative to the output's scale."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@nnx.jit
def _encode(model, x):
    return model.encode(x)


@nnx.jit
def _decode(model, z):
    return model.decode(z)


@pytest.mark.parametrize("name", sorted(DIFFUSERS_CONFIGS))
def test_matches_diffusers(diffusers_vaes, name):
    model, config = load_diffusers(diffusers_vaes(name))
    reference = DIFFUSERS_CONFIGS[name]
    assert config.block_out_channels == reference["block_out_channels"]
    assert config.shift_factor == reference.get("shift_factor")
    inputs, expected = diffusers_inputs(name), diffusers_outputs(name)
    mean, logvar = _encode(model, jnp.asarray(inputs["x"]))
    _close(mean, expected["mean"])
    _close(logvar, expected["logvar"])
    _close(_decode(model, jnp.asarray(inputs["z"])), expected["decoded"])


def test_grouped_factory_matches_diffusers_per_group(diffusers_vaes):
    folder = diffusers_vaes("flux")
    ae = diffusers_kl_autoencoder(folder, image_channels=GROUPED_CHANNELS)
    s, c = stride_of("flux"), DIFFUSERS_CONFIGS["flux"]["latent_channels"]
    shift = DIFFUSERS_CONFIGS["flux"]["shift_factor"]
    scale = DIFFUSERS_CONFIGS["flux"]["scaling_factor"]
    assert (ae.name, ae.stride, ae.latent_channels) == ("diffusers-kl", (s, s), 3 * c)
    weights = folder / "diffusion_pytorch_model.safetensors"
    assert ae.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()

    images, expected = diffusers_inputs("flux")["images"], diffusers_outputs("flux")
    latents = np.asarray(ae.encode(jnp.asarray(images)))
    bins, frames = images.shape[1:3]
    assert latents.shape == (2, bins // s, frames // s, 3 * c)
    reference_latents = np.concatenate((expected["group_means"] - shift) * scale, axis=-1)
    _close(latents, reference_latents)

    decoded = np.asarray(ae.decode(jnp.asarray(reference_latents)))
    assert decoded.shape == images.shape
    _close(decoded[..., 3:6], (expected["rgb_of_group_1"] + 1) / 2)


def test_legacy_attention_names_in_a_single_file(diffusers_vaes, tmp_path):
    folder = diffusers_vaes("sd")
    arrays = safetensors_numpy.load_file(folder / "diffusion_pytorch_model.safetensors")
    legacy = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for key, value in arrays.items():
        for new, old in legacy.items():
            key = key.replace(f".{new}.", f".{old}.")
        renamed[key] = value[..., None, None] if key.endswith("query.weight") else value  # 1x1
    assert "encoder.mid_block.attentions.0.proj_attn.bias" in renamed
    safetensors_numpy.save_file(renamed, tmp_path / "vae.safetensors")
    (tmp_path / "vae.json").write_text((folder / "config.json").read_text())
    legacy_params = nnx.state(load_diffusers(tmp_path / "vae.safetensors")[0], nnx.Param)
    params = nnx.state(load_diffusers(folder)[0], nnx.Param)
    jax.tree.map(np.testing.assert_array_equal, legacy_params, params)


def test_diffusers_bad_weights(diffusers_vaes, tmp_path):
    folder = diffusers_vaes("sd")
    arrays = safetensors_numpy.load_file(folder / "diffusion_pytorch_model.safetensors")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    missing = dict(arrays)
    del missing["encoder.conv_in.weight"]
    safetensors_numpy.save_file(missing, weights)
    with pytest.raises(InputError, match=r"safetensors: no weight for encoder\.conv_in\.weight"):
        load_diffusers(tmp_path)
    safetensors_numpy.save_file({**arrays, "extra.layer.weight": np.zeros((2, 2, 3, 3))}, weights)
    with pytest.raises(InputError, match=r"safetensors: unexpected weight extra\.layer\.weight"):
        load_diffusers(tmp_path)
    weights.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"model\.safetensors: unreadable safetensors"):
        load_diffusers(tmp_path)
    (tmp_path / "config.json").write_text('{"act_fn": "gelu"}')
    with pytest.raises(InputError, match=r"config\.json: not an SD-style AutoencoderKL"):
        load_diffusers(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        load_diffusers(tmp_path / "nowhere")


ONEHOT = KLConfig(in_channels=6, out_channels=12, block_out_channels=(16, 32), layers_per_block=1,
                  latent_channels=4, norm_num_groups=8, scaling_factor=1.0)


@pytest.fixture(scope="module")
def onehot_file(tmp_path_factory):
    """(model of ONEHOT with random weights, its saved weights file)."""
    abstract = nnx.eval_shape(lambda: AutoencoderKL(ONEHOT, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(0)  # random params without compiling the initialisers (slow)
    model = nnx.merge(graphdef, jax.tree.map(
        lambda s: jnp.asarray(rng.normal(0, 0.1, s.shape), jnp.float32), state))
    path = tmp_path_factory.mktemp("onehot") / "w.msgpack"
    save_onehot_kl(path, model, ONEHOT)
    return model, path


@nnx.jit
def _encode_decode(model, x, z):
    """Posterior mean of x and decoding of z."""
    return model.encode(x)[0], model.decode(z)


def test_encoder_strides():
    """Stride 8 along both axes; the decoder gives the image's shape back."""
    config = KLConfig(in_channels=36, out_channels=72, block_out_channels=(8, 8, 16, 16),
                      layers_per_block=1, latent_channels=4, norm_num_groups=4)
    assert config.stride == 8

    def shapes():
        model = AutoencoderKL(config, rngs=nnx.Rngs(0))
        mean, logvar = model.encode(jnp.zeros((2, 64, 32, 36)))
        return mean, logvar, model.decode(mean)

    mean, logvar, image = nnx.eval_shape(shapes)
    assert mean.shape == logvar.shape == (2, 8, 4, 4)
    assert image.shape == (2, 64, 32, 72)


def test_onehot_kl_round_trip_and_bfloat16(onehot_file, tmp_path):
    model, path = onehot_file
    loaded, config = load_onehot_kl(path)
    assert config == ONEHOT
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.msgpack"]  # no temporary left
    rng = np.random.default_rng(0)  # numpy: jax.random compiles slowly on CPU
    x = jnp.asarray(rng.uniform(size=(1, 8, 8, 6)), jnp.float32)
    z = jnp.asarray(rng.normal(size=(1, 4, 4, 4)), jnp.float32)
    mean, image = _encode_decode(model, x, z)
    for ours, theirs in zip(_encode_decode(loaded, x, z), (mean, image), strict=True):
        np.testing.assert_array_equal(ours, theirs)

    def set_height_stride(value):  # files written while KLConfig had a height_stride
        return lambda data: data["config"].update(height_stride=value)

    older = tmp_path / "older.msgpack"
    for height_stride in (None, ONEHOT.stride):
        older.write_bytes(path.read_bytes())
        _rewrite(older, set_height_stride(height_stride))
        assert load_onehot_kl(older)[1] == ONEHOT
    _rewrite(older, set_height_stride(1))
    with pytest.raises(InputError, match="bins are downsampled less than its frames"):
        load_onehot_kl(older)

    save_onehot_kl(tmp_path / "bf16.msgpack", model, dataclasses.replace(ONEHOT, dtype="bfloat16"))
    bf16, config = load_onehot_kl(tmp_path / "bf16.msgpack")
    assert config.dtype == "bfloat16"
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(bf16, nnx.Param)))
    mean16, _ = _encode(bf16, x)
    assert mean16.dtype == jnp.bfloat16
    np.testing.assert_allclose(mean16.astype(jnp.float32), mean, atol=0.05 * np.abs(mean).max())


def _rewrite(path, edit):
    data = serialization.msgpack_restore(path.read_bytes())
    edit(data)
    path.write_bytes(serialization.msgpack_serialize(data))


def test_onehot_kl_bad_files(onehot_file, tmp_path):
    _, good = onehot_file
    truncated, garbage, other = (tmp_path / f"{n}.msgpack" for n in ("trunc", "garbage", "other"))
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage.write_bytes(b"not a weights file at all")
    other.write_bytes(serialization.msgpack_serialize({"format": "something-else"}))
    for path in (tmp_path / "missing.msgpack", truncated, garbage, other):
        with pytest.raises(InputError, match=path.name) as info:
            load_onehot_kl(path)
        assert "\n" not in str(info.value)

    def drop(data):
        del data["params"]["encoder"]["conv_in"]["bias"]

    def add(data):
        data["params"]["decoder"]["extra"] = {"kernel": np.zeros(3, np.float32)}

    def wider(data):
        data["config"]["latent_channels"] = 8

    for edit, message in ((drop, "no weight for encoder.conv_in.bias"),
                          (add, "unexpected weight decoder.extra.kernel"),
                          (wider, "decoder.conv_in.kernel has shape")):
        bad = tmp_path / f"{edit.__name__}.msgpack"
        bad.write_bytes(good.read_bytes())
        _rewrite(bad, edit)
        with pytest.raises(InputError, match=f"{bad.name}: {message}"):
            load_onehot_kl(bad)
