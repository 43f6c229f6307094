"""Checks of a two-process run, run by tests/test_multihost.py in a subprocess with 8 CPU devices:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.multihost_checks \
      CACHE PAIR_WORKDIR SINGLE_WORKDIR

Trains SINGLE_WORKDIR in this one process with the config the pair ran (tests/test_multihost.py
OVERRIDES, without the pair's process-granule DCN mesh), restores both runs' latest checkpoints
onto a (1, 4, 2) mesh, then tries to resume the pair's run here. Prints one JSON line of
measurements; the test asserts on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from data_pipeline import latents
from hotdance_jax import dit_run, parallel, train, training
from hotdance_jax.errors import InputError
from tests.test_multihost import pod_config


def restore(workdir: Path, trainer: training.Trainer) -> tuple[int, dict]:
    """(step, state) of the latest checkpoint of `workdir`, onto `trainer`'s mesh and shardings."""
    with training.checkpoint_manager(workdir, keep=3) as manager:
        step = manager.latest_step()
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(trainer.abstract)))
    return step, restored.state


def max_difference(a, b) -> float:
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def main(cache: str, pair: str, single: str) -> None:
    config = pod_config(dcn_mesh=(1, 1, 1))
    val_loss = train.train(config, Path(cache), Path(single))["val_loss"]
    mesh = parallel.make_mesh((1, 4, 2))
    model_config = dit_run.dit_config(config, latents.read_manifest(cache))
    trainer = train.dit_trainer(config, model_config, mesh)
    pair_step, pair_state = restore(Path(pair), trainer)
    single_step, single_state = restore(Path(single), trainer)
    placed = all(x.sharding == s for x, s in zip(jax.tree.leaves(pair_state),
                                                 jax.tree.leaves(trainer.shardings), strict=True))
    refusal = ""
    longer = pod_config(dcn_mesh=(1, 1, 1), steps=config.train.steps + 2)
    try:
        train.train(longer, Path(cache), Path(pair))
    except InputError as error:
        refusal = str(error)
    print(json.dumps({
        "steps": [pair_step, single_step],
        "single_val_loss": val_loss,
        "pair_vs_single": max_difference(pair_state["model"], single_state["model"]),
        "pair_vs_single_ema": max_difference(pair_state["ema"], single_state["ema"]),
        "update": max_difference(single_state["model"], trainer.state["model"]),
        "restored_on_new_mesh": placed,
        "resume_refusal": refusal,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
