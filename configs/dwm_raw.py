"""The raw-coordinate ablation on Dance with Melody: the dwm DiT on keypoint coordinates.

No image autoencoder: the raw-coords latent of a 256-frame segment is 1 x 32 x 432 (per frame the
36 codec-decoded coordinates as 2u - 1 and the 18 visibilities, 8 frames per latent column;
hotdance_jax/vae/raw_coords.py), cut into 1 x 1 patches: 32 pose tokens beside the 32 music
tokens. Everything else is configs/dwm.py. The segment build is dwm's; there is no VAE to train:

  python -m data_pipeline.precompute --segments data/dwm --vae raw-coords \\
      --latents data/dwm_raw_latents --config configs/dwm_raw.py
  python -m hotdance_jax.train --config configs/dwm_raw.py --workdir runs/dwm_raw \\
      --latents data/dwm_raw_latents

Reaches (2026-11-25, this 2-core CPU shared with other jobs): the precompute takes 137 s (933
records). 7.9 M parameters, 0.41 s/step at batch 16 (dwm: 2.10 s/step in the same
bench/train_step.py run). Stopped at 1000 steps (--config.train.steps=1000, 444 s): validation
loss (EMA, on its own normalised coordinates, not comparable with dwm's) 0.635, 0.557, 0.538,
0.530 at steps 250 to 1000. Its dances (DanceGenerator.generate on the first 60 s of the 4 test
songs, 2 samples each, 30 Euler steps, guidance 2; python -m hotdance_jax.evaluate --reference
data/dwm --split test) jitter: 746 body lengths/s^2 against 213 for the dwm run's step-1426
dances scored the same way and 6.3 for the real dances; FID_g 750 against 67; BAS 0.580 against
0.541 and 0.222. Its denoised coordinates are not yet smooth in time at this length of training
(at flow time 0.5 its clean-latent estimate moves a joint 125 px per frame, the real dances 3).
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "dwm")
    config.vae.name = "raw-coords"
    config.model.patch = (1, 1)
    return config
