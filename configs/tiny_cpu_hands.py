"""The hand-aware variant on the synthetic hands: configs/tiny_cpu.py with OpenPose's two hands.

  python -m hotdance_jax.demo --config configs/tiny_cpu_hands.py --out demo_hands

or stage by stage as in configs/tiny_cpu.py with --config configs/tiny_cpu_hands.py. The build
writes dancers whose fingers close into fists on the beats and wave (data_pipeline/sources/
synthetic.py); every stage reads the skeleton (60 keypoints, 120 one-hot channels) from here.

tiny_cpu's B = 64 and budgets (400 autoencoder and 400 DiT steps), each hand encoded about its
wrist at 4x the frame's resolution (pose.hand_zoom): a synthetic hand of 15 to 35 of the 512
pixels spans 8 to 18 bins so, and hangs from its arm when decoded.

Reaches (2026-12-06, this 2-core CPU, docs/hands.md): the autoencoder's 400 steps keep the hands'
shapes within 0.28 hand lengths on average (0.61 without the zoom) but not the body (4.5 bins);
the DiT's 400 steps dance the 4 test songs with the hands' jitter 24.1 against the real 13.6 hand
lengths/s^2 (44.6 without the zoom at 2000 steps; 72.9 for the hour-long zoomless config before),
FID_hand 61,909, FID_g 219 (real 23.5), BAS 0.413 against 0.392 with another song's. The demo:
5 min 37 s alone (the body demo's 4 min 36 s the same hour; the configuration before: an hour).
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "tiny_cpu")
    config.pose.skeleton = "openpose18_hands"
    config.pose.hand_zoom = 4.0  # hand jitter 44.6 -> 25.8, FID_k 7929 -> 737 against 0
    config.vae.latent_channels = 32  # 60 keypoints: 8 channels lose the fingers (docs/hands.md)
    return config
