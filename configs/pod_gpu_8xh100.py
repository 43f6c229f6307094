"""AIST++2D at the paper's shapes on nodes of 8 NVIDIA H100 (80 GB each).

On a SLURM cluster (one process per GPU; SIGTERM before the time limit saves, and the job
requeues itself and resumes), or on a list of hosts over ssh (launch/README.md):

  launch/train_gpu_slurm.sh --nodes 1 --config configs/pod_gpu_8xh100.py \\
      --workdir /shared/runs/aistpp2d_gpu --latents /shared/data/aistpp2d_latents
  launch/train_ssh.sh --hosts gpu-a,gpu-b --config configs/pod_gpu_8xh100.py \\
      --workdir /shared/runs/aistpp2d_gpu --latents /shared/data/aistpp2d_latents

Each process runs python -m hotdance_jax.train --config configs/pod_gpu_8xh100.py --workdir
DIR --latents DIR (the coordinator from SLURM's environment, or explicit flags).

Mesh (-1, 8, 1) (data, fsdp, tensor): fsdp over the 8 GPUs of a node (NVLink), data parallel
across nodes. Global batch 256: 32 examples per device on one node (fewer on more nodes).
bfloat16 compute with float32 master weights (config.model.dtype "auto"). remat
"dots_no_batch": without remat the forward pass keeps 56 GiB per GPU for the backward pass at 32
examples (and XLA's CPU compilation of the whole step needs 80 GiB of temporaries), over what an
H100 has beside the state; recomputing attention brings it to 6.9 GiB (python
bench/pod_memory.py).

Not run here on 8 GPUs. One H200 (2026-11-26, python bench/train_step.py, base shapes, batch 32,
no remat) runs the step in 0.061 s with cuDNN flash attention (config.model.attention_implementation
"auto"; 35.6% of the bf16 peak) against 0.118 s with XLA attention. The 56 GiB above is XLA's
estimate with XLA attention, whose (heads x 1056 x 1056) score matrices cuDNN does not keep, so
remat may be unneeded with cuDNN; its memory on a GPU was not measured.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "aistpp2d")
    config.train.mesh = (-1, 8, 1)
    config.train.batch_size = 256
    config.train.remat = "dots_no_batch"
    config.latents.workers = 8
    return config
