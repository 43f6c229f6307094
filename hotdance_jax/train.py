r"""Train the DiT with rectified flow on a latent cache; the same command resumes.

  python -m hotdance_jax.train --config configs/tiny_cpu.py --workdir runs/tiny \
      --config.train.latents=data/synthetic_latents [--config.train.steps=2000]

The latent cache (python -m data_pipeline.precompute) fixes the latent and music shapes; the
config's `model` section the DiT, its `train` section the rest. Per step, on a global batch of
config.train.batch_size examples split over the mesh's data x fsdp devices: the loader's
reference latent and mask (N reference frames drawn per example, N = 0 with probability
config.latents.p_shape_only), music replaced by the null token with probability
config.train.music_dropout, the flow loss of flow.flow_loss (logit-normal t, shifted), AdamW with
warmup and cosine decay after gradient clipping, and an EMA of the weights (the weights the
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
import math
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from absl import flags
from etils import epath
from flax import nnx
from tensorboardX import SummaryWriter

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
    check_workdir,
    checkpoint_manager,
)

FLAGS = flags.FLAGS
# Peak dense bf16 FLOP/s per device by jax device_kind prefix (vendor data sheets).
PEAK_FLOPS = {
    "TPU v5p": 459e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v6": 918e12,
    "TPU v4": 275e12, "NVIDIA H100": 989e12, "NVIDIA H200": 989e12, "NVIDIA A100": 312e12,
}


def velocity_loss(model: DiT, batch: dict, drop_music: jax.Array, key: jax.Array,
                  settings: StepSettings) -> jax.Array:
    """The flow-matching loss of `model` on a batch (see data_pipeline/loader.py), a scalar;
    `key` is one key or (b,) keys, one per example (flow.flow_loss)."""

    def velocity(x_t, t):
        return model(x_t, t, batch["reference"], batch["mask"], batch["music"], drop_music)

    return flow.flow_loss(velocity, batch["latent"], key, settings.t_mean, settings.t_std,
                          settings.time_shift)


def train_step(graphdef: nnx.GraphDef, settings: StepSettings, state: nnx.State, batch: dict
               ) -> tuple[nnx.State, dict[str, jax.Array]]:
    """One optimizer step and EMA update; returns the new state and {loss, grad_norm}.

    The step's key is split off the state's; each example's draws (music dropout, t, noise)
    come from that key folded with the example's stream position (batch["example"]).
    """
    ts = nnx.merge(graphdef, state)
    key, step_key = jax.random.split(jax.random.wrap_key_data(ts.rng[...]))
    ts.rng[...] = jax.random.key_data(key)
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(step_key, i)))(
        batch["example"])
    drop = jax.vmap(lambda k: jax.random.bernoulli(k, settings.music_dropout))(keys[:, 0])
    loss, grads = nnx.value_and_grad(velocity_loss)(ts.model, batch, drop, keys[:, 1], settings)
    ts.optimizer.update(ts.model, grads)
    step = ts.optimizer.step[...].astype(jnp.float32)
    decay = jnp.minimum(settings.ema_decay, (1.0 + step) / (10.0 + step))
    ema = jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e),
                       nnx.state(ts.ema, nnx.Param), nnx.state(ts.model, nnx.Param))
    nnx.update(ts.ema, ema)
    return nnx.state(ts), {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def eval_loss(graphdef: nnx.GraphDef, settings: StepSettings, state: nnx.State, batch: dict,
              key: jax.Array) -> jax.Array:
    """The EMA weights' flow loss on a batch for a given key (a fixed t and noise), (2,): with
    the music, and with every example's music replaced by the null token. Each example's draws
    come from `key` folded with its stream position (batch["example"]), so they do not depend on
    where the example sits in the batch (or on the process count)."""
    ema = nnx.merge(graphdef, state).ema
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(batch["example"])
    return jnp.stack([velocity_loss(ema, batch, jnp.full(batch["latent"].shape[:1], drop),
                                    keys, settings) for drop in (False, True)])


def on_leaves(fn: Callable, treedef: jax.tree_util.PyTreeDef, returns_state: bool) -> Callable:
    """`fn(state, *args)` as a function of the state's leaves (a list of arrays); when
    `returns_state`, fn returns (state, out) and so does this, the state again as its leaves. A
    list of arrays crosses the jit boundary 3-4x faster than a tree of nnx Variables
    (docs/speed_memory.md, "Host time"), host time that bounds a short accelerator step."""

    def flat(leaves, *args):
        result = fn(jax.tree.unflatten(treedef, leaves), *args)
        return (treedef.flatten_up_to(result[0]), result[1]) if returns_state else result

    return flat


class Trainer:
    """The sharded train state and its compiled steps on a mesh.

    Attributes: graphdef, state (nnx.State, sharded by `shardings`, rebuilt on each read from
    the leaves the steps work on; None when built with allocate=False, for `compile` alone),
    abstract (the state's shapes, dtypes and shardings), mesh, flops_per_step (model FLOPs per
    device of one step, `model_flops`; None until the first step).
    """

    def __init__(self, config: ml_collections.ConfigDict, model_config: DiTConfig,
                 mesh: jax.sharding.Mesh, allocate: bool = True):
        self.mesh = mesh
        model_config = dataclasses.replace(model_config, remat=config.train.remat)
        self.model_config = model_config
        self.settings = StepSettings.of(config, model_config)
        optimizer = OptimizerSettings.of(config.train)
        self._new_state = lambda model: TrainState(model, optimizer, config.seed)

        def create():
            return self._new_state(model_config)

        self.graphdef, abstract = nnx.split(nnx.eval_shape(create))
        self.shardings = parallel.state_shardings(abstract, mesh)
        self.abstract = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
            abstract, self.shardings)
        self._treedef = jax.tree.structure(abstract)
        self._abstract_leaves = self._treedef.flatten_up_to(self.abstract)
        leaf_shardings = self._treedef.flatten_up_to(self.shardings)
        self._leaves = (jax.jit(lambda: self._treedef.flatten_up_to(nnx.state(create())),
                                out_shardings=leaf_shardings)() if allocate else None)
        batch_sharding = parallel.batch_sharding(mesh)
        self._step = jax.jit(self._flat(train_step, self.graphdef, returns_state=True),
                             in_shardings=(leaf_shardings, batch_sharding),
                             out_shardings=(leaf_shardings, None), donate_argnums=0)
        self._eval = jax.jit(self._flat(eval_loss, self.graphdef, returns_state=False),
                             in_shardings=(leaf_shardings, batch_sharding, None))
        self._compiled = None
        self.flops_per_step = None

    def _flat(self, fn: Callable, graphdef: nnx.GraphDef, returns_state: bool) -> Callable:
        return on_leaves(functools.partial(fn, graphdef, self.settings), self._treedef,
                         returns_state)

    @property
    def state(self) -> nnx.State | None:
        return None if self._leaves is None else jax.tree.unflatten(self._treedef, self._leaves)

    @state.setter
    def state(self, state: nnx.State) -> None:
        self._leaves = self._treedef.flatten_up_to(state)

    def step(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Advances the state by one step on a global batch; returns its metrics (on device)."""
        if self._compiled is None:
            self._compiled = self.compile(batch)
            self.flops_per_step = self.model_flops(batch)
        self._leaves, metrics = self._compiled(self._leaves, batch)
        return metrics

    def compile(self, batch: dict) -> jax.stages.Compiled:
        """The train step compiled for the state's shardings and a global batch of `batch`'s
        shapes (arrays or jax.ShapeDtypeStruct); nothing is allocated."""
        return self._step.lower(self._abstract_leaves, batch).compile()

    def model_flops(self, batch: dict) -> float | None:
        """FLOPs per device of one train step on a global batch of `batch`'s shapes: XLA's cost
        analysis of the step as lowered, over the mesh's devices. Lowered, before compilation
        turns matmuls into cuBLAS calls whose FLOPs it does not count on GPU, and with XLA
        attention, since a cuDNN attention call is not counted either."""
        step = self._step
        if self.model_config.attention_implementation != "xla":
            counted = dataclasses.replace(self.model_config, attention_implementation="xla")
            graphdef, _ = nnx.split(nnx.eval_shape(lambda: self._new_state(counted)))
            step = jax.jit(self._flat(train_step, graphdef, returns_state=True))
        flops = (step.lower(self._abstract_leaves, batch).cost_analysis() or {}).get("flops")
        return float(flops) / self.mesh.size if flops and flops > 0 else None

    def eval_loss(self, batch: dict[str, jax.Array], key: jax.Array) -> jax.Array:
        return self._eval(self._leaves, batch, key)

    @property
    def step_count(self) -> int:
        return int(self.state["optimizer"]["step"][...])

    def ema_model(self) -> DiT:
        return nnx.merge(self.graphdef, self.state).ema


def peak_flops_per_device() -> tuple[float, str]:
    """(peak FLOP/s of one device, where the figure comes from): the data-sheet bf16 peak for
    known accelerators; on CPU (and unknown devices) a timed float32 matmul."""
    device = jax.devices()[0]
    for prefix, peak in PEAK_FLOPS.items():
        if device.device_kind.startswith(prefix):
            return peak, f"{device.device_kind} data sheet"
    n = 1024
    a = jax.device_put(jnp.ones((n, n), jnp.float32), device)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = min(_timed(lambda: matmul(a).block_until_ready()) for _ in range(5))
    return 2 * n**3 / best, f"measured: {n}x{n} float32 matmul on {device.device_kind}"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Preemption:
    """Set when this process gets SIGTERM (the handler replaces the default exit)."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True


def check_batch_size(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> int:
    """This process's share of the global batch; InputError unless the mesh and processes
    divide the global batch."""
    global_batch = config.train.batch_size
    divisor = math.lcm(parallel.batch_divisor(mesh), jax.process_count())
    if global_batch % divisor:
        raise InputError(f"config.train.batch_size={global_batch} must be a multiple of "
                         f"{divisor} (the mesh's data x fsdp devices and the processes)")
    return global_batch // jax.process_count()


def check_process_count(manager: ocp.CheckpointManager, step: int) -> None:
    """InputError unless checkpoint `step` holds this process's loader position, i.e. unless it
    was saved by as many processes as this run has (grain writes one file per process)."""
    data = epath.Path(manager.directory) / str(step) / "data"
    count = jax.process_count()
    if not (data / f"process_{jax.process_index()}-of-{count}.json").exists():
        saved = sorted({p.name.split("-of-")[-1].removesuffix(".json")
                        for p in data.glob("process_*-of-*.json")})
        raise InputError(f"{manager.directory}: checkpoint {step} was saved by "
                         f"{' or '.join(saved) or 'an unknown number of'} process(es), this run "
                         f"has {count}; resume it with as many processes")


def validation_set(config: ml_collections.ConfigDict, local_batch: int,
                   mesh: jax.sharding.Mesh) -> list[dict] | None:
    """config.train.eval_batches global batches on the mesh, of the val split (each process
    reads its share, cycled to fill them), made once and used at every evaluation; None
    without a val split."""
    try:
        batches = loader.validation_batches(config.train.latents, config, local_batch,
                                            num_batches=config.train.eval_batches)
    except InputError as error:
        if "no 'val' records" in str(error):
            return None
        raise
    return [parallel.global_batch(batch, mesh) for batch in batches]


def train(config: ml_collections.ConfigDict, workdir: epath.Path | Path, stop_at: int | None = None
          ) -> dict[str, float]:
    """Trains (or resumes) to config.train.steps; returns the last logged metrics (and the last
    validation loss, "val_loss"). `stop_at` ends this run at that step with a checkpoint, as a
    preemption would."""
    train_config = config.train
    if not train_config.latents:
        raise InputError("set --config.train.latents to a latent cache folder "
                         "(python -m data_pipeline.precompute)")
    manifest = latents.read_manifest(train_config.latents)
    latents.check_settings(train_config.latents, manifest, config)
    model_config = dit_config(config, manifest)
    mesh = parallel.make_mesh(train_config.mesh, dcn=train_config.dcn_mesh)
    local_batch = check_batch_size(config, mesh)
    lead = jax.process_index() == 0
    check_workdir(workdir, config, ("model", *POSE_DATA, "vae.name", "latents.reference_frames"),
                  write=lead)
    if lead:
        io.write_text(workdir / CACHE_INFO_FILE, json.dumps(cache_info(manifest), indent=1))

    manager = checkpoint_manager(workdir, train_config.keep_checkpoints, keep_best=True)
    if manager.latest_step() is not None:
        check_process_count(manager, manager.latest_step())
    trainer = Trainer(config, model_config, mesh)
    data = iter(loader.train_dataset(train_config.latents, config, local_batch))
    if manager.latest_step() is not None:
        restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(trainer.abstract),
            data=grain.checkpoint.CheckpointRestore(data)))
        trainer.state = restored.state
    step = trainer.step_count
    if lead:
        params = sum(x.size for x in jax.tree.leaves(nnx.state(trainer.ema_model(), nnx.Param)))
        print(f"{'resumed at' if step else 'starting at'} step {step}: DiT {params / 1e6:.1f} M "
              f"parameters, {model_config.grid[0] * model_config.grid[1]} pose + "
              f"{model_config.latent_frames} music tokens, {model_config.dtype}, "
              f"{model_config.attention_implementation} attention; mesh "
              f"{dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].platform} devices, "
              f"{jax.process_count()} process(es); global batch {train_config.batch_size}",
              flush=True)
    validation = validation_set(config, local_batch, mesh)
    dance_check = make_dance_check(config, manifest)
    last = train_config.steps if stop_at is None else min(stop_at, train_config.steps)
    log = TrainLog(workdir, train_config, start_step=step, enabled=lead)
    preemption = Preemption()

    def save(step: int, metrics: dict | None = None) -> None:
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(trainer.state),
            data=grain.checkpoint.CheckpointSave(data)), metrics=metrics)

    metrics: dict = {}
    try:
        while step < last:
            batch = parallel.global_batch(next(data), mesh)
            compiling = trainer.flops_per_step is None
            step_metrics = trainer.step(batch)
            step += 1
            if compiling:  # rates exclude compilation, evaluation and checkpointing
                jax.block_until_ready(step_metrics)
                log.restart_clock(step - 1)
            stopping = preemption.requested or manager.reached_preemption(step)
            checkpoint = step % train_config.checkpoint_every == 0 or step == last or stopping
            if step % train_config.log_every == 0 or checkpoint:
                metrics = log.step(step, step_metrics, trainer.flops_per_step)
                if not np.isfinite(metrics["loss"]):
                    raise InputError(
                        f"loss is {metrics['loss']} at step {step}; stopped, the last good "
                        f"checkpoint (step {manager.latest_step()}) is kept in {workdir}")
            evaluation = None
            if validation and (step % train_config.eval_every == 0 or step == train_config.steps):
                evaluation = evaluate(trainer, validation, config.seed)
                log.evaluation(step, evaluation)
                metrics = {**metrics, **evaluation}
            if dance_check and (step % train_config.dance_eval_every == 0
                                or step == train_config.steps):
                with dances_folder(workdir, step) as out:
                    scores = dance_check(trainer.ema_model(), step, out)
                log.evaluation(step, scores)
                metrics = {**metrics, **scores}
                log.restart_clock(step)
            if checkpoint or evaluation:
                save(step, evaluation)
                log.restart_clock(step)
            if stopping:
                if lead:
                    print(f"preempted: saved step {step} in {workdir}; rerun to resume", flush=True)
                break
    finally:
        manager.wait_until_finished()
        log.close()
        close = getattr(data, "close", None)  # grain's worker processes, when there are any
        if close:
            close()
    return metrics


def make_dance_check(config: ml_collections.ConfigDict, manifest: dict):
    """sample.DanceCheck when config.train.dance_eval_every and dance_eval_segments ask for one
    and this is a single process (the EMA weights of several would need gathering), else None."""
    train_config = config.train
    if not (train_config.dance_eval_every and train_config.dance_eval_segments):
        return None
    if jax.process_count() > 1:
        if jax.process_index() == 0:
            print("dance evaluation skipped: it runs in single-process training only", flush=True)
        return None
    return DanceCheck(config, cache_info(manifest))


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
    losses = np.mean([np.asarray(trainer.eval_loss(batch, jax.random.fold_in(key, i)))
                      for i, batch in enumerate(validation)], axis=0)
    return {BEST_METRIC: float(losses[0]), "val_music_gain": float(losses[1] - losses[0])}


class TrainLog:
    """The log lines, the progress bar and the TensorBoard events of the lead process."""

    def __init__(self, workdir: epath.Path | Path, train: ml_collections.ConfigDict,
                 start_step: int, enabled: bool):
        self.enabled, self.batch_size = enabled, train.batch_size
        self.last_step, self.last_time = start_step, time.perf_counter()
        if not enabled:
            return
        self.peak, source = peak_flops_per_device()
        print(f"peak {self.peak / 1e12:.2f} TFLOP/s per device ({source})", flush=True)
        self.writer = SummaryWriter(str(workdir / "tensorboard"))
        self.bar = tqdm.tqdm(total=train.steps, initial=start_step, unit="step", leave=False,
                             disable=None)

    def restart_clock(self, step: int) -> None:
        """The next rates count from now, as if `step` had just ended."""
        self.last_step, self.last_time = step, time.perf_counter()

    def step(self, step: int, device_metrics: dict, flops: float | None) -> dict[str, float]:
        """Logs the metrics of `step` (fetched from the devices) with the rates since the last
        log line; returns them."""
        metrics = {k: float(v) for k, v in device_metrics.items()}
        now = time.perf_counter()
        seconds = (now - self.last_time) / max(step - self.last_step, 1)
        self.last_step, self.last_time = step, now
        metrics["seconds_per_step"] = seconds
        metrics["examples_per_second"] = self.batch_size / seconds
        if flops and self.enabled:
            metrics["tflops_per_device"] = flops / seconds / 1e12
            metrics["mfu"] = flops / seconds / self.peak
        if self.enabled:
            self.bar.update(step - self.bar.n)
            tflops = (f" {metrics['tflops_per_device']:.3f} TFLOP/s/device "
                      f"MFU {100 * metrics['mfu']:.1f}%" if "mfu" in metrics else "")
            self.bar.write(f"step {step} loss {metrics['loss']:.4f} | {seconds:.3f} s/step "
                           f"{metrics['examples_per_second']:.1f} examples/s{tflops}")
            self.scalars(step, metrics)
        return metrics

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"train/{name}" if name != BEST_METRIC else name, value, step)
        self.writer.flush()

    def evaluation(self, step: int, values: dict[str, float]) -> None:
        """Figures of the EMA weights: a log line and TensorBoard scalars."""
        if self.enabled:
            self.bar.write(f"step {step} " + " ".join(f"{k} {v:.4f}" for k, v in values.items())
                           + " (EMA weights)")
        self.scalars(step, values)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.writer.close()


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("configs/tiny_cpu.py")
    flags.DEFINE_string("workdir", None, "Run folder: config, checkpoints, TensorBoard events.")
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
    if not FLAGS.workdir:
        raise InputError("--workdir is required")
    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                    FLAGS.process_id, FLAGS.multihost)
    train(FLAGS.config, io.run_path(FLAGS.workdir))


if __name__ == "__main__":
    define_flags()
    cli.run(main)
