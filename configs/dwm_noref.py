"""The no-reference ablation on Dance with Melody: the dwm DiT without reference latent or mask.

Its pose tokens see only the noisy latent, so consecutive segments of a long song join by the
16-frame cross-fade alone (hotdance_jax/sample.py). It trains on dwm's latent cache (the same
settings; the loader's reference latents go unused):

  python -m hotdance_jax.train --config configs/dwm_noref.py --workdir runs/dwm_noref \\
      --latents data/dwm_latents

Not run here yet.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "dwm")
    config.model.reference = False
    return config
