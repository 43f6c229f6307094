"""Small shapes for a 2-core CPU: B = 64 bins, 64-frame segments, synthetic data.

The README's `make demo` runs the whole pipeline with it (python -m hotdance_jax.demo --config
configs/tiny_cpu.py --out demo_out); stage by stage:

  python -m data_pipeline.build --source synthetic --root data/synthetic_raw \\
      --segments data/synthetic --config configs/tiny_cpu.py
  python -m hotdance_jax.vae.train --config configs/tiny_cpu.py --workdir runs/vae_tiny \\
      --segments data/synthetic
  python -m data_pipeline.precompute --segments data/synthetic --vae onehot-kl \\
      --vae-weights runs/vae_tiny/onehot_kl.msgpack --latents data/synthetic_latents \\
      --config configs/tiny_cpu.py
  python -m hotdance_jax.train --config configs/tiny_cpu.py --workdir runs/tiny \\
      --latents data/synthetic_latents

Reaches (docs/speed_memory.md, 2026-12-06, this 2-core CPU): 96 songs of 20 s (88 to train on;
with 24 the DiT learnt them by heart). The autoencoder (16-32-64-64, 8 latent channels, 400 steps
of 12 crops of 32 frames) to validation mean / p99 error 1.38 / 13.8 bins; the DiT (1.4 M
parameters, 400 steps at lr 1e-3 on the sampler's two reference frames) to validation loss 0.124,
val_music_gain 0.0034. Its dances to the 4 test songs: BAS 0.366 with their own music against
0.314 with another's (the real dances 0.976 and 0.203), FID_k 55 and FID_g 36 (the real dances
against themselves 65 and 23.5). `make demo` in a fresh clone: 4 min 56 s (in a worktree 4 min
33 s, against 5 min 13 s with 16 crops and 500 DiT steps, the same hour).
"""

import ml_collections

from hotdance_jax.config_utils import sibling_config


def get_config() -> ml_collections.ConfigDict:
    config = sibling_config(__file__, "base")
    config.pose.bins = 64
    config.pose.segment_frames = 64
    config.data.segment_stride = 32
    config.data.synthetic.num_songs = 96  # 24 songs: the DiT memorises them (module docstring)
    config.data.synthetic.val_songs = 4
    config.data.synthetic.test_songs = 4
    config.data.synthetic.seconds = 20.0

    config.vae.latent_channels = 8
    # A narrow first level: the full-resolution convolutions were most of the step's FLOPs.
    config.vae.arch.block_out_channels = (16, 32, 64, 64)
    config.vae.arch.layers_per_block = 1
    config.vae.arch.norm_num_groups = 8
    config.vae.train.batch_size = 12  # with 400 DiT steps: the demo in 5 min (speed_memory.md)
    config.vae.train.crop_frames = 32  # half the step, as good (docs/speed_memory.md)
    config.vae.train.steps = 400
    config.vae.train.learning_rate = 1e-3
    config.vae.train.warmup_steps = 50
    config.vae.train.log_every = 25
    config.vae.train.eval_every = 200
    config.vae.train.checkpoint_every = 200

    config.model.patch = (1, 1)  # 8 x 8 latents -> 64 pose tokens and 8 music tokens
    config.model.aligned_music = True  # dances to the beat sooner (docs/beats.md)
    config.model.width = 128
    config.model.depth = 4
    config.model.heads = 4
    config.train.batch_size = 32
    config.latents.reference_frames = (0, 16)  # the sampler's two: a third of the cache's time
    config.train.steps = 400
    config.train.learning_rate = 1e-3
    config.train.warmup_steps = 100
    config.train.ema_decay = 0.999
    config.train.log_every = 50
    config.train.eval_every = 250
    config.train.eval_batches = 4
    config.train.checkpoint_every = 250
    return config
