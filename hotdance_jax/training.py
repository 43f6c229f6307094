"""What the two trainers share (python -m hotdance_jax.train and python -m hotdance_jax.vae.train):
the optimizer, the run folder's config check, and the Orbax checkpoint manager.

A run folder (workdir: a local path or a gs:// URI, io.run_path) holds config.json, the config it
was started with, and checkpoints/. A later run in the same folder resumes from its latest
checkpoint; it must agree with config.json on the sections that fix the shapes of what is saved,
else it is refused before anything is restored or written.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import optax
import orbax.checkpoint as ocp
from etils import epath

from hotdance_jax import io
from hotdance_jax.errors import InputError

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
