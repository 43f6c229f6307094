"""onehot-kl for the dwm config (B = 256 bins, stride 8, 16 latent channels), on a 2-core CPU.

  python -m data_pipeline.build --source dwm --root ../shared/data/dwm --out data/dwm \\
      --config configs/dwm.py
  python -m hotdance_jax.vae.train --config configs/vae_dwm.py --workdir runs/vae_dwm \\
      --config.vae.train.segments=data/dwm

Reaches (2026-11-24, this 2-core CPU, stopped at step 800 of 1200, 2.6-5 s/step): validation
mean error 1.58 bins, p99 15.5 bins, visibility accuracy 92.4%; on 16 test segments mean 1.94,
p99 22.9 bins, visibility 91.7% (bench/vae_quality.py). Not yet the bar (mean <= 1, p99 <= 3).
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
