"""Every config file: loads, documents the command that runs it, and builds its DiT."""

from __future__ import annotations

import jax
import pytest
from flax import nnx

from hotdance_jax import dit_run, parallel
from hotdance_jax.config_utils import apply_overrides, sibling_config
from hotdance_jax.models import DiT
from tests.test_build import REPO

CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_documents_its_command_and_builds(name):
    config = sibling_config(REPO / "configs" / f"{name}.py", name)
    doc = (REPO / "configs" / f"{name}.py").read_text().split('"""')[1]
    assert f"configs/{name}.py" in doc  # the command that runs it
    assert "Reaches" in doc or "Not run here" in doc or "not been run here" in doc
    model = dit_run.dit_config(config, dit_run.cache_shapes(config))
    abstract = nnx.eval_shape(lambda: DiT(model, rngs=nnx.Rngs(0)))
    assert sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param))) > 0
    batch, devices = config.train.batch_size, 8
    shape = parallel.mesh_shape(config.train.mesh, devices)
    assert batch % (shape[0] * shape[1]) == 0, "the batch must split over data x fsdp"


def test_base_has_the_paper_shapes():
    config = sibling_config(REPO / "configs" / "base.py", "base")
    model = dit_run.dit_config(config, dit_run.cache_shapes(config))
    assert (config.pose.bins, config.pose.segment_frames, config.vae.stride) == (512, 256, 8)
    assert (model.latent_bins, model.latent_frames) == (64, 32)


def test_attention_implementation_is_cudnn_only_where_it_applies(monkeypatch):
    assert dit_run.attention_implementation("auto", "float32", 64) == "xla"  # this CPU
    assert dit_run.attention_implementation("auto", "bfloat16", 64) == "xla"
    assert dit_run.attention_implementation("cudnn", "float32", 64) == "cudnn"  # asked for
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert dit_run.attention_implementation("auto", "bfloat16", 64) == "cudnn"
    assert dit_run.attention_implementation("auto", "float32", 64) == "xla"
    assert dit_run.attention_implementation("auto", "bfloat16", 256) == "xla"
    assert dit_run.attention_implementation("xla", "bfloat16", 64) == "xla"
    config = sibling_config(REPO / "configs" / "base.py", "base")
    config.model.dtype = "bfloat16"
    model = dit_run.dit_config(config, dit_run.cache_shapes(config))
    assert model.attention_implementation == "cudnn"


ABLATIONS = {
    "dwm_raw": {"vae.name": "raw-coords", "model.patch": (1, 1)},
    "dwm_noref": {"model.reference": False},
    "dwm_sequential": {"model.temporal_index": "sequential"},
}


def flat(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    items = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            items.update(flat(value, f"{prefix}{key}."))
        else:
            items[prefix + key] = value
    return items


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_configs_change_only_their_ablation(name):
    dwm = flat(sibling_config(REPO / "configs" / "dwm.py", "dwm").to_dict())
    config = sibling_config(REPO / "configs" / f"{name}.py", name)
    ablation = flat(config.to_dict())
    assert ablation.keys() == dwm.keys()
    assert {k: v for k, v in ablation.items() if v != dwm[k]} == ABLATIONS[name]
    model = dit_run.dit_config(config, dit_run.cache_shapes(config))
    expected = (1, 32, 432) if name == "dwm_raw" else (32, 32, 16)
    assert (model.latent_bins, model.latent_frames, model.latent_channels) == expected


# Devices of the slice each pod config is written for (bench/pod_memory.py measures them there).
POD_SLICES = {"pod_tpu_v5p": 32, "pod_tpu_v5e": 16, "pod_gpu_8xh100": 8}


@pytest.mark.parametrize(("name", "devices"), POD_SLICES.items())
def test_pod_configs_span_their_slice(name, devices):
    """The mesh covers every chip of the slice, the global batch splits evenly over its data x
    fsdp devices, and the docstring states the per-device batch and remat policy it chose."""
    config = sibling_config(REPO / "configs" / f"{name}.py", name)
    data, fsdp, tensor = parallel.mesh_shape(config.train.mesh, devices)
    assert data * fsdp * tensor == devices
    per_device, remainder = divmod(config.train.batch_size, data * fsdp)
    assert remainder == 0
    assert per_device >= 1
    doc = " ".join((REPO / "configs" / f"{name}.py").read_text().split('"""')[1].split())
    assert f"{per_device} examples per device" in doc
    assert f'remat "{config.train.remat}"' in doc
    assert tuple(config.train.dcn_mesh) == (1, 1, 1)  # one slice; train_tpu.sh --slices sets it


def test_overrides_take_tuples_and_strings():
    config = sibling_config(str(REPO / "configs" / "base.py"), "tiny_cpu")
    apply_overrides(config, "vae.arch.block_out_channels=(16,32,32,32),vae.arch.norm_num_groups=8,"
                            "model.attention_implementation=xla")
    assert config.vae.arch.block_out_channels == (16, 32, 32, 32)
    assert config.vae.arch.norm_num_groups == 8
    assert config.model.attention_implementation == "xla"
