"""Shared test helpers: the ../shared data through HOTDANCE_SHARED, the tiny latent cache that
the latent, loader, training and sharding tests read, and one XLA compilation cache for the run."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

from data_pipeline import build, precompute
from hotdance_jax.audio.features import compile_librosa
from hotdance_jax.config_utils import sibling_config

REPO = Path(__file__).resolve().parents[1]


def xla_flags(*extra: str) -> str:
    """XLA_FLAGS for a command a test starts: this run's and `extra`."""
    return " ".join([os.environ.get("XLA_FLAGS", ""), *extra]).strip()


def pytest_configure(config):
    """One compilation cache for the run, set before any JAX backend starts (the commands the
    tests start inherit it); librosa's numba functions compiled before the workers start."""
    _share_compilation_cache(config)
    if config.getoption("dist", "no") != "no" and "PYTEST_XDIST_WORKER" not in os.environ:
        compile_librosa()  # once here, not in two workers at once (a crash, 2026-12-05)


def pytest_collection_modifyitems(config, items):
    """The files with slow tests first, each file's tests in their order: `make test` hands whole
    files to its workers in this order (--dist loadfile --no-loadscope-reorder), so the long
    files start at once instead of ending the run on one worker while the others idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def _share_compilation_cache(config):
    """Many tests compile the same programs (a training and its resume, a command run twice, the
    same model in a subprocess): JAX's persistent compilation cache in a folder of this run
    compiles each once; set through the environment too, so the commands the tests start share
    it. A JAX_COMPILATION_CACHE_DIR set by the user is kept."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    folder = tempfile.mkdtemp(prefix="hotdance-test-xla-")
    config.stash[_CACHE_FOLDER] = folder
    for name, value in {"jax_compilation_cache_dir": folder,
                        "jax_persistent_cache_min_compile_time_secs": 0,
                        "jax_persistent_cache_min_entry_size_bytes": -1}.items():
        os.environ[name.upper()] = str(value)
        jax.config.update(name, value)  # this process loaded jax before


def pytest_unconfigure(config):
    shutil.rmtree(config.stash.get(_CACHE_FOLDER, ""), ignore_errors=True)


_CACHE_FOLDER = pytest.StashKey[str]()


def shared_file(relative: str) -> Path:
    """Path of `relative` under $HOTDANCE_SHARED.

    Skips the test when HOTDANCE_SHARED is unset; fails it when the variable is set but the file
    is missing, so CI (which sets it) never silently skips real-data tests.
    """
    root = os.environ.get("HOTDANCE_SHARED")
    if not root:
        pytest.skip("HOTDANCE_SHARED is not set")
    path = Path(root) / relative
    if not path.exists():
        pytest.fail(f"HOTDANCE_SHARED={root} but {relative} is missing")
    return path


@pytest.fixture
def shared():
    """The shared_file function, as a fixture."""
    return shared_file


def tiny_config(**data_overrides):
    """configs/tiny_cpu.py with 4 synthetic songs of 6 s (1 val, 1 test); `data_overrides` set
    config.data keys."""
    config = sibling_config(str(REPO / "configs" / "base.py"), "tiny_cpu")
    config.data.synthetic.num_songs = 4
    config.data.synthetic.val_songs = 1
    config.data.synthetic.test_songs = 1
    config.data.synthetic.seconds = 6.0
    for key, value in data_overrides.items():
        config.data[key] = value
    return config


LATENT_CHANNELS = 4


def latent_config():
    """tiny_config with the pooling autoencoder and several train shards."""
    config = tiny_config()
    config.vae.name = "pooling"
    config.latents.records_per_shard = 5  # several train shards
    return config


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """(root, config, autoencoder, manifest): tiny synthetic segments in root/segments, their
    latents in root/latents; built once for every test that reads them (none writes there)."""
    root = tmp_path_factory.mktemp("cache")
    config = latent_config()
    build.build("synthetic", root / "raw", root / "segments", config)
    autoencoder = precompute.pooling_autoencoder(36, LATENT_CHANNELS)
    manifest = precompute.precompute(root / "segments", autoencoder, root / "latents", config)
    return root, config, autoencoder, manifest


def random_onehot_kl(path: Path, in_channels: int, levels: int = 4) -> Path:
    """A onehot-kl weights file at `path` of a tiny network (widths 8, `levels` levels, 4 latent
    channels) with random weights, made without compiling jax's initialisers (slow on a CPU)."""
    import numpy as np
    from flax import nnx

    from hotdance_jax.vae.kl import AutoencoderKL, KLConfig, save_onehot_kl

    arch = KLConfig(in_channels=in_channels, out_channels=2 * in_channels,
                    block_out_channels=(8,) * levels, layers_per_block=1, latent_channels=4,
                    norm_num_groups=4, mid_block_add_attention=False)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: AutoencoderKL(arch, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda x: rng.normal(0, 0.2, x.shape).astype(x.dtype), state)
    save_onehot_kl(path, nnx.merge(graphdef, state), arch)
    return path
