r"""Train the DiT with rectified flow on a latent cache; the same command resumes.

  python -m hotdance_jax.train --config configs/tiny_cpu.py --latents data/synthetic_latents \
      --workdir runs/tiny [--segments data/synthetic] [--config.train.steps=2000]

The latent cache (python -m data_pipeline.precompute) fixes the latent and music shapes; the
config's `model` section the DiT, its `train` section the rest. Per step, on a global batch of
config.train.batch_size examples split over the mesh's data x fsdp devices: the loader's
reference latent and mask (N reference frames drawn per example, N = 0 with probability
config.latents.p_shape_only), music replaced by the null token with probability
config.train.music_dropout, the reference latent and mask zeroed with probability
config.train.reference_dropout, the flow loss of flow.flow_loss (logit-normal t, shifted), AdamW
with warmup and cosine decay after gradient clipping, and an EMA of the weights (the weights the
sampler uses).

The run folder WORKDIR (a local folder or a gs://bucket/path URI) holds config.json,
latent_cache.json (what the sampler needs of the cache: its normalisation statistics, the
autoencoder and the mean dancer), checkpoints/ (Orbax: model, optimizer, EMA, RNG key and the
loader's position; the latest config.train.keep_checkpoints and the best by validation loss) and
tensorboard/ (event files). Every log step prints step, loss, seconds/step, examples/s, TFLOP/s
per device and MFU (the step's FLOPs from XLA's cost analysis over the device's peak; on CPU the
peak is measured by a matmul at start-up). Every eval step it logs the EMA weights' validation
loss. SIGTERM (preemption) saves a checkpoint and exits 0; a non-finite loss stops the run with
the last good checkpoint kept. Launched as several processes (--coordinator_address,
--num_processes and --process_id; --multihost on a Cloud TPU VM slice; or a cluster detected
from the environment such as SLURM), each process reads its own share of the data; a run resumes
only with as many processes as saved its checkpoint (each saves its loader's position), though
on any mesh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import flags
from etils import epath
from flax import nnx

from data_pipeline import latents, loader
from hotdance_jax import cli, flow, io, parallel
from hotdance_jax.dit_run import CACHE_INFO_FILE, StepSettings, TrainState, cache_info, dit_config
from hotdance_jax.errors import InputError
from hotdance_jax.models import DiT, DiTConfig
from hotdance_jax.sample import DanceCheck
from hotdance_jax.training import (
    BEST_METRIC,
    POSE_DATA,
    OptimizerSettings,
    Task,
    Trainer,
    check_workdir,
    local_batch_size,
    run,
)

FLAGS = flags.FLAGS


def velocity_loss(model: DiT, batch: dict, drop_music: jax.Array, key: jax.Array,
                  settings: StepSettings) -> jax.Array:
    """The flow-matching loss of `model` on a batch (see data_pipeline/loader.py), a scalar;
    `key` is one key or (b,) keys, one per example (flow.flow_loss)."""

    def velocity(x_t, t):
        return model(x_t, t, batch["reference"], batch["mask"], batch["music"], drop_music)

    return flow.flow_loss(velocity, batch["latent"], key, settings.t_mean, settings.t_std,
                          settings.time_shift)


def per_example(keys: jax.Array, rate: float) -> jax.Array:
    """(b,) bool, each True with probability `rate`: one draw per key of `keys` (b,)."""
    return jax.vmap(lambda k: jax.random.bernoulli(k, rate))(keys)


def drop_references(batch: dict, keys: jax.Array, rate: float) -> dict:
    """The batch with each example's reference latent and mask zeroed (no frame known, the mean
    latent) with probability `rate`, one draw per key of `keys` (b,)."""
    keep = 1.0 - per_example(keys, rate).astype(jnp.float32)
    return dict(batch, **{name: batch[name] * keep.reshape(-1, *(1,) * (batch[name].ndim - 1))
                          for name in ("reference", "mask")})


def train_step(settings: StepSettings, ts: TrainState, batch: dict) -> dict[str, jax.Array]:
    """One optimizer step and EMA update of the train state, in place; returns {loss,
    grad_norm}.

    The step's key is split off the state's; each example's draws (music and reference
    dropout, t, noise) come from that key folded with the example's stream position
    (batch["example"]).
    """
    key, step_key = jax.random.split(jax.random.wrap_key_data(ts.rng[...]))
    ts.rng[...] = jax.random.key_data(key)
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(step_key, i), 3))(
        batch["example"])
    drop = per_example(keys[:, 0], settings.music_dropout)
    if settings.reference_dropout > 0:
        batch = drop_references(batch, keys[:, 2], settings.reference_dropout)
    loss, grads = nnx.value_and_grad(velocity_loss)(ts.model, batch, drop, keys[:, 1], settings)
    ts.optimizer.update(ts.model, grads)
    step = ts.optimizer.step[...].astype(jnp.float32)
    decay = jnp.minimum(settings.ema_decay, (1.0 + step) / (10.0 + step))
    ema = jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e),
                       nnx.state(ts.ema, nnx.Param), nnx.state(ts.model, nnx.Param))
    nnx.update(ts.ema, ema)
    return {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def eval_loss(settings: StepSettings, ts: TrainState, batch: dict, key: jax.Array) -> jax.Array:
    """The EMA weights' flow loss on a batch for a given key (a fixed t and noise), (2,): with
    the music, and with every example's music replaced by the null token. Each example's draws
    come from `key` folded with its stream position (batch["example"]), so they do not depend on
    where the example sits in the batch (or on the process count)."""
    ema = ts.ema
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(batch["example"])
    return jnp.stack([velocity_loss(ema, batch, jnp.full(batch["latent"].shape[:1], drop),
                                    keys, settings) for drop in (False, True)])


def dit_trainer(config: ml_collections.ConfigDict, model_config: DiTConfig,
                mesh: jax.sharding.Mesh, allocate: bool = True) -> Trainer:
    """The DiT's Trainer: TrainState (DiT, AdamW, EMA, RNG key) with config.train.remat, its
    flow-matching train step and the EMA weights' validation loss (eval_loss)."""
    model_config = dataclasses.replace(model_config, remat=config.train.remat)
    settings = StepSettings.of(config, model_config)
    optimizer = OptimizerSettings.of(config.train)
    counted = None  # the FLOP count's model: XLA attention (cuDNN's calls are not counted)
    if model_config.attention_implementation != "xla":
        xla = dataclasses.replace(model_config, attention_implementation="xla")
        counted = functools.partial(TrainState, xla, optimizer, config.seed)
    return Trainer(functools.partial(TrainState, model_config, optimizer, config.seed),
                   functools.partial(train_step, settings), mesh,
                   eval_step=functools.partial(eval_loss, settings), counted_state=counted,
                   allocate=allocate)


def validation_set(config: ml_collections.ConfigDict, cache: Path, local_batch: int,
                   mesh: jax.sharding.Mesh) -> list[dict] | None:
    """config.train.eval_batches global batches on the mesh, of the val split of the latent
    cache (each process reads its share, cycled to fill them), made once and used at every
    evaluation; None without a val split."""
    try:
        batches = loader.validation_batches(cache, config, local_batch,
                                            num_batches=config.train.eval_batches)
    except InputError as error:
        if "no 'val' records" in str(error):
            return None
        raise
    return [parallel.global_batch(batch, mesh) for batch in batches]


def train(config: ml_collections.ConfigDict, cache: Path, workdir: epath.Path | Path,
          segments: Path | None = None, stop_at: int | None = None) -> dict[str, float]:
    """Trains (or resumes) on the latent cache `cache` to config.train.steps; returns the last
    logged metrics (and the last validation loss, "val_loss"). With the segment build `segments`
    (and config.train.dance_eval_every > 0) it runs the dance check. `stop_at` ends this run at
    that step with a checkpoint; SIGTERM saves one and raises Preempted."""
    train_config = config.train
    manifest = latents.read_manifest(cache)
    latents.check_settings(cache, manifest, config)
    model_config = dit_config(config, manifest)
    mesh = parallel.make_mesh(train_config.mesh, dcn=train_config.dcn_mesh)
    local_batch = local_batch_size(train_config.batch_size, mesh, "config.train.batch_size")
    lead = jax.process_index() == 0
    check_workdir(workdir, config, ("model", *POSE_DATA, "vae.name", "latents.reference_frames"),
                  write=lead)
    if lead:
        io.write_text(workdir / CACHE_INFO_FILE, json.dumps(cache_info(manifest), indent=1))
    trainer = dit_trainer(config, model_config, mesh)
    params = sum(x.size for x in jax.tree.leaves(trainer.abstract["model"]))
    validation = validation_set(config, cache, local_batch, mesh)
    dance_check = make_dance_check(config, manifest, segments)
    task = Task(
        trainer, iter(loader.train_dataset(cache, config, local_batch)),
        train_config,
        describe=(f"DiT {params / 1e6:.1f} M parameters, "
                  f"{model_config.grid[0] * model_config.grid[1]} pose + "
                  f"{model_config.latent_frames} music tokens, {model_config.dtype}, "
                  f"{model_config.attention_implementation} attention; mesh "
                  f"{dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].platform} "
                  f"devices, {jax.process_count()} process(es); global batch "
                  f"{train_config.batch_size}"),
        validate=(lambda: evaluate(trainer, validation, config.seed)) if validation else None,
        keep_best=True,
        checks=[(train_config.dance_eval_every, lambda step: run_dance_check(
            dance_check, trainer, workdir, step))] if dance_check else (),
        eval_note="(EMA weights)")
    return run(task, workdir, stop_at)


def run_dance_check(dance_check: DanceCheck, trainer: Trainer, workdir: epath.Path | Path,
                    step: int) -> dict[str, float]:
    """The dance check's scores of the EMA weights at `step` (dances in dances_folder)."""
    with dances_folder(workdir, step) as out:
        return dance_check(trainer.module().ema, step, out)


def make_dance_check(config: ml_collections.ConfigDict, manifest: dict, segments: Path | None):
    """sample.DanceCheck on the segment build `segments` when it is given, config.train.
    dance_eval_every > 0 and this is a single process (the EMA weights of several would need
    gathering), else None."""
    if not (config.train.dance_eval_every and segments):
        return None
    if jax.process_count() > 1:
        if jax.process_index() == 0:
            print("dance evaluation skipped: it runs in single-process training only", flush=True)
        return None
    return DanceCheck(config, cache_info(manifest), segments)


@contextlib.contextmanager
def dances_folder(workdir: epath.Path | Path, step: int) -> Iterator[Path]:
    """Where the dance check of `step` saves its dances: WORKDIR/dances/step_N, or a local
    temporary folder, removed afterwards, when the workdir is in cloud storage."""
    if io.is_remote(workdir):
        with tempfile.TemporaryDirectory(prefix="hotdance-dances-") as tmp:
            yield Path(tmp)
        return
    out = Path(workdir) / "dances" / f"step_{step:07d}"
    out.mkdir(parents=True, exist_ok=True)
    yield out


def evaluate(trainer: Trainer, validation: list[dict], seed: int) -> dict[str, float]:
    """The EMA weights' mean validation flow loss (BEST_METRIC) and its music gain: the loss
    with the null music token less that with the music, at the same t and noise every time
    (> 0: the model uses the music; about 0: it dances the same to any song)."""
    key = jax.random.key(seed)
    losses = np.mean([np.asarray(trainer.eval_step(batch, jax.random.fold_in(key, i)))
                      for i, batch in enumerate(validation)], axis=0)
    return {BEST_METRIC: float(losses[0]), "val_music_gain": float(losses[1] - losses[0])}


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("tiny_cpu")
    flags.DEFINE_string("latents", None,
                        "Latent cache folder (python -m data_pipeline.precompute).")
    flags.DEFINE_string("workdir", None, "Run folder: config, checkpoints, TensorBoard events.")
    flags.DEFINE_string("segments", None, "Segment build folder (python -m data_pipeline.build) "
                        "whose songs the dance check dances to (config.train.dance_eval_*).")
    flags.DEFINE_string("coordinator_address", None,
                        "host:port of process 0 for a multi-process run (otherwise detected "
                        "from the cluster environment, or a single process).")
    flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run.")
    flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
    flags.DEFINE_bool("multihost", False,
                      "Join a multi-process run that jax.distributed finds by itself (a Cloud TPU "
                      "VM slice, whose workers are in the VM metadata).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {argv[1:]}")
    cli.require_flags("latents", "workdir")
    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                    FLAGS.process_id, FLAGS.multihost)
    train(FLAGS.config, Path(FLAGS.latents), io.run_path(FLAGS.workdir),
          Path(FLAGS.segments) if FLAGS.segments else None)


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
