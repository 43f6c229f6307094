"""Checks that need 8 CPU devices, run by tests/test_sharding.py in a subprocess:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.sharded_checks CACHE

CACHE is a latent cache root as tests/test_latents.py's fixture makes it. Prints one JSON line of
measurements; the test asserts on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

from data_pipeline import loader
from hotdance_jax import parallel
from tests.conftest import latent_config
from tests.test_train import make_trainer, train_config


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def one_step(trainer, batch) -> tuple[float, list[np.ndarray]]:
    """(loss, parameter updates) of one step on a numpy batch."""
    before = leaves(trainer.state["model"])
    metrics = trainer.step(parallel.global_batch(batch, trainer.mesh))
    after = leaves(trainer.state["model"])
    return float(metrics["loss"]), [a - b for a, b in zip(after, before, strict=True)]


def main(cache_root: str) -> None:
    config = train_config((Path(cache_root), latent_config()), train__batch_size=8,
                          train__warmup_steps=0)  # a first step with a nonzero learning rate
    cache = Path(cache_root) / "latents"
    batch = next(iter(loader.train_dataset(cache, config, 8)))
    single = make_trainer(config, cache, (1, 1, 1), jax.devices()[:1])
    sharded = make_trainer(config, cache, (1, 4, 2))
    loss_single, updates_single = one_step(single, batch)
    loss_sharded, updates_sharded = one_step(sharded, batch)
    params = jax.tree.leaves(sharded.state["model"])
    print(json.dumps({
        "devices": jax.device_count(),
        "loss_single": loss_single,
        "loss_sharded": loss_sharded,
        "update_max_error": max(float(np.abs(a - b).max())
                                for a, b in zip(updates_single, updates_sharded, strict=True)),
        "update_max": max(float(np.abs(a).max()) for a in updates_single),
        "flops_per_device_single": single.flops_per_step,
        "flops_per_device_sharded": sharded.flops_per_step,
        "param_bytes_total": sum(x.nbytes for x in params),
        "param_bytes_per_device": sum(x.addressable_shards[0].data.nbytes for x in params),
        "optimizer_bytes_total": sum(x.nbytes for x in jax.tree.leaves(sharded.state["optimizer"])),
        "optimizer_bytes_per_device": sum(x.addressable_shards[0].data.nbytes
                                          for x in jax.tree.leaves(sharded.state["optimizer"])),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
