"""AIST++2D at the paper's shapes on a TPU v5e slice (v5e-16: 16 chips, 16 GB HBM each).

From a machine with gcloud, one command creates the slice, ships the code and trains on every
worker, recreating the slice and resuming when it is preempted (launch/README.md):

  launch/train_tpu.sh --name hotdance-v5e --zone ZONE --accelerator v5e-16 --spot \\
      --config configs/pod_tpu_v5e.py --workdir gs://BUCKET/runs/aistpp2d_v5e \\
      --latents gs://BUCKET/aistpp2d_latents

Mesh (1, -1, 1) (data, fsdp, tensor): fsdp over all 16 chips (weights, gradients, AdamW moments
and EMA split 16 ways). Global batch 128: 8 examples per device. bfloat16 compute with float32
master weights (config.model.dtype "auto"). remat "dots_no_batch": without remat the forward
pass keeps 14.2 GiB per chip for the backward pass at 8 examples, too close to 16 GB; keeping
only the matmuls with weights and recomputing attention brings that to 1.7 GiB (python
bench/pod_memory.py).

Not run here: this machine has no accelerator.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "aistpp2d")
    config.train.mesh = (1, -1, 1)
    config.train.batch_size = 128
    config.train.remat = "dots_no_batch"
    config.latents.workers = 8
    return config
