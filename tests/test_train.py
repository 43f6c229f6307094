"""The DiT trainer: learning, exact resume, preemption, NaN stop, config checks, logging."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboardX.proto import event_pb2

from data_pipeline import latents, loader
from hotdance_jax import dit_run, parallel, train, training
from hotdance_jax.errors import InputError, Preempted
from tests.test_build import REPO

pytestmark = pytest.mark.slow  # trains or starts processes: make test-fast skips it


def train_config(cache, **overrides):
    """A DiT small enough to step in milliseconds on the cache's 8 x 8 x 4 latents."""
    config = cache[1].copy_and_resolve_references()
    config.latents.workers = 0
    config.model.width, config.model.depth, config.model.heads = 64, 2, 4
    config.train.batch_size = 4
    config.train.steps = 8
    config.train.warmup_steps = 2
    config.train.learning_rate = 1e-3
    config.train.log_every = 2
    config.train.eval_every = 4
    config.train.eval_batches = 1
    config.train.checkpoint_every = 4
    for key, value in overrides.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


def latents_of(cache):
    """The latent cache folder of the `cache` fixture."""
    return cache[0] / "latents"


def make_trainer(config, cache_dir, mesh=(1, -1, 1), devices=None):
    manifest = latents.read_manifest(cache_dir)
    return train.dit_trainer(config, dit_run.dit_config(config, manifest),
                         parallel.make_mesh(mesh, devices))


def params_of(workdir, step=None):
    """The model and EMA parameters of a run's checkpoint (latest by default), as numpy."""
    with ocp.CheckpointManager((workdir / "checkpoints").resolve()) as manager:
        step = manager.latest_step() if step is None else step
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore()))
    state = restored.state
    return {part: jax.tree.map(np.asarray, state[part]) for part in ("model", "ema")}, step


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_training_lowers_the_validation_loss(cache):
    config = train_config(cache, train__learning_rate=3e-3, train__ema_decay=0.9)
    trainer = make_trainer(config, latents_of(cache))
    validation = [parallel.global_batch(b, trainer.mesh) for b in
                  loader.validation_batches(latents_of(cache), config, 4, num_batches=2)]
    key = jax.random.key(0)

    def val_losses():
        """(with the music, with the null music token)"""
        return np.mean([np.asarray(trainer.eval_step(b, jax.random.fold_in(key, i)))
                        for i, b in enumerate(validation)], axis=0)

    before = val_losses()
    assert before[0] == before[1]  # the zero-initialised model cannot hear the music yet
    data = iter(loader.train_dataset(latents_of(cache), config, 4))
    losses = [float(trainer.step(parallel.global_batch(next(data), trainer.mesh))["loss"])
              for _ in range(60)]
    assert trainer.step_count == 60
    assert np.isfinite(losses).all()
    after = val_losses()
    assert after[0] < 0.9 * before[0]  # 1.86 -> 1.54 when written
    assert after[0] != after[1]  # the null token is what the model sees in the second
    # On CPU, where matmuls stay XLA dots, the compiled step's count is the same within 5%.
    compiled = trainer.compile(validation[0]).cost_analysis()
    compiled = compiled[0] if isinstance(compiled, list) else compiled
    assert trainer.flops_per_step == pytest.approx(compiled["flops"], rel=0.05)


def test_resume_gives_the_same_parameters_as_one_run(cache, tmp_path):
    config = train_config(cache)
    train.train(config, latents_of(cache), tmp_path / "once")
    train.train(config, latents_of(cache), tmp_path / "twice", stop_at=4)
    assert params_of(tmp_path / "twice")[1] == 4
    train.train(config, latents_of(cache), tmp_path / "twice")
    (once, step_once), (twice, step_twice) = params_of(tmp_path / "once"), params_of(
        tmp_path / "twice")
    assert step_once == step_twice == 8
    assert_trees_equal(once, twice)
    info = json.loads((tmp_path / "once" / dit_run.CACHE_INFO_FILE).read_text())
    assert info["latent_shape"] == [8, 8, 4]
    assert len(info["mean_dancer"]["keypoints"]) == 18
    events = [e for path in sorted((tmp_path / "once" / "tensorboard").iterdir())
              for e in read_events(path)]
    logged = {(v.tag, e.step) for e in events for v in e.summary.value}
    assert {("train/loss", 2), ("train/loss", 8), ("val_loss", 4), ("val_loss", 8),
            ("train/val_music_gain", 8), ("train/mfu", 8)} <= logged


def read_events(path):
    """The Event protos of a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    data, events, offset = path.read_bytes(), [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 8], "little")
        event = event_pb2.Event()
        event.ParseFromString(data[offset + 12:offset + 12 + length])
        events.append(event)
        offset += 12 + length + 4
    return events


def test_a_preempted_run_saves_and_raises(cache, tmp_path, monkeypatch):
    """Code that trains and then uses the run (the demo, the benches) must not go on with a
    preempted one: train.train raises Preempted after saving (the command exits 0 on it)."""
    class Requested(training.Preemption):
        def __init__(self, start_step, workdir):  # no handler installed
            del start_step, workdir
            self.requested = False

        @contextlib.contextmanager
        def first_batch(self):  # SIGTERM comes after the first batch, in the first step
            yield
            self.requested = True

    monkeypatch.setattr(training, "Preemption", Requested)
    with pytest.raises(Preempted, match=r"preempted: saved step 1 in .*; rerun to resume") as e:
        train.train(train_config(cache), latents_of(cache), tmp_path)  # the resume test's step
    assert e.value.step == 1
    assert params_of(tmp_path)[1] == 1


def test_a_dance_check_at_another_fps_is_refused(cache, tmp_path):
    config = train_config(cache, train__dance_eval_every=2)
    config.pose.fps *= 2
    with pytest.raises(InputError, match=r"segments: \d+ fps; the run is at \d+"):
        train.make_dance_check(config, latents.read_manifest(latents_of(cache)),
                               cache[0] / "segments")


def test_a_workdir_of_another_model_is_refused(cache, tmp_path):
    cache_dir = latents_of(cache)
    # The runs stop early on the 8-step schedule of the resume test: the same compiled step.
    train.train(train_config(cache), cache_dir, tmp_path, stop_at=2)
    with pytest.raises(InputError, match=r"another config \(model: width differ\)"):
        train.train(train_config(cache, model__width=32), cache_dir, tmp_path)
    assert params_of(tmp_path)[1] == 2
    # How decoded images are read is not part of what was trained: the run resumes.
    train.train(train_config(cache, pose__decode_jump_cost=0.0), cache_dir, tmp_path, stop_at=3)
    assert params_of(tmp_path)[1] == 3
    # A run saved by a version with another set of model settings is refused, and its
    # saved config cannot build a DiT either.
    older = tmp_path / "older"
    train.train(train_config(cache), cache_dir, older, stop_at=2)
    saved = json.loads((older / training.CONFIG_FILE).read_text())
    del saved["model"]["aligned_music"]
    saved["model"]["attention"] = "joint"
    (older / training.CONFIG_FILE).write_text(json.dumps(saved))
    with pytest.raises(InputError, match=r"another config \(model: aligned_music, attention "
                                         r"differ\)"):
        train.train(train_config(cache), cache_dir, older)
    old_config = ml_collections.ConfigDict(saved)
    with pytest.raises(InputError, match=r"config\.model lacks aligned_music: a run saved by an "
                                         r"older version"):
        dit_run.dit_config(old_config, latents.read_manifest(cache[0] / "latents"))


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(cache, tmp_path):
    config = train_config(cache, train__learning_rate=1e30, train__grad_clip=1e30,
                          train__warmup_steps=0, train__checkpoint_every=1, train__log_every=1,
                          train__steps=50)
    with pytest.raises(InputError, match=r"loss is (nan|inf) at step (\d+); stopped") as error:
        train.train(config, latents_of(cache), tmp_path)
    failed = int(error.value.args[0].split("at step ")[1].split(";")[0])
    params, step = params_of(tmp_path)
    assert step < failed
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_sigterm_saves_and_exits_zero(cache, tmp_path):
    command = [sys.executable, "-m", "hotdance_jax.train", "--config", "configs/tiny_cpu.py",
               "--workdir", str(tmp_path / "run"),
               f"--latents={cache[0] / 'latents'}", "--config.vae.name=pooling",
               "--config.latents.records_per_shard=5", "--config.latents.workers=0",
               "--config.model.width=64", "--config.model.depth=2", "--config.model.heads=4",
               "--config.train.batch_size=4", "--config.train.steps=1000",
               "--config.train.log_every=1", "--config.train.checkpoint_every=1000"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("step 3/1000 "):  # the log line of step 3 (the run ends at 1000)
            process.send_signal(signal.SIGTERM)
            break
    output = "".join(lines) + process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    assert "preempted: saved step" in output
    saved = int(output.split("preempted: saved step ")[1].split()[0])
    assert saved >= 3
    assert params_of(tmp_path / "run")[1] == saved


class _WorkerDiedStarting:
    """A loader whose first batch never comes, as when a job-wide SIGTERM killed the worker that
    owed it before grain's init made it ignore SIGTERM: the first next() sends this process that
    SIGTERM, then waits 60 s for the batch (a trainer that waited on would take a step)."""

    def __init__(self, dataset):
        self.data, self.first = iter(dataset), True

    def __iter__(self):
        return self

    def __next__(self):
        if self.first:
            self.first = False
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)
        return next(self.data)

    def __getattr__(self, name):  # get_state, set_state, close: the real iterator's
        return getattr(self.data, name)


def test_a_sigterm_while_the_first_batch_is_awaited_stops_at_once(cache, tmp_path,
                                                                  monkeypatch, capsys):
    real = loader.train_dataset
    monkeypatch.setattr(loader, "train_dataset",
                        lambda *args, **kwargs: _WorkerDiedStarting(real(*args, **kwargs)))
    with pytest.raises(Preempted) as stopped:
        train.train(train_config(cache), latents_of(cache), tmp_path)
    assert stopped.value.step == 0  # no step taken, none saved
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())
    assert "preempted before the first step: nothing saved" in capsys.readouterr().out


def test_the_loaders_workers_outlive_a_sigterm(cache):
    """A scheduler's preemption sends SIGTERM to every process of the job. The loader's worker
    processes ignore it and go on making batches, so the trainer (which takes it) can finish its
    step and save; a worker that died of it would leave next() waiting for ever."""
    config = train_config(cache, latents__workers=2, latents__prefetch=1)
    before = set(multiprocessing.active_children())
    data = iter(loader.train_dataset(latents_of(cache), config, 4))
    for _ in range(config.latents.workers):  # one batch of each worker: all have started
        next(data)
    workers = [child for child in multiprocessing.active_children() if child not in before]
    assert workers, "no loader worker processes to signal"
    for worker in workers:
        os.kill(worker.pid, signal.SIGTERM)
    batches = []
    fetch = threading.Thread(target=lambda: batches.extend(next(data) for _ in range(12)),
                             daemon=True)  # 12 batches: past what the workers had buffered
    fetch.start()
    fetch.join(timeout=120)
    assert len(batches) == 12, "the loader stopped making batches after SIGTERM"
    assert all(worker.is_alive() for worker in workers)
    data.close()


def test_mesh_shapes():
    assert parallel.mesh_shape((1, -1, 1), 8) == (1, 8, 1)
    assert parallel.mesh_shape((2, -1, 2), 8) == (2, 2, 2)
    assert parallel.mesh_shape((1, 4, 2), 8) == (1, 4, 2)
    for bad, message in [((1, -1, 3), "do not divide"), ((1, 2, 2), "needs 4 devices"),
                         ((-1, -1, 1), "at most one -1"), ((1, 8), "expected")]:
        with pytest.raises(InputError, match=message):
            parallel.mesh_shape(bad, 8)


def test_batch_must_divide_over_the_mesh():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1), parallel.MESH_AXES)
    assert training.local_batch_size(4, mesh, "config.train.batch_size") == 4
    fake = type("FakeMesh", (), {"shape": {"data": 1, "fsdp": 2, "tensor": 1}})()
    with pytest.raises(InputError, match=r"config\.train\.batch_size=3 must be a multiple of 2"):
        training.local_batch_size(3, fake, "config.train.batch_size")


def test_ema_follows_the_weights(cache):
    config = train_config(cache, train__ema_decay=0.5)
    trainer = make_trainer(config, latents_of(cache))
    data = iter(loader.train_dataset(latents_of(cache), config, 4))
    model_before = jax.tree.map(np.asarray, trainer.state["model"])
    ema_before = jax.tree.map(np.asarray, trainer.state["ema"])
    assert_trees_equal(model_before, ema_before)
    trainer.step(parallel.global_batch(next(data), trainer.mesh))
    model = jax.tree.map(np.asarray, trainer.state["model"])
    ema = jax.tree.map(np.asarray, trainer.state["ema"])
    decay = min(0.5, (1 + 1) / (10 + 1))  # min(ema_decay, (1 + step) / (10 + step)), step 1
    for m0, m, e in zip(jax.tree.leaves(model_before), jax.tree.leaves(model),
                        jax.tree.leaves(ema), strict=True):
        np.testing.assert_allclose(e, m0 + (1 - decay) * (m - m0), rtol=1e-5, atol=1e-7)


def test_the_step_takes_the_state_as_a_list_of_arrays(cache):
    """No nnx Variable crosses the compiled step's boundary (their pytree flattening made the
    host's dispatch 3-4x slower), and `state` is the same tree either way."""
    config = train_config(cache)
    trainer = make_trainer(config, latents_of(cache))
    data = iter(loader.train_dataset(latents_of(cache), config, 4))
    structure = jax.tree.structure(trainer.state)
    trainer.step(parallel.global_batch(next(data), trainer.mesh))
    positional, _ = trainer._compiled.in_tree.children()  # ((leaves, batch), {})
    leaves, _ = positional.children()
    assert leaves.num_nodes == leaves.num_leaves + 1 == structure.num_leaves + 1  # one list
    assert jax.tree.structure(trainer.state) == structure
    assert trainer.step_count == 1


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_reference_dropout_hides_the_reference(cache, rate):
    """At rate 1 a step's loss and gradient are the same whatever the reference holds; at rate 0
    they are not."""
    config = train_config(cache, train__reference_dropout=rate)
    batch = next(iter(loader.train_dataset(latents_of(cache), config, 4)))
    scrambled = dict(batch, reference=batch["reference"][::-1] + 1.0,
                     mask=1.0 - batch["mask"])
    metrics = []
    for data in (batch, scrambled):
        trainer = make_trainer(config, latents_of(cache))
        step = trainer.step(parallel.global_batch(data, trainer.mesh))
        metrics.append([float(step["loss"]), float(step["grad_norm"])])
    assert (metrics[0] == metrics[1]) == (rate == 1.0), metrics
