"""The one training loop of both trainers (python -m hotdance_jax.train, the DiT, and python -m
hotdance_jax.vae.train, the onehot-kl autoencoder), and what they share: the optimizer, the run
folder's config check and the Orbax checkpoint manager.

A trainer describes its training as a `Task`: a `Trainer` (its train state, an nnx Module with
an `optimizer`, and its train step, jitted and sharded on a (data, fsdp, tensor) mesh), its data
(a checkpointable grain iterator of this process's batches), its settings section (steps,
batch_size, log_every, eval_every, checkpoint_every, keep_checkpoints) and its evaluations.
`run` does the rest, the same for both: resume from the latest checkpoint with the loader's
position (exact), a progress bar and log lines with seconds/step, examples/s, TFLOP/s per device
and MFU, TensorBoard events, evaluations, checkpoints, a SIGTERM (preemption) that saves and
stops, and a non-finite loss that stops with the last good checkpoint kept.

A run folder (workdir: a local path or a gs:// URI, io.run_path) holds config.json, the config it
was started with, checkpoints/ and tensorboard/. A later run in the same folder resumes from its
latest checkpoint; it must agree with config.json on the sections that fix the shapes of what is
saved, else it is refused before anything is restored or written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from etils import epath
from flax import nnx
from tensorboardX import SummaryWriter

from hotdance_jax import io, parallel
from hotdance_jax.errors import InputError, Preempted

CONFIG_FILE = "config.json"
BEST_METRIC = "val_loss"


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """AdamW (b1 = 0.9) with linear warmup and cosine decay to 0 at `steps`, after clipping the
    global gradient norm to grad_clip."""

    learning_rate: float
    warmup_steps: int
    steps: int
    weight_decay: float
    grad_clip: float
    b2: float = 0.999

    @classmethod
    def of(cls, train: ml_collections.ConfigDict) -> OptimizerSettings:
        """From a config's training section (learning_rate, warmup_steps, steps, weight_decay,
        grad_clip and, if present, adam_b2)."""
        return cls(train.learning_rate, train.warmup_steps, train.steps, train.weight_decay,
                   train.grad_clip, train.get("adam_b2", 0.999))

    @functools.cache  # noqa: B019  (one object per settings: jitted steps then hit their cache)
    def transform(self) -> optax.GradientTransformation:
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, self.learning_rate, self.warmup_steps, max(self.steps, self.warmup_steps + 1))
        return optax.chain(optax.clip_by_global_norm(self.grad_clip),
                           optax.adamw(schedule, b2=self.b2, weight_decay=self.weight_decay))


# The pose settings that define what a model is trained on; the rest of config.pose (how decoded
# images are read) may change between runs of one workdir.
POSE_DATA = ("pose.skeleton", "pose.bins", "pose.fps", "pose.segment_frames")

def check_workdir(workdir: epath.Path | Path, config: ml_collections.ConfigDict,
                  fixed: Sequence[str], write: bool = True) -> None:
    """Refuses a workdir whose config.json differs from `config` in a `fixed` section (dotted
    names, e.g. "model" or "vae.arch"; a setting only one of them has differs too); then
    (write) records `config` there, atomically."""
    saved = workdir / CONFIG_FILE
    if saved.exists():
        before = json.loads(saved.read_text())
        now = json.loads(config.to_json(sort_keys=True))
        for name in fixed:
            old, new = _section(before, name), _section(now, name)
            if old != new:
                changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k)) \
                    if isinstance(old, dict) and isinstance(new, dict) else [name]
                raise InputError(f"{workdir}: its checkpoints are of another config ({name}: "
                                 f"{', '.join(changed)} differ); use a new --workdir")
    if write:
        workdir.mkdir(parents=True, exist_ok=True)
        io.write_text(saved, config.to_json(sort_keys=True, indent=2))


def _section(tree: dict, dotted: str):
    for key in dotted.split("."):
        tree = tree.get(key, {}) if isinstance(tree, dict) else {}
    return tree


def checkpoint_manager(workdir: epath.Path | Path, keep: int, keep_best: bool = False
                       ) -> ocp.CheckpointManager:
    """Orbax manager of WORKDIR/checkpoints (async saves) keeping the latest `keep` checkpoints
    and, with keep_best, also the one with the lowest metrics[BEST_METRIC] among those saved
    with metrics."""
    policies = [ocp.checkpoint_managers.LatestN(keep)]
    if keep_best:
        policies.append(ocp.checkpoint_managers.BestN(
            get_metric_fn=lambda metrics: metrics[BEST_METRIC], reverse=True, n=1,
            keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies))
    return ocp.CheckpointManager(io.run_path(workdir / "checkpoints"), options=options)


# Peak dense bf16 FLOP/s per device by jax device_kind prefix (vendor data sheets).
PEAK_FLOPS = {
    "TPU v5p": 459e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v6": 918e12,
    "TPU v4": 275e12, "NVIDIA H100": 989e12, "NVIDIA H200": 989e12, "NVIDIA A100": 312e12,
}


def on_leaves(fn: Callable, treedef: jax.tree_util.PyTreeDef, returns_state: bool) -> Callable:
    """`fn(state, *args)` as a function of the state's leaves (a list of arrays); when
    `returns_state`, fn returns (state, out) and so does this, the state again as its leaves. A
    list of arrays crosses the jit boundary 3-4x faster than a tree of nnx Variables
    (docs/speed_memory.md, "Host time"), host time that bounds a short accelerator step."""

    def flat(leaves, *args):
        result = fn(jax.tree.unflatten(treedef, leaves), *args)
        return (treedef.flatten_up_to(result[0]), result[1]) if returns_state else result

    return flat


def _stateful(graphdef: nnx.GraphDef, fn: Callable) -> Callable:
    """fn(module, *args) -> out, which updates the module in place, as a pure function
    (state, *args) -> (new state, out)."""

    def pure(state, *args):
        module = nnx.merge(graphdef, state)
        out = fn(module, *args)
        return nnx.state(module), out

    return pure


def _stateless(graphdef: nnx.GraphDef, fn: Callable) -> Callable:
    """fn(module, *args) -> out, which leaves the module as it is, as fn(state, *args)."""
    return lambda state, *args: fn(nnx.merge(graphdef, state), *args)


class Trainer:
    """A train state and its compiled steps, sharded on a mesh.

    `new_state()` builds the train state: an nnx Module with an `optimizer` (nnx.Optimizer)
    whose parameters carry logical axis names (parallel.LOGICAL_RULES; unnamed ones are
    replicated). `train_step(module, batch)` advances it in place and returns its metrics
    ({"loss": scalar, ...}); `eval_step(module, batch, key)` returns figures without changing
    it. `counted_state()`, when given, builds the state whose step `model_flops` counts (the
    same computation with XLA attention: cuDNN's calls are not counted).

    Attributes: graphdef, state (nnx.State, sharded by `shardings`, rebuilt on each read from
    the leaves the steps work on; None when built with allocate=False, for `compile` alone),
    abstract (the state's shapes, dtypes and shardings), mesh, flops_per_step (model FLOPs per
    device of one step; None until the first step).
    """

    def __init__(self, new_state: Callable[[], nnx.Module], train_step: Callable,
                 mesh: jax.sharding.Mesh, *, eval_step: Callable | None = None,
                 counted_state: Callable[[], nnx.Module] | None = None, allocate: bool = True):
        self.mesh = mesh
        self._train_step, self._counted_state = train_step, counted_state
        self.graphdef, abstract = nnx.split(nnx.eval_shape(new_state))
        self.shardings = parallel.state_shardings(abstract, mesh)
        self.abstract = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
            abstract, self.shardings)
        self._treedef = jax.tree.structure(abstract)
        self._abstract_leaves = self._treedef.flatten_up_to(self.abstract)
        leaf_shardings = self._treedef.flatten_up_to(self.shardings)
        self._leaves = (jax.jit(lambda: self._treedef.flatten_up_to(nnx.state(new_state())),
                                out_shardings=leaf_shardings)() if allocate else None)
        batch_sharding = parallel.batch_sharding(mesh)
        self._step = jax.jit(self._flat(_stateful(self.graphdef, train_step), True),
                             in_shardings=(leaf_shardings, batch_sharding),
                             out_shardings=(leaf_shardings, None), donate_argnums=0)
        self._eval = (jax.jit(self._flat(_stateless(self.graphdef, eval_step), False),
                              in_shardings=(leaf_shardings, batch_sharding, None))
                      if eval_step else None)
        self._compiled = None
        self.flops_per_step = None

    def _flat(self, fn: Callable, returns_state: bool) -> Callable:
        return on_leaves(fn, self._treedef, returns_state)

    @property
    def state(self) -> nnx.State | None:
        return None if self._leaves is None else jax.tree.unflatten(self._treedef, self._leaves)

    @state.setter
    def state(self, state: nnx.State) -> None:
        self._leaves = self._treedef.flatten_up_to(state)

    def module(self) -> nnx.Module:
        """The train state as its nnx Module (a view of the current arrays)."""
        return nnx.merge(self.graphdef, self.state)

    def step(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Advances the state by one step on a global batch; returns its metrics (on device)."""
        if self._compiled is None:
            lowered = self.lower(batch)  # traced once, for the FLOPs and the compilation
            self.flops_per_step = self.model_flops(batch, lowered)
            self._compiled = lowered.compile()
        self._leaves, metrics = self._compiled(self._leaves, batch)
        return metrics

    def lower(self, batch: dict) -> jax.stages.Lowered:
        """The train step lowered for the state's shardings and a global batch of `batch`'s
        shapes (arrays or jax.ShapeDtypeStruct); nothing is allocated."""
        return self._step.lower(self._abstract_leaves, batch)

    def compile(self, batch: dict) -> jax.stages.Compiled:
        """The train step compiled as `lower` lowers it."""
        return self.lower(batch).compile()

    def model_flops(self, batch: dict, lowered: jax.stages.Lowered | None = None) -> float | None:
        """FLOPs per device of one train step on a global batch of `batch`'s shapes: XLA's cost
        analysis of the step as lowered (`lowered`, when this trainer's own lowering is at
        hand; before compilation turns matmuls into library calls whose FLOPs it does not count
        on GPU), over the mesh's devices."""
        if self._counted_state is not None:
            graphdef, _ = nnx.split(nnx.eval_shape(self._counted_state))
            step = jax.jit(self._flat(_stateful(graphdef, self._train_step), True))
            lowered = step.lower(self._abstract_leaves, batch)
        elif lowered is None:
            lowered = self.lower(batch)
        flops = (lowered.cost_analysis() or {}).get("flops")
        return float(flops) / self.mesh.size if flops and flops > 0 else None

    def eval_step(self, batch: dict[str, jax.Array], key: jax.Array) -> jax.Array:
        return self._eval(self._leaves, batch, key)

    @property
    def step_count(self) -> int:
        return int(self.state["optimizer"]["step"][...])


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
    """Set when this process gets SIGTERM (the handler replaces the default exit); the loop saves
    and stops after the step. While the loop waits for its first batch (`first_batch`) there is
    nothing to save since the checkpoint it started from, and the handler raises Preempted at
    once instead: a loader worker still starting when a job-wide SIGTERM came dies of it (grain
    has not yet run the init that ignores SIGTERM), and the batch it owed would never come. Used
    on one process only: on several, one that stopped alone would leave the others waiting in the
    step's collectives."""

    def __init__(self, start_step: int, workdir: object):
        self.requested = False
        self._raising = False
        self._preempted = Preempted(start_step, workdir)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True
        if self._raising:
            raise self._preempted

    @contextlib.contextmanager
    def first_batch(self):
        """The wait for the first batch: a SIGTERM in it, or before it, raises Preempted."""
        if self.requested:
            raise self._preempted
        self._raising = True
        try:
            yield
        finally:
            self._raising = False


def local_batch_size(global_batch: int, mesh: jax.sharding.Mesh, setting: str) -> int:
    """This process's share of the global batch; InputError naming the `setting` (e.g.
    "config.train.batch_size") unless the mesh's data x fsdp devices and the processes divide
    it."""
    divisor = math.lcm(parallel.batch_divisor(mesh), jax.process_count())
    if global_batch % divisor:
        raise InputError(f"{setting}={global_batch} must be a multiple of {divisor} (the "
                         "mesh's data x fsdp devices and the processes)")
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


@dataclasses.dataclass
class Task:
    """One training for `run`.

    trainer: the train state and its step. data: this process's batches (numpy dicts), a grain
    iterator whose position is checkpointed. settings: the config section with steps,
    batch_size (global), log_every, eval_every, checkpoint_every and keep_checkpoints.
    describe: a line about the model and data, printed with the start or resume step.
    validate: figures at every eval_every step and the last (saved with the checkpoint; with
    keep_best, they include BEST_METRIC and the best checkpoint by it is kept too).
    checks: (every, fn(step) -> figures), further periodic evaluations (also at the last step),
    only logged. eval_note: appended to the evaluation log lines (which weights they are of).
    """

    trainer: Trainer
    data: Iterator[dict]
    settings: ml_collections.ConfigDict
    describe: str
    validate: Callable[[], dict[str, float]] | None = None
    keep_best: bool = False
    checks: Sequence[tuple[int, Callable[[int], dict[str, float]]]] = ()
    eval_note: str = ""


def run(task: Task, workdir: epath.Path | Path, stop_at: int | None = None) -> dict[str, float]:
    """Trains task.trainer from its latest checkpoint in WORKDIR/checkpoints (if any) to
    settings.steps, or to `stop_at` with a checkpoint; returns the last logged metrics and
    evaluations. On SIGTERM it saves a checkpoint and raises Preempted. The caller has checked
    the workdir (check_workdir)."""
    settings, trainer, data = task.settings, task.trainer, task.data
    lead = jax.process_index() == 0
    manager = checkpoint_manager(workdir, settings.keep_checkpoints, keep_best=task.keep_best)
    if manager.latest_step() is not None:
        check_process_count(manager, manager.latest_step())
        restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(trainer.abstract),
            data=grain.checkpoint.CheckpointRestore(data)))
        trainer.state = restored.state
    step = trainer.step_count
    if lead:
        print(f"{'resumed at' if step else 'starting at'} step {step}: {task.describe}",
              flush=True)
    last = settings.steps if stop_at is None else min(stop_at, settings.steps)
    log = TrainLog(workdir, settings, start_step=step, enabled=lead, eval_note=task.eval_note)
    preemption, first_step = Preemption(step, workdir), step
    alone = jax.process_count() == 1  # on a pod every process takes a step, or none does

    def save(step: int, metrics: dict | None = None) -> None:
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(trainer.state),
            data=grain.checkpoint.CheckpointSave(data)), metrics=metrics)

    def due(step: int, every: int) -> bool:
        return step % every == 0 or step == settings.steps

    metrics: dict = {}
    try:
        while step < last:
            waiting = (preemption.first_batch() if step == first_step and alone
                       else contextlib.nullcontext())
            with waiting:
                local_batch = next(data)
            batch = parallel.global_batch(local_batch, trainer.mesh)
            compiling = trainer.flops_per_step is None
            step_metrics = trainer.step(batch)
            step += 1
            if compiling:  # rates exclude compilation, evaluation and checkpointing
                jax.block_until_ready(step_metrics)
                log.restart_clock(step - 1)
            stopping = preemption.requested or manager.reached_preemption(step)
            checkpoint = step % settings.checkpoint_every == 0 or step == last or stopping
            if step % settings.log_every == 0 or checkpoint:
                metrics = log.step(step, step_metrics, trainer.flops_per_step)
                if not np.isfinite(metrics["loss"]):
                    raise InputError(
                        f"loss is {metrics['loss']} at step {step}; stopped, the last good "
                        f"checkpoint (step {manager.latest_step()}) is kept in {workdir}")
            evaluation = None
            if task.validate and due(step, settings.eval_every):
                evaluation = task.validate()
                log.evaluation(step, evaluation)
                metrics = {**metrics, **evaluation}
            for every, check in task.checks:
                if due(step, every):
                    figures = check(step)
                    log.evaluation(step, figures)
                    metrics = {**metrics, **figures}
                    log.restart_clock(step)
            if checkpoint or evaluation:
                save(step, evaluation)
                log.restart_clock(step)
            if stopping:
                raise Preempted(step, workdir)
    except Preempted as e:  # after a saved step, or from the wait for the first batch
        if lead:
            print(e, flush=True)
        raise
    finally:
        manager.wait_until_finished()
        log.close()
        close = getattr(data, "close", None)  # grain's worker processes, when there are any
        if close:
            close()
    return metrics


class TrainLog:
    """The log lines, the progress bar and the TensorBoard events of the lead process."""

    def __init__(self, workdir: epath.Path | Path, settings: ml_collections.ConfigDict,
                 start_step: int, enabled: bool, eval_note: str = ""):
        self.enabled, self.batch_size, self.steps = enabled, settings.batch_size, settings.steps
        self.eval_note = f" {eval_note}" if eval_note else ""
        self.last_step, self.last_time = start_step, time.perf_counter()
        if not enabled:
            return
        self.peak, source = peak_flops_per_device()
        print(f"peak {self.peak / 1e12:.2f} TFLOP/s per device ({source})", flush=True)
        self.writer = SummaryWriter(str(workdir / "tensorboard"))
        self.bar = tqdm.tqdm(total=settings.steps, initial=start_step, unit="step", leave=False,
                             disable=None)

    def restart_clock(self, step: int) -> None:
        """The next rates count from now, as if `step` had just ended."""
        self.last_step, self.last_time = step, time.perf_counter()

    def step(self, step: int, device_metrics: dict, flops: float | None) -> dict[str, float]:
        """Logs the metrics of `step` (fetched from the devices) with the rates since the last
        log line; returns them."""
        metrics = {k: float(v) for k, v in device_metrics.items()}
        loss_first = sorted(metrics, key=lambda name: name != "loss")
        parts = " ".join(f"{k} {metrics[k]:.4f}" for k in loss_first)
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
            self.bar.write(f"step {step}/{self.steps} {parts} | {seconds:.3f} s/step "
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
        """Evaluation figures: a log line and TensorBoard scalars."""
        if self.enabled:
            self.bar.write(f"step {step} " + " ".join(f"{k} {v:.4f}" for k, v in values.items())
                           + self.eval_note)
        self.scalars(step, values)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.writer.close()
