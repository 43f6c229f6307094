r"""Train the onehot-kl autoencoder on segments, once per skeleton and bin count; then freeze it.

  python -m hotdance_jax.vae.train --config configs/dwm.py --segments data/dwm \
      --workdir runs/vae_dwm [--config.vae.train.steps=4000]

Reads the train split of a segment build (python -m data_pipeline.build; poses only, so motion-only
performances, built without music, serve as well as any), takes random crops (mirrored at
random, moved in the frame with config.vae.train.shift), makes their one-hot images inside the
jitted step, and fits them with `onehot_kl.onehot_kl_loss` (AdamW, warmup + cosine). It trains
through the DiT's loop (hotdance_jax.training.run): the batch split over the config.vae.train.mesh
devices (weights replicated), Orbax checkpoints of the model, optimizer and data iterator in
WORKDIR/checkpoints (the same command resumes exactly), TensorBoard events, a progress bar, log
lines with MFU, SIGTERM saves and stops, a non-finite loss stops. Every eval_every steps it
reports the decoded keypoint error on the validation split. At the end it writes the frozen
weights to WORKDIR/onehot_kl.msgpack, the file `--vae-weights` takes.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from flax import nnx

from data_pipeline.segments import SegmentStore, read_manifest, require_pose
from hotdance_jax import cli, parallel
from hotdance_jax.errors import InputError
from hotdance_jax.metrics import reconstruction_errors
from hotdance_jax.pose import (
    decoded_poses,
    encode,
    flip_horizontal,
)
from hotdance_jax.training import (
    POSE_DATA,
    OptimizerSettings,
    Task,
    Trainer,
    check_workdir,
    local_batch_size,
    run,
)
from hotdance_jax.vae import image_channels
from hotdance_jax.vae.kl import AutoencoderKL, KLConfig, save_onehot_kl
from hotdance_jax.vae.onehot_kl import image_from_outputs, onehot_kl_loss

WEIGHTS_FILE = "onehot_kl.msgpack"

FLAGS = flags.FLAGS


def kl_config(config: ml_collections.ConfigDict) -> KLConfig:
    """The autoencoder architecture of a config: 2K channels in, 2 x 2K logits out."""
    channels = image_channels(config.pose.skeleton)
    arch = config.vae.arch
    return KLConfig(
        in_channels=channels,
        out_channels=2 * channels,
        block_out_channels=tuple(arch.block_out_channels),
        layers_per_block=arch.layers_per_block,
        latent_channels=config.vae.latent_channels,
        norm_num_groups=arch.norm_num_groups,
        use_quant_conv=True,
        use_post_quant_conv=True,
        mid_block_add_attention=arch.mid_block_add_attention,
        scaling_factor=1.0,
        shift_factor=None,
    )


def random_crop(record: dict, rng: np.random.Generator,
                train: ml_collections.ConfigDict) -> dict:
    """A random `train.crop_frames`-frame window of a segment, mirrored with probability
    `train.flip`, moved to a random place in the frame when `train.shift`: keypoints (crop, J,
    2) pixels, confidence (crop, J), frame size (2,)."""
    start = int(rng.integers(0, record["keypoints"].shape[0] - train.crop_frames + 1))
    window = slice(start, start + train.crop_frames)
    kp, conf = record["keypoints"][window], record["confidence"][window]
    size = np.array([record["width"], record["height"]], np.float32)
    if rng.random() < train.flip:
        kp, conf = flip_horizontal(kp, conf, float(record["width"]))
    if train.shift:
        kp = shifted_in_frame(kp, conf, size, rng)
    return {"keypoints": np.nan_to_num(kp), "confidence": conf, "size": size}


def shifted_in_frame(keypoints: np.ndarray, confidence: np.ndarray, size: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Keypoints (T, J, 2) pixels moved by one uniform offset that keeps the box of the visible
    ones inside the frame `size` (2,) pixels: the dancer anywhere in it, as a fixed camera sees
    a dancer cross the floor."""
    visible = confidence > 0
    if not visible.any():
        return keypoints
    low, high = keypoints[visible].min(0), keypoints[visible].max(0)
    offset = rng.uniform(np.minimum(-low, 0.0), np.maximum(size - 1 - high, 0.0))
    return (keypoints + offset).astype(np.float32)


def training_data(config: ml_collections.ConfigDict, segments: Path,
                  local_batch: int) -> grain.MapDataset:
    """Shuffled, endlessly repeated batches of `local_batch` cropped segments of the train split
    of the build `segments`: this process's share of the stream (crops process_index,
    process_index + process_count, ...)."""
    train = config.vae.train
    store = SegmentStore(segments, "train")
    frames = store[0]["keypoints"].shape[0]
    if train.crop_frames > frames or train.crop_frames % config.vae.stride:
        raise InputError(f"config.vae.train.crop_frames={train.crop_frames} must divide by "
                         f"{config.vae.stride} and fit the segments' {frames} frames")
    return (grain.MapDataset.source(store).seed(train.seed).shuffle().repeat(None)
            .random_map(lambda r, rng: random_crop(r, rng, train))
            [jax.process_index()::jax.process_count()]
            .batch(local_batch, drop_remainder=True))


def images_of(batch: dict, bins: int, hand_zoom: float) -> jax.Array:
    """One-hot images (N, B, T, 2K) of a batch of keypoints in their frames (hands in their
    wrists' frames at hand_zoom > 0)."""
    size = batch["size"]
    return encode(batch["keypoints"], batch["confidence"], size[:, 0], size[:, 1], bins,
                  hand_zoom)


class VAETrainState(nnx.Module):
    """What a checkpoint holds besides the loader: the autoencoder and its AdamW state."""

    def __init__(self, arch: KLConfig, optimizer: OptimizerSettings, seed: int):
        self.model = create_model(arch, seed)
        self.optimizer = nnx.Optimizer(self.model, optimizer.transform(), wrt=nnx.Param)


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """The train step's settings besides the optimizer's: bins of the one-hot images, the loss
    weights, the seed of the posterior samples' keys, the position target's Gaussian (bins) and
    the hands' zoom (config.pose.hand_zoom)."""

    bins: int
    kl_weight: float
    visibility_weight: float
    seed: int
    target_sigma: float = 0.0
    hand_zoom: float = 0.0


def train_step(settings: LossSettings, ts: VAETrainState, batch: dict) -> dict[str, jax.Array]:
    """One optimizer step on a batch of crops (keypoints (N, T, J, 2) pixels, confidence (N, T,
    J), size (N, 2)), in place; returns the loss and its parts. The posterior sample's key is
    the seed's folded with the step."""
    images = images_of(batch, settings.bins, settings.hand_zoom)
    key = jax.random.fold_in(jax.random.key(settings.seed), ts.optimizer.step[...])

    def loss_fn(m):
        return onehot_kl_loss(m, images, key, settings.kl_weight, settings.visibility_weight,
                              settings.target_sigma)

    (loss, parts), grads = nnx.value_and_grad(loss_fn, has_aux=True)(ts.model)
    ts.optimizer.update(ts.model, grads)
    return {"loss": loss, **parts}


def vae_trainer(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> Trainer:
    """The autoencoder's Trainer on `mesh`."""
    train = config.vae.train
    settings = LossSettings(config.pose.bins, train.kl_weight, train.visibility_weight,
                            train.seed, train.target_sigma, config.pose.hand_zoom)
    new_state = functools.partial(VAETrainState, kl_config(config),
                                  OptimizerSettings.of(train), train.seed)
    return Trainer(new_state, functools.partial(train_step, settings), mesh)


def evaluate(model: AutoencoderKL, config: ml_collections.ConfigDict,
             segments: Path) -> dict[str, float]:
    """metrics.reconstruction_errors of the validation segments of the build `segments`, decoded
    (and smoothed in time) as the sampler decodes, each name prefixed val_."""
    store = SegmentStore(segments, "val")
    n = min(len(store), config.vae.train.eval_segments)
    batch = {"keypoints": [], "confidence": [], "size": []}
    for record in store.__getitems__(range(n)):
        batch["keypoints"].append(np.nan_to_num(record["keypoints"]))
        batch["confidence"].append(record["confidence"])
        batch["size"].append([record["width"], record["height"]])
    batch = {k: np.asarray(v, np.float32) for k, v in batch.items()}
    reconstruction = _reconstruct(model, images_of(batch, config.pose.bins, config.pose.hand_zoom))
    kp, conf = decoded_poses(reconstruction, batch["size"][:, 0], batch["size"][:, 1],
                             config.pose)
    figures = reconstruction_errors(kp, conf, batch["keypoints"], batch["confidence"],
                                    batch["size"], config.pose.bins)
    return {f"val_{name}": value for name, value in figures.items()}


@nnx.jit
def _reconstruct(model: AutoencoderKL, images: jax.Array) -> jax.Array:
    return image_from_outputs(model.decode(model.encode(images)[0]).astype(jnp.float32))


def create_model(arch: KLConfig, seed: int) -> AutoencoderKL:
    """A freshly initialised model. Its initialisers draw from an "rbg" key: XLA compiles it
    several times faster than threefry on CPU (about 4 s instead of 25 s for a small VAE)."""
    return AutoencoderKL(arch, rngs=nnx.Rngs(jax.random.key(seed, impl="rbg")))


def train(
    config: ml_collections.ConfigDict, segments: Path, workdir: Path, stop_at: int | None = None
) -> dict[str, float]:
    """Trains (or resumes) on the segment build `segments` to config.vae.train.steps; writes
    the frozen weights; returns the final evaluation. `stop_at` ends this run early at that step
    with a checkpoint (the next call resumes from it; returns {}); SIGTERM saves one and raises
    Preempted."""
    train_config = config.vae.train
    mesh = parallel.make_mesh(tuple(train_config.mesh))
    local_batch = local_batch_size(train_config.batch_size, mesh, "config.vae.train.batch_size")
    manifest = read_manifest(segments)
    require_pose(segments, manifest, config.pose, ("skeleton",))
    data = iter(training_data(config, segments, local_batch))
    check_workdir(workdir, config, ("vae.arch", *POSE_DATA), write=jax.process_index() == 0)
    trainer = vae_trainer(config, mesh)
    params = sum(x.size for x in jax.tree.leaves(trainer.abstract["model"]))
    has_val = manifest["counts"]["segments"].get("val", 0) > 0
    task = Task(
        trainer, data, train_config,
        describe=(f"onehot-kl autoencoder {params / 1e6:.2f} M parameters, "
                  f"{config.pose.bins} bins, crops of {train_config.crop_frames} frames; mesh "
                  f"{dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].platform} "
                  f"devices; global batch {train_config.batch_size}"),
        validate=(lambda: evaluate(trainer.module().model, config, segments)) if has_val else None)
    run(task, workdir, stop_at)
    if trainer.step_count < train_config.steps:
        return {}
    model = trainer.module().model
    if jax.process_index() == 0:
        save_onehot_kl(workdir / WEIGHTS_FILE, model, kl_config(config))
    final = evaluate(model, config, segments) if has_val else {}
    print(f"frozen weights: {workdir / WEIGHTS_FILE}; final eval {final}")
    return final


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("tiny_cpu")
    flags.DEFINE_string("segments", None, "Segment build folder (python -m data_pipeline.build).")
    flags.DEFINE_string("workdir", None, "Run folder: checkpoints, log, frozen weights.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {argv[1:]}")
    cli.require_flags("segments", "workdir")
    train(FLAGS.config, Path(FLAGS.segments), Path(FLAGS.workdir))


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
