"""The raw-coordinate ablation on Dance with Melody: the dwm DiT on keypoint coordinates.

No image autoencoder: the raw-coords latent of a 256-frame segment is 1 x 32 x 432 (per frame the
36 codec-decoded coordinates as 2u - 1 and the 18 visibilities, 8 frames per latent column;
hotdance_jax/vae/raw_coords.py), cut into 1 x 1 patches: 32 pose tokens beside the 32 music
tokens. Everything else is configs/dwm.py. The segment build is dwm's; there is no VAE to train:

  python -m data_pipeline.precompute --segments data/dwm --vae raw-coords \\
      --out data/dwm_raw_latents --config configs/dwm_raw.py
  python -m hotdance_jax.train --config configs/dwm_raw.py --workdir runs/dwm_raw \\
      --config.train.latents=data/dwm_raw_latents

Not run here yet.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "dwm")
    config.vae.name = "raw-coords"
    config.model.patch = (1, 1)
    return config
