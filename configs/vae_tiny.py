"""onehot-kl for tiny_cpu shapes (B = 64 bins), on synthetic segments, in minutes on a 2-core CPU.

  python -m data_pipeline.build --source synthetic --root data/synthetic_raw \\
      --out data/synthetic --config configs/tiny_cpu.py
  python -m hotdance_jax.vae.train --config configs/vae_tiny.py --workdir runs/vae_tiny \\
      --config.vae.train.segments=data/synthetic

Reaches: not run to the end yet (the tests train a smaller copy for a few steps).
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "tiny_cpu")
    config.vae.latent_channels = 8
    config.vae.arch.block_out_channels = (32, 64, 64, 64)
    config.vae.arch.layers_per_block = 1
    config.vae.arch.norm_num_groups = 16
    config.vae.train.batch_size = 16
    config.vae.train.crop_frames = 64
    config.vae.train.steps = 1500
    config.vae.train.learning_rate = 1e-3
    config.vae.train.warmup_steps = 100
    config.vae.train.log_every = 25
    config.vae.train.eval_every = 250
    config.vae.train.checkpoint_every = 250
    return config
