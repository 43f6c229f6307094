"""The sequential-indexing ablation on Dance with Melody: music tokens' rotary time indices follow
the pose tokens' (T' .. 2T' - 1) instead of sharing them (hotdance_jax/models/dit.py).

It trains on dwm's latent cache:

  python -m hotdance_jax.train --config configs/dwm_sequential.py --workdir runs/dwm_sequential \\
      --latents data/dwm_latents

Not run here yet.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "dwm")
    config.model.temporal_index = "sequential"
    return config
