"""AIST++2D at the paper's shapes on a node of 8 NVIDIA H100 (80 GiB each), or several such nodes.

Run the same command on every host of the slice (one process per host; jax.distributed finds the
others from the environment), with the data and the run folder on shared storage:

  python -m hotdance_jax.train --config configs/pod_gpu_8xh100.py \\
      --workdir /mnt/shared/runs/gpu_8xh100 \\
      --config.train.latents=/mnt/data/aistpp2d_latents

Mesh (-1, 8, 1) (data, fsdp, tensor): fsdp over the 8 GPUs of a node (NVLink), data parallel across
nodes. Global batch 256, bfloat16 compute with float32 master weights (config.model.dtype = "auto"
on accelerators).

Not run here: this machine has no accelerator.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "aistpp2d")
    config.train.mesh = (-1, 8, 1)
    config.train.batch_size = 256
    config.latents.workers = 8
    return config
