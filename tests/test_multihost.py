"""Multi-process training: two local processes joined by jax.distributed against one process,
and run folders given as gs:// URIs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from etils.epath import backend
from fsspec.implementations.memory import MemoryFileSystem

from hotdance_jax import io, parallel, training
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.errors import InputError
from tests.conftest import xla_flags
from tests.test_build import REPO

pytestmark = pytest.mark.slow  # trains or starts processes: make test-fast skips it

# The run both sides train: configs/tiny_cpu.py on the fixture's cache, a small DiT, 4 steps of
# global batch 8 (lr from the first step, so every step moves the weights), one checkpoint.
OVERRIDES = {
    "vae.name": "pooling", "latents.records_per_shard": 5, "latents.workers": 0,
    "model.width": 64, "model.depth": 2, "model.heads": 4,
    "train.batch_size": 8, "train.steps": 4, "train.warmup_steps": 0,
    "train.learning_rate": 1e-3, "train.log_every": 2, "train.eval_every": 4,
    "train.eval_batches": 1, "train.checkpoint_every": 4, "train.mesh": (1, -1, 1),
}


def pod_config(dcn_mesh=(1, 1, 1), steps: int | None = None):
    """configs/tiny_cpu.py with OVERRIDES."""
    config = sibling_config(REPO / "configs" / "tiny_cpu.py", "tiny_cpu")
    for key, value in {**OVERRIDES, "train.dcn_mesh": dcn_mesh}.items():
        section, name = key.split(".")
        config[section][name] = value
    if steps is not None:
        config.train.steps = steps
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(devices: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO),
            "XLA_FLAGS": xla_flags(f"--xla_force_host_platform_device_count={devices}")}


def test_two_processes_train_as_one_and_their_checkpoint_restores_anywhere(cache, tmp_path):
    """Two processes of 4 CPU devices, started by launch/train_ssh.sh (through an ssh that runs
    the command here) as one host with 2 "GPUs", in a DCN mesh of 2 process granules (data 2 x
    fsdp 4), train the same 4 steps as one process of 8 devices, to the same weights; their
    checkpoint restores in one process on a (1, 4, 2) mesh; resuming it with one process is
    refused in one line."""
    latents = str(cache[0] / "latents")
    pair, single = tmp_path / "pair", tmp_path / "single"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text('#!/bin/sh\nexec sh -c "$2"\n')  # ssh HOST COMMAND, run here
    (bin_dir / "ssh").chmod(0o755)
    flags = [f"--config.{k}={v}" for k, v in {**OVERRIDES, "train.dcn_mesh": (2, 1, 1)}.items()]
    launch = subprocess.run(
        ["bash", "launch/train_ssh.sh", "--hosts", "localhost", "--gpus-per-host", "2",
         "--port", str(free_port()), "--python", sys.executable, "--config",
         "configs/tiny_cpu.py", "--workdir", str(pair), "--latents", latents, "--log-dir",
         str(tmp_path / "logs"), "--", *flags],
        cwd=REPO, env={**environment(4), "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True, text=True, timeout=300)
    outputs = [(tmp_path / "logs" / f"process-{i}.log").read_text() for i in range(2)]
    assert launch.returncode == 0, launch.stderr + outputs[0][-2000:] + outputs[1][-2000:]
    assert "--num_processes=2 --process_id=1" in launch.stdout
    assert "{'data': 2, 'fsdp': 4, 'tensor': 1} over 8 cpu devices, 2 process(es)" in outputs[0]
    assert "step 4/4 loss" in outputs[0]
    assert "step 4/4 loss" not in outputs[1]  # only process 0 logs

    checks = subprocess.run(
        [sys.executable, "-m", "tests.multihost_checks", latents, str(pair), str(single)],
        cwd=REPO, env=environment(8), capture_output=True, text=True, timeout=300)
    assert checks.returncode == 0, checks.stderr[-3000:]
    figures = json.loads(checks.stdout.strip().splitlines()[-1])
    assert figures["steps"] == [4, 4]
    pair_val_loss = float(outputs[0].split("step 4 val_loss ")[1].split()[0])
    assert abs(pair_val_loss - figures["single_val_loss"]) < 1e-4  # each process read its share
    # The steps moved the weights by up to 2.5e-3; the two runs agree within a few float32 ulp
    # of weights near 1 (1.2e-7 when written): the same examples, keys and updates.
    assert figures["update"] > 1e-3
    assert figures["pair_vs_single"] < 1e-6
    assert figures["pair_vs_single_ema"] < 1e-6
    assert figures["restored_on_new_mesh"]
    assert "checkpoint 4 was saved by 2 process(es), this run has 1" in figures["resume_refusal"]


class FakeGCS(MemoryFileSystem):
    """An in-memory stand-in for gcsfs: what etils.epath calls for gs:// paths."""

    protocol = ("gs", "gcs")
    store: dict = {}  # noqa: RUF012 (fsspec's class-level store)
    pseudo_dirs: list = [""]  # noqa: RUF012


def test_a_gs_workdir_is_kept_whole_and_written_through_epath(monkeypatch, tmp_path):
    bucket = FakeGCS()
    monkeypatch.setattr(backend.fsspec_backend, "fs", lambda path: bucket)
    monkeypatch.chdir(tmp_path)
    workdir = io.run_path("gs://bucket/runs/pod")
    assert str(workdir / "checkpoints") == "gs://bucket/runs/pod/checkpoints"  # not gs:/bucket
    config = pod_config()
    training.check_workdir(workdir, config, ("model",))
    assert json.loads((workdir / training.CONFIG_FILE).read_text())["model"]["width"] == 64
    config.model.width = 32
    with pytest.raises(InputError, match=r"^gs://bucket/runs/pod: its checkpoints are of another "
                                         r"config \(model: width differ\)"):
        training.check_workdir(workdir, config, ("model",))
    assert list(Path().iterdir()) == []  # nothing written locally (a "gs:" folder)
    local = io.run_path("runs/local")
    assert str(local) == str(tmp_path.resolve() / "runs" / "local")
    io.write_text(local / "a.json", "{}")
    assert (tmp_path / "runs" / "local" / "a.json").read_text() == "{}"


def test_a_dcn_mesh_must_fit_the_processes():
    with pytest.raises(InputError, match=r"^dcn mesh \(2, 1, 1\) does not fit the 1 process\(es\) "
                                         r"of this run$"):
        parallel.make_mesh((1, -1, 1), dcn=(2, 1, 1))
    assert parallel.make_mesh((1, -1, 1), dcn=(-1, 1, 1)).shape == {"data": 1, "fsdp": 1,
                                                                     "tensor": 1}
