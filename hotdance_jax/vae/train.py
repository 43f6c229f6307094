r"""Train the onehot-kl autoencoder on segments, once per skeleton and bin count; then freeze it.

  python -m hotdance_jax.vae.train --config configs/dwm.py --workdir runs/vae_dwm \
      [--config.vae.train.segments=data/dwm] [--config.vae.train.steps=4000]

Reads the train split of a segment build (python -m data_pipeline.build; poses only, so motion-only
performances, built without music, serve as well as any), takes random crops (mirrored at
random), makes their one-hot images inside the
jitted step, and fits them with `onehot_kl.onehot_kl_loss` (AdamW, warmup + cosine). Checkpoints
(model, optimizer, step, data iterator) go to WORKDIR/checkpoints with Orbax; the same command
resumes from the latest. Every eval_every steps it reports the decoded keypoint error on the
validation split. At the end it writes the frozen weights to WORKDIR/onehot_kl.msgpack, the file
`--vae-weights` takes.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import flags
from flax import nnx

from data_pipeline.segments import SegmentStore
from hotdance_jax import cli
from hotdance_jax.errors import InputError
from hotdance_jax.pose import (
    OPENPOSE_18,
    decoded_poses,
    encode,
    flip_horizontal,
)
from hotdance_jax.training import (
    POSE_DATA,
    OptimizerSettings,
    check_workdir,
    checkpoint_manager,
)
from hotdance_jax.vae.kl import AutoencoderKL, KLConfig, save_onehot_kl
from hotdance_jax.vae.onehot_kl import image_from_outputs, onehot_kl_loss

WEIGHTS_FILE = "onehot_kl.msgpack"

FLAGS = flags.FLAGS


def kl_config(config: ml_collections.ConfigDict) -> KLConfig:
    """The autoencoder architecture of a config: 2K channels in, 2 x 2K logits out."""
    channels = 2 * OPENPOSE_18.num_joints
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
    `train.flip`: keypoints (crop, J, 2) pixels, confidence (crop, J), frame size (2,)."""
    start = int(rng.integers(0, record["keypoints"].shape[0] - train.crop_frames + 1))
    window = slice(start, start + train.crop_frames)
    kp, conf = record["keypoints"][window], record["confidence"][window]
    size = np.array([record["width"], record["height"]], np.float32)
    if rng.random() < train.flip:
        kp, conf = flip_horizontal(kp, conf, float(record["width"]))
    return {"keypoints": np.nan_to_num(kp), "confidence": conf, "size": size}


def training_data(config: ml_collections.ConfigDict) -> grain.MapDataset:
    """Shuffled, endlessly repeated batches of cropped segments of the train split."""
    train = config.vae.train
    store = SegmentStore(train.segments, "train")
    frames = store[0]["keypoints"].shape[0]
    if train.crop_frames > frames or train.crop_frames % config.vae.stride:
        raise InputError(f"config.vae.train.crop_frames={train.crop_frames} must divide by "
                         f"{config.vae.stride} and fit the segments' {frames} frames")
    return (grain.MapDataset.source(store).seed(train.seed).shuffle().repeat(None)
            .random_map(lambda r, rng: random_crop(r, rng, train))
            .batch(train.batch_size, drop_remainder=True))


def images_of(batch: dict, bins: int) -> jax.Array:
    """One-hot images (N, B, T, 2K) of a batch of keypoints in their frames."""
    size = batch["size"]
    return encode(batch["keypoints"], batch["confidence"], size[:, 0], size[:, 1], bins)


@functools.partial(nnx.jit, static_argnames=("bins", "kl_weight", "visibility_weight"),
                   donate_argnums=(0, 1))
def train_step(model, optimizer, batch, key, *, bins, kl_weight, visibility_weight):
    """One optimizer step on a batch; updates model and optimizer in place, returns metrics."""
    images = images_of(batch, bins)

    def loss_fn(m):
        return onehot_kl_loss(m, images, key, kl_weight, visibility_weight)

    (loss, parts), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return {"loss": loss, **parts}


def evaluate(model: AutoencoderKL, config: ml_collections.ConfigDict) -> dict[str, float]:
    """Decoded keypoint error (bins) and visibility accuracy on validation segments, decoded
    (and smoothed in time) as the sampler decodes."""
    try:
        store = SegmentStore(config.vae.train.segments, "val")
    except InputError:
        return {}
    n = min(len(store), config.vae.train.eval_segments)
    batch = {"keypoints": [], "confidence": [], "size": []}
    for record in store.__getitems__(range(n)):
        batch["keypoints"].append(np.nan_to_num(record["keypoints"]))
        batch["confidence"].append(record["confidence"])
        batch["size"].append([record["width"], record["height"]])
    batch = {k: np.asarray(v, np.float32) for k, v in batch.items()}
    reconstruction = _reconstruct(model, images_of(batch, config.pose.bins))
    kp, conf = decoded_poses(reconstruction, batch["size"][:, 0], batch["size"][:, 1],
                             config.pose)
    truth_visible = batch["confidence"] > 0
    error = np.abs(kp - batch["keypoints"]) / batch["size"][:, None, None, :]
    error = error[truth_visible & (conf > 0)] * config.pose.bins
    return {"val_error_bins_mean": float(error.mean()) if error.size else float("nan"),
            "val_error_bins_p99": float(np.percentile(error, 99)) if error.size else float("nan"),
            "val_visibility_accuracy": float(((conf > 0) == truth_visible).mean())}


@nnx.jit
def _reconstruct(model: AutoencoderKL, images: jax.Array) -> jax.Array:
    return image_from_outputs(model.decode(model.encode(images)[0]).astype(jnp.float32))


def create_model(arch: KLConfig, seed: int) -> AutoencoderKL:
    """A freshly initialised model. Its initialisers draw from an "rbg" key: XLA compiles it
    several times faster than threefry on CPU (about 4 s instead of 25 s for a small VAE)."""
    return AutoencoderKL(arch, rngs=nnx.Rngs(jax.random.key(seed, impl="rbg")))


def train(
    config: ml_collections.ConfigDict, workdir: Path, stop_at: int | None = None
) -> dict[str, float]:
    """Trains (or resumes) to config.vae.train.steps; writes the frozen weights; returns the
    final evaluation. `stop_at` ends this run early at that step with a checkpoint, as a
    preemption would (the next call resumes from it)."""
    train_config = config.vae.train
    arch = kl_config(config)
    model = create_model(arch, train_config.seed)
    optimizer = nnx.Optimizer(model, OptimizerSettings.of(train_config).transform(),
                              wrt=nnx.Param)
    data = iter(training_data(config))
    check_workdir(workdir, config, ("vae.arch", *POSE_DATA))
    manager = checkpoint_manager(workdir, train_config.keep_checkpoints)
    step = 0
    if manager.latest_step() is not None:
        step = manager.latest_step()
        abstract = nnx.state((model, optimizer))
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            data=grain.checkpoint.CheckpointRestore(data)))
        nnx.update((model, optimizer), restored.state)
        print(f"resumed from step {step}")
    hyper = {"bins": config.pose.bins, "kl_weight": train_config.kl_weight,
             "visibility_weight": train_config.visibility_weight}
    key = jax.random.key(train_config.seed)
    start, last_log = time.perf_counter(), step
    last = train_config.steps if stop_at is None else min(stop_at, train_config.steps)
    while step < last:
        batch = next(data)
        metrics = train_step(model, optimizer, batch, jax.random.fold_in(key, step), **hyper)
        step += 1
        if step % train_config.log_every == 0 or step == train_config.steps:
            metrics = {k: float(v) for k, v in metrics.items()}
            if not np.isfinite(metrics["loss"]):
                raise InputError(f"loss is {metrics['loss']} at step {step}; the last good "
                                 f"checkpoint is step {manager.latest_step()}")
            elapsed = time.perf_counter() - start
            rate = (step - last_log) * train_config.batch_size / elapsed
            print(f"step {step}/{train_config.steps} loss {metrics['loss']:.4f} "
                  f"position {metrics['position']:.4f} visibility {metrics['visibility']:.4f} "
                  f"kl {metrics['kl']:.3f} | "
                  f"{elapsed / (step - last_log):.3f} s/step {rate:.1f} examples/s", flush=True)
            start, last_log = time.perf_counter(), step
        if step % train_config.eval_every == 0 or step == train_config.steps:
            print(f"step {step} eval {evaluate(model, config)}", flush=True)
        if step % train_config.checkpoint_every == 0 or step == last:
            manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(nnx.state((model, optimizer))),
                data=grain.checkpoint.CheckpointSave(data)))
    manager.wait_until_finished()
    if step < train_config.steps:
        return {}
    save_onehot_kl(workdir / WEIGHTS_FILE, model, arch)
    final = evaluate(model, config)
    print(f"frozen weights: {workdir / WEIGHTS_FILE}; final eval {final}")
    return final


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("configs/tiny_cpu.py")
    flags.DEFINE_string("workdir", None, "Run folder: checkpoints, log, frozen weights.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        raise InputError("--workdir is required")
    if not FLAGS.config.vae.train.segments:
        raise InputError("set --config.vae.train.segments to a segment build folder")
    train(FLAGS.config, Path(FLAGS.workdir))


if __name__ == "__main__":
    define_flags()
    cli.run(main)
