"""The paper's shapes: OpenPose-18, B = 512 bins, segments of T = 256 frames at 30 fps.

Every other config starts from this one and overrides what it changes. Run with, for example:

  python -m hotdance_jax.train --config configs/base.py --latents data/base_latents \
      --workdir runs/base
  python bench/train_step.py --configs configs/base.py --batch-sizes 4

Reaches: the DiT at these shapes has 130.4 M parameters over 64 x 32 x 16 latents (1024 pose
tokens in 2 x 1 patches and 32 music tokens); bench/train_step.py times its step. Not trained
here: a CPU is far too slow for it (see configs/pod_*.py).
"""

import ml_collections

from hotdance_jax.pose import onehot, smoothing


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.seed = 0

    config.pose = ml_collections.ConfigDict()
    config.pose.skeleton = "openpose18"  # the canonical layout; sources convert into it
    config.pose.bins = 512  # B: bins across the frame per axis (one-hot image height)
    config.pose.fps = 30.0  # every source is resampled to this frame rate
    config.pose.segment_frames = 256  # T: frames per training segment (one-hot image width)
    # > 0: each hand's channels hold its offsets from its wrist, magnified this many times
    # (hotdance_jax/pose/hand_frame.py); 0: hands in the frame's coordinates, as the paper.
    config.pose.hand_zoom = 0.0
    # How decoded images are read: the codec's defaults (hotdance_jax/pose/onehot.py, smoothing.py)
    config.pose.decode_radius = onehot.DEFAULT_DECODE_RADIUS  # soft-argmax: peak bin +- radius
    # a decoded column with less window mass than this is invisible
    config.pose.visibility_threshold = onehot.DEFAULT_VISIBILITY_THRESHOLD
    config.pose.decode_jump_cost = onehot.DEFAULT_JUMP_COST  # nats per bin a path moves per frame
    config.pose.decode_jump_cap = onehot.DEFAULT_JUMP_CAP  # nats, the most one jump costs
    config.pose.decode_free_motion = onehot.DEFAULT_FREE_MOTION  # bins per frame moved at no cost
    config.pose.smooth_window = smoothing.DEFAULT_SMOOTH_WINDOW  # Savitzky-Golay frames (0: off)
    config.pose.smooth_order = smoothing.DEFAULT_SMOOTH_ORDER  # its polynomial degree

    config.audio = ml_collections.ConfigDict()
    config.audio.sample_rate = 22050  # Hz, audio is resampled to it on load
    config.audio.frames_per_token = 8  # pose frames per music token (one latent column)

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # one of: synthetic, dwm, aistpp, wild
    config.data.segment_stride = 64  # frames between the starts of consecutive segments
    # videos per part of a build of the wild source (data_pipeline/build.py): the unit of work of
    # its processes and hosts, of its resume, and of its shard files
    config.data.videos_per_part = 64

    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.num_songs = 64  # performances generated (seeds 0 .. num_songs-1)
    config.data.synthetic.val_songs = 4  # the last songs form the val split ...
    config.data.synthetic.test_songs = 4  # ... and the test split
    config.data.synthetic.seconds = 30.0  # length of each performance
    config.data.synthetic.width = 512  # frame size in pixels
    config.data.synthetic.height = 512

    config.data.dwm = ml_collections.ConfigDict()
    config.data.dwm.width = 1920  # virtual front camera's frame in pixels
    config.data.dwm.height = 1080
    config.data.dwm.camera = "fixed"  # fixed (one camera for the dataset) or follow (pans)
    config.data.dwm.follow_seconds = 1.5  # follow: the camera's smoothing of the hips, +-2 sigma
    config.data.dwm.follow_px_per_cm = 4.6  # follow: the scale at a frame 1080 px high

    config.data.aistpp = ml_collections.ConfigDict()
    config.data.aistpp.variant = "view"  # "view": a camera of keypoints2d; "calibrated": AIST++2D
    config.data.aistpp.view = "c01"  # camera for the "view" variant
    config.data.aistpp.width = 1920  # frame of the "calibrated" variant's fixed camera
    config.data.aistpp.height = 1080

    config.data.wild = ml_collections.ConfigDict()
    config.data.wild.max_gap_frames = 10  # interpolate missing joints over gaps up to this long
    config.data.wild.min_visible_fraction = 0.5  # drop frames/sequences with fewer joints seen
    config.data.wild.shot_change_threshold = 0.25  # pose jump (in body heights) cutting a shot
    config.data.wild.min_fps = 20.0  # videos outside [min_fps, max_fps] are dropped
    config.data.wild.max_fps = 60.0

    config.vae = ml_collections.ConfigDict()
    config.vae.name = "onehot-kl"  # onehot-kl (trained here), taef2, diffusers-kl, raw-coords
    config.vae.weights = ""  # path of the frozen weights file; set by the precompute command
    config.vae.stride = 8  # downsampling along time (raw-coords: B and 8): a column is 8 frames
    config.vae.latent_channels = 16  # onehot-kl only; the other autoencoders fix their own

    # The onehot-kl architecture (diffusers AutoencoderKL layout); stride = 2 ** (levels - 1).
    config.vae.arch = ml_collections.ConfigDict()
    config.vae.arch.block_out_channels = (64, 128, 256, 256)
    config.vae.arch.layers_per_block = 2
    config.vae.arch.norm_num_groups = 32
    config.vae.arch.mid_block_add_attention = True

    # python -m hotdance_jax.vae.train: fitting onehot-kl to one-hot images of segments.
    config.vae.train = ml_collections.ConfigDict()
    config.vae.train.seed = 0
    config.vae.train.batch_size = 16  # global, split over the mesh's data x fsdp devices
    config.vae.train.mesh = (-1, 1, 1)  # (data, fsdp, tensor); the autoencoder is replicated
    config.vae.train.crop_frames = 64  # train on random crops of this many frames
    config.vae.train.flip = 0.5  # probability of mirroring a crop
    config.vae.train.shift = False  # move each crop to a random place in the frame (see dwm.py)
    config.vae.train.steps = 20000
    config.vae.train.learning_rate = 2e-4
    config.vae.train.warmup_steps = 500
    config.vae.train.weight_decay = 0.01
    config.vae.train.grad_clip = 1.0
    config.vae.train.kl_weight = 1e-4  # of the mean KL per latent element
    config.vae.train.visibility_weight = 1.0
    config.vae.train.target_sigma = 0.0  # bins: hot bin blurred by a Gaussian (dwm.py: 2)
    config.vae.train.log_every = 50
    config.vae.train.eval_every = 1000
    config.vae.train.eval_segments = 64  # validation segments decoded per evaluation
    config.vae.train.checkpoint_every = 1000
    config.vae.train.keep_checkpoints = 3

    config.latents = ml_collections.ConfigDict()
    config.latents.flip = True  # also encode mirrored copies of training segments
    config.latents.batch_size = 16  # segments encoded per device batch
    config.latents.records_per_shard = 1024
    # The latents the DiT learns moved by this many Adam steps on the onehot-kl decoder's fit to
    # their poses (vae.onehot_kl.refine_latents, its position target blurred by
    # vae.train.target_sigma); the references stay the encoder's, as the sampler encodes them.
    # 0: the encoder's latents. docs/real_dances.md (session 38).
    config.latents.refine_steps = 0
    # N (pose-aware reference frames) whose reference latents are precomputed per record; the
    # sampler uses 0 (first segment) and 16 (the overlap); see data_pipeline/latents.py.
    config.latents.reference_frames = (0, 8, 16, 24, 32, 64)
    config.latents.p_shape_only = 0.5  # training: P(N = 0); otherwise N uniform over the rest
    # Known frames beyond the paper's prefixes (keyframes, continuation): per record this many
    # random patterns of isolated keyframes and as many of short spans, encoded as more references
    # (pose/reference.py random_known_frames); training draws one with P(p_keyframes) or
    # P(p_spans), else a prefix as above. 0 and 0.0: the paper's prefixes only.
    config.latents.keyframe_patterns = 0
    config.latents.p_keyframes = 0.0
    config.latents.p_spans = 0.0
    config.latents.workers = 2  # loader worker processes (grain mp_prefetch); 0: in-process
    config.latents.prefetch = 2  # batches each worker (or the in-process threads) keeps ready

    # The DiT (hotdance_jax/models/dit.py); latent and music shapes come from the latent cache.
    config.model = ml_collections.ConfigDict()
    config.model.patch = (2, 1)  # latent cells (bins, time) per pose token
    config.model.width = 768
    config.model.depth = 12
    config.model.heads = 12
    config.model.mlp_ratio = 4.0
    config.model.temporal_index = "shared"  # shared or sequential (the paper's ablation)
    config.model.reference = True  # condition on the reference latent and mask; False: ablation
    config.model.aligned_music = False  # also add each moment's music to its pose tokens
    config.model.rope_theta = 10000.0
    config.model.dtype = "auto"  # compute dtype: auto (bfloat16 on GPU/TPU, float32 on CPU),
    #                              float32 or bfloat16; parameters are always float32
    config.model.attention_implementation = "auto"  # jax.nn.dot_product_attention backend: auto
    #   (cuDNN flash attention on a GPU in bfloat16, else XLA), "xla" or "cudnn"

    # python -m hotdance_jax.train: rectified flow on the latent cache.
    config.train = ml_collections.ConfigDict()
    config.train.mesh = (1, -1, 1)  # (data, fsdp, tensor); -1 takes the devices left over
    config.train.dcn_mesh = (1, 1, 1)  # (data, fsdp, tensor) across TPU slices (multi-slice);
    #                                    then `mesh` is the mesh inside one slice
    config.train.batch_size = 64  # global batch, over all devices and processes
    config.train.steps = 200000
    config.train.learning_rate = 1e-4
    config.train.warmup_steps = 1000
    config.train.weight_decay = 0.0
    config.train.adam_b2 = 0.999
    config.train.grad_clip = 1.0
    # Rematerialisation of each DiT block in the backward pass (memory for compute): none, full
    # (save nothing), dots (save every matmul's output), dots_no_batch (save the matmuls with
    # weights, recompute attention's). A train setting: it changes no saved shape.
    config.train.remat = "none"
    config.train.ema_decay = 0.9999  # at step s the EMA uses min(ema_decay, (1 + s) / (10 + s))
    config.train.music_dropout = 0.3  # P(music replaced by the null token): guidance
    config.train.reference_dropout = 0.0  # P(reference latent and mask zeroed) per example
    config.train.t_mean = 0.0  # logit-normal flow time: sigmoid(N(t_mean, t_std^2)) ...
    config.train.t_std = 1.0
    config.train.time_shift = -1.0  # ... shifted by this; -1: flow.resolution_shift(pose tokens)
    config.train.log_every = 50
    config.train.eval_every = 1000  # validation loss of the EMA weights
    config.train.eval_batches = 8  # validation batches (of batch_size) per evaluation
    # Dances of the EMA weights scored every dance_eval_every steps (0: never; single process):
    # BAS, FID_k, FID_g and jitter against the real dances of a split of the build --segments.
    config.train.dance_eval_every = 0
    config.train.dance_eval_split = "val"
    config.train.dance_eval_seconds = 10.0  # of each song danced to
    config.train.dance_eval_sampling_steps = 20
    config.train.checkpoint_every = 1000
    config.train.keep_checkpoints = 3  # the latest ones; the best by validation loss is also kept
    return config
