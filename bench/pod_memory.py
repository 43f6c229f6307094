"""Memory per device that each pod config's training needs, without allocating it.

  python bench/pod_memory.py [--pods configs/pod_tpu_v5p.py:32 configs/pod_tpu_v5e.py:16
      configs/pod_gpu_8xh100.py:8] [--remat none full dots_no_batch dots]

For each CONFIG:DEVICES (the devices of the slice: v5p-64 has 32 chips, v5e-16 16, one 8xH100
node 8), on that many fake CPU devices, with bfloat16 compute as on the accelerators:

- params, AdamW, EMA: the bytes one device holds of the train state of hotdance_jax/train.py
  (Trainer with allocate=False: jax.eval_shape of the DiT, AdamW and EMA, placed by the config's
  mesh and logical rules: exactly what the run holds). Gradients: one more copy of the sharded
  parameters.
- activations: what the forward pass keeps for the backward pass at the per-device batch, under
  each remat policy: the residuals of the loss's jaxpr (jax.ad_checkpoint's saved_residuals, the
  list print_saved_residuals prints), less the parameters and the batch. It depends on the
  program, not on the backend.
- XLA CPU temp: the temporary buffers of the whole train step compiled for the config's mesh,
  global batch and remat (`compiled.memory_analysis()`), by XLA's CPU compiler, the only one
  here. It shows no saving from remat: the CPU compiler does not defer the recomputation to the
  backward pass as the TPU and GPU compilers' memory-aware schedulers do; read it as what the
  step needs without remat.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax._src.ad_checkpoint import saved_residuals
from train_step import REPO, random_batch

from hotdance_jax import dit_run, parallel, train
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.models import DiT

GIB = 2**30
PODS = ("configs/pod_tpu_v5p.py:32", "configs/pod_tpu_v5e.py:16", "configs/pod_gpu_8xh100.py:8")


def pod_config(path: str) -> ml_collections.ConfigDict:
    """The config at `path` with bfloat16 compute, what "auto" gives on TPU and GPU."""
    config = sibling_config(REPO / path, Path(path).stem)
    config.model.dtype = "bfloat16"
    return config


def bytes_per_device(tree) -> int:
    """Bytes of the first device's shard of every jax.ShapeDtypeStruct (with sharding) in tree."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
               for x in jax.tree.leaves(tree))


def abstract_batch(config: ml_collections.ConfigDict, batch_size: int, sharding=None) -> dict:
    """jax.ShapeDtypeStructs of a loader batch of `batch_size` examples."""
    return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding)
            for k, v in random_batch(config, batch_size).items()}


def activations(config: ml_collections.ConfigDict, remat: str, batch_size: int) -> float:
    """GiB the forward pass keeps for the backward pass under `remat`, at `batch_size` examples."""
    model_config = dataclasses.replace(dit_run.dit_config(config, dit_run.cache_shapes(config)),
                                       remat=remat)
    settings = dit_run.StepSettings.of(config, model_config)
    graphdef, params = nnx.split(nnx.eval_shape(lambda: DiT(model_config, rngs=nnx.Rngs(0))))
    keys = jax.random.split(jax.random.key(0), batch_size)
    keep = jnp.zeros(batch_size, bool)

    def loss(params, batch):
        return train.velocity_loss(nnx.merge(graphdef, params), batch, keep, keys, settings)

    residuals = saved_residuals(loss, params, abstract_batch(config, batch_size))
    return sum(aval.size * aval.dtype.itemsize for aval, source in residuals
               if not source.startswith("from the argument")) / GIB


def measure(path: str, devices: int, remats: list[str]) -> list[dict]:
    """One row per remat policy: GiB per device of the state, gradients and activations; the
    XLA CPU temp on the row of the config's own policy."""
    config = pod_config(path)
    mesh = parallel.make_mesh(config.train.mesh, jax.devices()[:devices],
                              dcn=config.train.dcn_mesh)
    model_config = dit_run.dit_config(config, dit_run.cache_shapes(config))
    trainer = train.dit_trainer(config, model_config, mesh, allocate=False)
    compiled = trainer.compile(abstract_batch(config, config.train.batch_size,
                                              parallel.batch_sharding(mesh)))
    per_device = config.train.batch_size // parallel.batch_divisor(mesh)
    state = {part: bytes_per_device(trainer.abstract[part]) / GIB
             for part in ("model", "optimizer", "ema")}
    rows = []
    for remat in remats:
        saved = activations(config, remat, per_device)
        rows.append({
            "config": Path(path).stem, "devices": devices, "remat": remat,
            "mesh": "x".join(str(n) for n in mesh.devices.shape), "batch": per_device,
            **state, "gradients": state["model"], "activations": saved,
            "total": sum(state.values()) + state["model"] + saved,
            "cpu_temp": (compiled.memory_analysis().temp_size_in_bytes / GIB
                         if remat == config.train.remat else None),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", nargs="+", default=list(PODS),
                        help="CONFIG:DEVICES, the config and the devices of its slice.")
    parser.add_argument("--remat", nargs="+", default=["none", "full", "dots_no_batch", "dots"],
                        help="config.train.remat policies to compare.")
    args = parser.parse_args()
    pods = [(path, int(n)) for path, n in (pod.rsplit(":", 1) for pod in args.pods)]
    jax.config.update("jax_num_cpu_devices", max(n for _, n in pods))
    print("GiB per device, bfloat16 compute; * marks the config's own remat policy")
    print("| config | devices | mesh (data x fsdp x tensor) | batch/device | remat | params "
          "| AdamW | EMA | gradients | activations | sum | XLA CPU temp |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path, devices in pods:
        for r in measure(path, devices, args.remat):
            own = r["cpu_temp"] is not None
            temp = f"{r['cpu_temp']:.2f}" if own else ""
            print(f"| {r['config']} | {r['devices']} | {r['mesh']} | {r['batch']} | "
                  f"{r['remat']}{' *' if own else ''} | {r['model']:.3f} | {r['optimizer']:.3f} "
                  f"| {r['ema']:.3f} | {r['gradients']:.3f} | {r['activations']:.2f} | "
                  f"{r['total']:.2f} | {temp} |", flush=True)

if __name__ == "__main__":
    main()
