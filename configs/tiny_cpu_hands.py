"""The hand-aware variant on the synthetic hands: configs/tiny_cpu.py with OpenPose's two hands.

  python -m hotdance_jax.demo --config configs/tiny_cpu_hands.py --out demo_hands

or stage by stage as in configs/tiny_cpu.py with --config configs/tiny_cpu_hands.py. The build
writes dancers whose fingers close into fists on the beats and wave (data_pipeline/sources/
synthetic.py); every stage reads the skeleton (60 keypoints, 120 one-hot channels) from here.

B = 128: a synthetic hand is 15 to 35 pixels of the 512-pixel frame, 4 to 9 bins at 128 (2 to 4
at 64); the one-hot codec alone keeps the hand keypoints within 0.037 hand lengths on average at
128 against 0.072 at 64 (docs/hands.md).

Reaches (2026-12-05, this 2-core CPU, docs/hands.md): the autoencoder's 1200 steps (about 32 min
alone) keep the hands within 0.15 hand lengths on average (body 1.4 bins): readable fingers in its
reconstructions; the DiT's 8000 steps at lr 1e-3 (about 24 min alone) dance whole bodies on the
beat of the 4 test songs (BAS 0.566 against 0.388 with another song's), FID_g 101 (real 23.5),
hand jitter 73 against the real 14 hand lengths/s^2: fingers in about half the frames looked at.
The whole demo: about an hour (the sum of its stages, not timed as one run).
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "tiny_cpu")
    config.pose.skeleton = "openpose18_hands"
    config.pose.bins = 128
    # Twice the demo's bins at the demo's cost: 2 x 1 patches (16 x 8 latents -> 64 pose tokens,
    # as tiny_cpu's 8 x 8 with 1 x 1 patches).
    config.model.patch = (2, 1)
    config.vae.latent_channels = 32  # 60 keypoints: 8 channels lose the fingers (docs/hands.md)
    config.vae.train.steps = 1200  # hand error 0.33 -> 0.15 hand lengths against 400 steps
    config.vae.train.crop_frames = 64  # what those steps were measured with (tiny_cpu has 32)
    config.vae.train.batch_size = 16  # likewise (tiny_cpu has 12)
    config.train.steps = 8000  # FID_g 110 -> 101, BAS 0.47 -> 0.57 against 3000 at lr 5e-4
    config.latents.reference_frames = (0, 8, 16, 24, 32, 64)  # the six those steps were measured on
    return config
