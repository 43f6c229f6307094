"""The DiT of a training run: its config from the run's settings and latent cache, the state a
checkpoint holds, and the flow step's settings; shared by the trainer (train.py) and the sampler
(sample.py), which rebuilds a run's DiT from its folder."""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
from flax import nnx

from hotdance_jax import flow
from hotdance_jax.audio.features import NUM_BASELINE_FEATURES
from hotdance_jax.errors import InputError
from hotdance_jax.models import DiT, DiTConfig
from hotdance_jax.training import OptimizerSettings
from hotdance_jax.vae import RAW_COORDS, image_channels, load_autoencoder

CACHE_INFO_FILE = "latent_cache.json"  # in a run folder: cache_info of its latent cache
MODEL_SETTINGS = ("patch", "width", "depth", "heads", "mlp_ratio", "temporal_index", "reference",
                  "aligned_music", "rope_theta", "dtype", "attention_implementation")


def dit_config(config: ml_collections.ConfigDict, manifest: dict) -> DiTConfig:
    """The DiT of config.model at the latent cache's shapes; InputError if config.model (a run's
    saved config) lacks a setting this version's DiT needs."""
    model = config.model
    missing = [key for key in MODEL_SETTINGS if key not in model]
    if missing:
        raise InputError(f"config.model lacks {', '.join(missing)}: a run saved by an older "
                         "version of hotdance_jax; train it again with this one")
    bins, frames, channels = manifest["latent_shape"]
    dtype = compute_dtype(model["dtype"])
    return DiTConfig(
        latent_bins=bins, latent_frames=frames, latent_channels=channels,
        music_features=manifest["music_features"], frames_per_token=manifest["vae"]["stride"][1],
        patch=tuple(model["patch"]), width=model["width"], depth=model["depth"],
        heads=model["heads"], mlp_ratio=model["mlp_ratio"],
        temporal_index=model["temporal_index"],
        reference=model["reference"], aligned_music=model["aligned_music"],
        rope_theta=model["rope_theta"], dtype=dtype,
        attention_implementation=attention_implementation(
            model["attention_implementation"], dtype, model["width"] // model["heads"]),
    )


def cache_shapes(config: ml_collections.ConfigDict) -> dict:
    """The latent cache fields dit_config reads, as a cache made with `config` holds them: an
    autoencoder of config.vae.stride and config.vae.latent_channels, or
    raw-coords, whose stride (B, 8) and channels follow from the bins and the skeleton."""
    bins, frames = config.pose.bins, config.pose.segment_frames
    if config.vae.name == RAW_COORDS:
        raw = load_autoencoder(RAW_COORDS, "", image_channels(config.pose.skeleton), bins=bins)
        stride, channels = raw.stride, raw.latent_channels
    else:
        stride = (config.vae.stride, config.vae.stride)
        channels = config.vae.latent_channels
    return {"latent_shape": [bins // stride[0], frames // stride[1], channels],
            "music_features": NUM_BASELINE_FEATURES,
            "vae": {"stride": list(stride)}}


def compute_dtype(name: str) -> str:
    """config.model.dtype -> "float32" or "bfloat16"; "auto" is bfloat16 except on CPU."""
    if name == "auto":
        return "float32" if jax.default_backend() == "cpu" else "bfloat16"
    return name


def attention_implementation(name: str, dtype: str, head_dim: int) -> str:
    """config.model.attention_implementation -> "xla" or "cudnn"; "auto" is cuDNN flash
    attention where it applies (a GPU, bfloat16, head_dim a multiple of 8 up to 128), else XLA
    (jax.nn.dot_product_attention's own default, which never picks cuDNN by itself)."""
    if name != "auto":
        return name
    cudnn = (jax.default_backend() == "gpu" and dtype == "bfloat16"
             and head_dim % 8 == 0 and head_dim <= 128)
    return "cudnn" if cudnn else "xla"


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """The train step's hyperparameters besides the optimizer's (static under jit)."""

    music_dropout: float
    reference_dropout: float
    t_mean: float
    t_std: float
    time_shift: float
    ema_decay: float

    @classmethod
    def of(cls, config: ml_collections.ConfigDict, model: DiTConfig) -> StepSettings:
        train = config.train
        shift = train.time_shift
        if shift == -1:
            shift = flow.resolution_shift(model.grid[0] * model.grid[1])
        return cls(train.music_dropout, train.reference_dropout, train.t_mean, train.t_std,
                   float(shift), train.ema_decay)


class TrainState(nnx.Module):
    """Everything a checkpoint holds besides the loader: the DiT, its optimizer (AdamW moments
    and step count), the EMA of its weights (a DiT) and the RNG key of the next step."""

    def __init__(self, model_config: DiTConfig, optimizer: OptimizerSettings, seed: int):
        self.model = DiT(model_config, rngs=nnx.Rngs(seed))
        self.ema = nnx.clone(self.model)
        self.optimizer = nnx.Optimizer(self.model, optimizer.transform(), wrt=nnx.Param)
        self.rng = nnx.Variable(jax.random.key_data(jax.random.key(seed + 1)))


def cache_info(manifest: dict) -> dict:
    """What the sampler needs of the latent cache: the loader's normalisation (scale, shift,
    music_scale, music_shift), the shapes, the settings, the autoencoder (vae, vae_weights) and
    the mean dancer."""
    return {key: manifest[key] for key in (
        "scale", "shift", "music_scale", "music_shift", "latent_shape", "music_features",
        "settings", "vae", "vae_weights", "mean_dancer")}
