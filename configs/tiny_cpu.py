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

Reaches (2026-11-26, this 2-core CPU, `make demo`): 96 songs of 20 s (88 to train on; with 24
the DiT learnt them by heart: the music lowered its loss on training songs by 22% and raised it
on held-out ones by 5 to 9%). The VAE (32-64-64-64, 8 latent channels) at 400 steps: validation mean
error 1.14 bins, p99 11.7 bins, visibility 100%. The DiT (1.4 M parameters, 0.13 to 0.17 s/step
at batch 32, aligned music on): validation loss (EMA) 0.207 at 250, 0.145 at 500, 0.124 at 750,
0.120 at 1000, val_music_gain 0.0016; its dances to the val and test songs score BAS 0.379 with
their own music and 0.300 with another song's (guidance 2; 0.442 and 0.294 at guidance 4; the
real dances 0.917 and 0.242), and 0.272 on 25 s of librosa's 'choice'. The whole demo: 10 to 11
minutes. With --config.train.steps=3000 (validation loss 0.0975): 0.498 own against 0.274 other
at guidance 2, 0.621 against 0.270 at 4, and 0.181 on 'choice'.
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
    config.vae.arch.block_out_channels = (32, 64, 64, 64)
    config.vae.arch.layers_per_block = 1
    config.vae.arch.norm_num_groups = 16
    config.vae.train.batch_size = 16
    config.vae.train.crop_frames = 64
    config.vae.train.steps = 400
    config.vae.train.learning_rate = 1e-3
    config.vae.train.warmup_steps = 50
    config.vae.train.log_every = 25
    config.vae.train.eval_every = 200
    config.vae.train.checkpoint_every = 200

    config.model.patch = (1, 1)  # 8 x 8 latents -> 64 pose tokens and 8 music tokens
    config.model.aligned_music = True  # dances to the beat sooner (module docstring)
    config.model.width = 128
    config.model.depth = 4
    config.model.heads = 4
    config.train.batch_size = 32
    config.train.steps = 1000
    config.train.learning_rate = 5e-4
    config.train.warmup_steps = 100
    config.train.ema_decay = 0.999
    config.train.log_every = 50
    config.train.eval_every = 250
    config.train.eval_batches = 4
    config.train.checkpoint_every = 250
    return config
