"""Dance with Melody (../shared/data/dwm): real ballroom dances, B = 256 bins, 256-frame segments.

  python -m data_pipeline.build --source dwm --root ../shared/data/dwm --out data/dwm \\
      --config configs/dwm.py

Reaches: 18 performances -> 538 segments (395 train, 23 val, 120 test) at 30 fps.
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "base")
    config.data.source = "dwm"
    config.pose.bins = 256
    return config
