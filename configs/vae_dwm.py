"""onehot-kl for the dwm config (B = 256 bins, stride 8, 16 latent channels), on a 2-core CPU.

  python -m data_pipeline.build --source dwm --root ../shared/data/dwm --out data/dwm \\
      --config configs/dwm.py
  python -m hotdance_jax.vae.train --config configs/vae_dwm.py --workdir runs/vae_dwm \\
      --config.vae.train.segments=data/dwm

Reaches: see the README's VAE table (bench/vae_quality.py).
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "dwm")
    config.vae.arch.block_out_channels = (16, 32, 64, 64)
    config.vae.arch.layers_per_block = 1
    config.vae.arch.norm_num_groups = 8
    config.vae.train.batch_size = 8
    config.vae.train.crop_frames = 64
    config.vae.train.steps = 1200
    config.vae.train.learning_rate = 1e-3
    config.vae.train.warmup_steps = 100
    config.vae.train.log_every = 20
    config.vae.train.eval_every = 200
    config.vae.train.checkpoint_every = 200
    return config
