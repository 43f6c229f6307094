"""The launch scripts' dry runs: the commands they would run, and their one-line errors. (The ssh
launcher also runs for real, two processes on this machine: tests/test_multihost.py.)"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.test_build import REPO

# What a TPU dry run does, in order: the lines that create/delete/ship, train, and decide.
TPU_STEP = re.compile(r"^(?:\+ gcloud compute tpus (?:tpu-vm|queued-resources) (create|delete)"
                      r"|\+ .*(hotdance_jax\.train)|# (training finished)|# the slice is (\w+))",
                      re.MULTILINE)


def launch(script: str, *args: str, states: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if states is not None:
        env["DRY_RUN_STATES"] = states
    return subprocess.run(["bash", f"launch/{script}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def commands(output: str, *words: str) -> list[str]:
    """The printed commands ("+ ...") that contain every one of `words`."""
    return [line for line in output.splitlines()
            if line.startswith("+ ") and all(w in line for w in words)]


def tpu_steps(output: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in TPU_STEP.finditer(output)]


def test_tpu_v5p_spot_slice_is_created_trained_and_recreated_after_a_preemption():
    result = launch("train_tpu.sh", "--name", "hd", "--zone", "us-east5-a", "--accelerator",
                    "v5p-64", "--spot", "--config", "configs/pod_tpu_v5p.py", "--workdir",
                    "gs://bucket/runs/v5p", "--latents", "gs://bucket/aistpp2d_latents",
                    "--dry-run", "--", "--config.train.steps=5000",
                    states="NONE PREEMPTED PREEMPTED")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # create, train, the slice is preempted: delete, create, train again (resuming), done
    assert tpu_steps(out) == ["create", "hotdance_jax.train", "PREEMPTED", "delete", "create",
                              "hotdance_jax.train", "training finished"]
    creates = commands(out, "gcloud compute tpus tpu-vm create hd")
    for flag in ("--zone=us-east5-a", "--accelerator-type=v5p-64", "--version=v2-alpha-tpuv5",
                 "--spot"):
        assert all(flag in c for c in creates), flag
    assert len(commands(out, "git archive", "HEAD")) == 2
    assert len(commands(out, "tpu-vm scp", "hd:hotdance-", "--worker=all")) == 2
    installs = commands(out, "tpu-vm ssh hd", "--worker=all", "launch/requirements-tpu.txt")
    assert len(installs) == 2
    assert all("gcloud storage rsync --recursive gs://bucket/aistpp2d_latents" in c
               for c in installs)
    trains = commands(out, "tpu-vm ssh hd", "--worker=all", "python -m hotdance_jax.train")
    for attempt, command in enumerate(trains, 1):
        for part in ("--config=configs/pod_tpu_v5p.py", "--workdir=gs://bucket/runs/v5p",
                     "--multihost", "--latents=$HOME/hotdance-latents",
                     "--config.train.steps=5000", f"hotdance-logs/attempt-{attempt}.log",
                     f"gs://bucket/runs/v5p/logs/hd-worker-$W-attempt-{attempt}.log"):
            assert part in command, part


def test_tpu_v5e_queued_multislice_waits_for_the_slices_and_trains_on_both():
    result = launch("train_tpu.sh", "--name", "hd", "--zone", "us-west4-a", "--accelerator",
                    "v5e-16", "--queued", "--slices", "2", "--config",
                    "configs/pod_tpu_v5e.py", "--workdir", "gs://bucket/runs/v5e", "--latents",
                    "/mnt/disks/latents", "--poll", "30", "--dry-run",
                    states="NONE WAITING_FOR_RESOURCES")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert tpu_steps(out) == ["create", "hotdance_jax.train", "hotdance_jax.train",
                              "training finished"]
    [create] = commands(out, "queued-resources create hd")
    for flag in ("--accelerator-type=v5litepod-16", "--runtime-version=v2-alpha-tpuv5-lite",
                 "--node-count=2", "--node-prefix=hd"):
        assert flag in create
    assert "--spot" not in create
    assert len(commands(out, "sleep 30")) == 2  # until the queued resource is ACTIVE
    for node in ("hd-0", "hd-1"):
        [train] = commands(out, f"tpu-vm ssh {node} ", "--worker=all", "hotdance_jax.train")
        assert "--config.train.dcn_mesh=(2,1,1)" in train
        assert "--latents=/mnt/disks/latents" in train  # not copied: on the VM
        assert "gcloud storage rsync" not in "".join(commands(out, f"tpu-vm ssh {node} "))


@pytest.mark.parametrize(("args", "message"), [
    (["--workdir", "runs/local"], "--workdir must be a gs:// URI"),
    (["--slices", "2"], "--slices 2 needs --queued"),
    (["--accelerator", "v9-8"], "no default runtime version for v9-8"),
    (["--config", "configs/nope.py"], "--config configs/nope.py: no such file"),
])
def test_tpu_launcher_refuses_bad_requests_in_one_line(args, message):
    base = {"--name": "hd", "--zone": "z", "--accelerator": "v5p-8", "--config":
            "configs/pod_tpu_v5p.py", "--workdir": "gs://b/r", "--latents": "gs://b/l"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = launch("train_tpu.sh", *[x for kv in base.items() for x in kv], "--dry-run")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {message}")
    assert result.stdout == ""


def test_slurm_batch_script_runs_one_process_per_gpu_and_requeues_after_preemption():
    result = launch("train_gpu_slurm.sh", "--config", "configs/pod_gpu_8xh100.py", "--workdir",
                    "/shared/runs/gpu", "--latents", "/shared/latents", "--nodes", "2",
                    "--partition", "h100", "--dry-run", "--", "--config.train.steps=500")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --signal=TERM@120", "#SBATCH --requeue", "#SBATCH --partition=h100"):
        assert line in out.splitlines(), line
    [srun] = [line for line in out.splitlines() if line.startswith("srun ")]
    assert "-m hotdance_jax.train --config=configs/pod_gpu_8xh100.py" in srun
    assert "--workdir=/shared/runs/gpu --latents=/shared/latents" in srun
    assert "--config.train.steps=500" in srun
    assert "--coordinator_address" not in srun  # SLURM's environment names the coordinator
    assert "%t.log" in srun  # one log per task
    assert "scontrol requeue $SLURM_JOB_ID" in out
    assert commands(out, "sbatch logs/slurm/hotdance.sbatch")


def test_ssh_launcher_numbers_processes_per_gpu_and_per_host():
    args = ["--hosts", "gpu-a,gpu-b", "--config", "configs/pod_gpu_8xh100.py", "--workdir",
            "gs://b/r", "--latents", "/data/l", "--port", "1234", "--dry-run"]
    per_gpu = commands(launch("train_ssh.sh", *args, "--gpus-per-host", "2").stdout, "ssh ")
    assert len(per_gpu) == 4
    for i, command in enumerate(per_gpu):
        assert command.startswith(f"+ ssh gpu-{'ab'[i // 2]} ")
        assert f"CUDA_VISIBLE_DEVICES={i % 2} " in command
        assert f"--coordinator_address=gpu-a:1234 --num_processes=4 --process_id={i}" in command
        assert command.endswith(f"> logs/ssh/process-{i}.log")
    per_host = commands(launch("train_ssh.sh", *args, "--per-host").stdout, "ssh ")
    assert len(per_host) == 2
    assert all("CUDA_VISIBLE_DEVICES" not in c and "--num_processes=2" in c for c in per_host)


def test_accelerator_requirements_pin_the_runtime_jax():
    def pins(name):
        lines = (REPO / name).read_text().splitlines()
        return dict(line.split("==") for line in lines if "==" in line)

    jax_version = pins("requirements.txt")["jax"]
    assert pins("launch/requirements-tpu.txt")["jax[tpu]"] == jax_version
    assert pins("launch/requirements-gpu.txt")["jax[cuda12]"] == jax_version
    assert "-r ../requirements.txt" in (REPO / "launch/requirements-tpu.txt").read_text()
