"""AIST++2D at the paper's shapes on a TPU v5p slice (v5p-64: 32 chips, 95 GB HBM each).

From a machine with gcloud, one command creates the slice, ships the code and trains on every
worker, recreating the slice and resuming when it is preempted (launch/README.md):

  launch/train_tpu.sh --name hotdance-v5p --zone ZONE --accelerator v5p-64 --spot \\
      --config configs/pod_tpu_v5p.py --workdir gs://BUCKET/runs/aistpp2d_v5p \\
      --latents gs://BUCKET/aistpp2d_latents

which runs, on every worker, python -m hotdance_jax.train --config configs/pod_tpu_v5p.py
--workdir gs://BUCKET/runs/aistpp2d_v5p --multihost --latents LOCAL_COPY.

Mesh (1, -1, 1) (data, fsdp, tensor): fsdp over all 32 chips, so the 130 M-parameter DiT's
weights, gradients, AdamW moments and EMA are split 32 ways. Global batch 256: 8 examples per
device. bfloat16 compute with float32 master weights (config.model.dtype "auto"). remat "none":
at 8 examples per chip the forward pass keeps 14.2 GiB for the backward pass and the state
(parameters, AdamW, EMA) takes 0.07 GiB per chip (python bench/pod_memory.py), far below
95 GB, so nothing is recomputed.

Not run here: this machine has no accelerator.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "aistpp2d")
    config.train.mesh = (1, -1, 1)
    config.train.batch_size = 256
    config.train.remat = "none"
    config.latents.workers = 8
    return config
