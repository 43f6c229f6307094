"""AIST++2D at the paper's shapes on a TPU v5e slice (e.g. v5e-16: 16 chips, 16 GiB HBM each).

Run the same command on every host of the slice (one process per host; jax.distributed finds the
others from the environment), with the data and the run folder on shared storage:

  python -m hotdance_jax.train --config configs/pod_tpu_v5e.py \\
      --workdir /mnt/shared/runs/tpu_v5e \\
      --config.train.latents=/mnt/data/aistpp2d_latents

Mesh (1, -1, 1) (data, fsdp, tensor): fsdp over every chip (16 GiB per chip: weights, gradients and
AdamW moments are split 16 ways). Global batch 128, bfloat16 compute with float32 master weights
(config.model.dtype = "auto" on accelerators).

Not run here: this machine has no accelerator.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "aistpp2d")
    config.train.mesh = (1, -1, 1)
    config.train.batch_size = 128
    config.latents.workers = 8
    return config
