"""AIST++2D at the paper's shapes: the calibrated variant (every dancer resized to one standard
body, one fixed virtual 1920 x 1080 camera), B = 512, T = 256, the base DiT.

  python -m data_pipeline.build --source aistpp --root /data/aistpp --segments data/aistpp2d \\
      --config configs/aistpp2d.py
  python -m hotdance_jax.vae.train --config configs/aistpp2d.py --workdir runs/vae_aistpp2d \\
      --segments data/aistpp2d
  python -m data_pipeline.precompute --segments data/aistpp2d --vae onehot-kl \\
      --vae-weights runs/vae_aistpp2d/onehot_kl.msgpack --latents data/aistpp2d_latents \\
      --config configs/aistpp2d.py
  python -m hotdance_jax.train --config configs/aistpp2d.py --workdir runs/aistpp2d \\
      --latents data/aistpp2d_latents

AIST++ is 5.2 h of dance (1408 sequences); its keypoints and music are not on this machine, so
this config has not been run here. Use a pod config (configs/pod_*.py) to train it at scale.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "base")
    config.data.source = "aistpp"
    config.data.aistpp.variant = "calibrated"
    return config
