"""The command lines: config files and overrides, one-line errors, inputs, console scripts."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k not in ("LIBROSA_DATA_DIR", "HOTDANCE_SHARED")}


def run_demo(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "hotdance_jax.demo", "--config", "configs/tiny_cpu.py",
         "--out", str(tmp_path / "out"), *args],
        capture_output=True, text=True, cwd=REPO, env=ENV,
    )


@pytest.mark.slow  # starts a Python process
def test_unknown_config_key_is_a_one_line_error(tmp_path):
    result = run_demo(tmp_path, "--config.pose.nope=3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: config key 'pose.nope' does not exist (check the --config.* overrides)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # starts a Python process
def test_bad_override_value_and_missing_config_file(tmp_path):
    bad_value = run_demo(tmp_path, "--config.pose.bins=many")
    assert bad_value.returncode == 2
    assert len(bad_value.stderr.strip().splitlines()) == 1
    assert "config.pose.bins=many" in bad_value.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "hotdance_jax.demo", "--config", "configs/nothere.py"],
        capture_output=True, text=True, cwd=REPO, env=ENV)
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "configs/nothere.py" in missing.stderr


@pytest.mark.slow  # starts a Python process
def test_library_info_logs_are_quiet_unless_asked():
    """INFO lines and Orbax's read-only notice only when asked; other warnings always."""
    program = ("from absl import logging; from hotdance_jax import cli; "
               "cli.run(lambda argv: [logging.info('checkpoint saved'), "
               "logging.warning('Given directory is read only=%s', 'ckpt'), "
               "logging.warning('disk nearly full')] and None)")

    def stderr(*flags):
        return subprocess.run([sys.executable, "-c", program, *flags], capture_output=True,
                              text=True, cwd=REPO, env=ENV, check=True).stderr

    quiet, verbose = stderr(), stderr("-v", "0")
    assert "checkpoint saved" not in quiet
    assert "read only" not in quiet
    assert "disk nearly full" in quiet
    assert "checkpoint saved" in verbose
    assert "read only=ckpt" in verbose


@pytest.mark.slow  # starts a Python process
@pytest.mark.parametrize(("command", "given", "missing"), [
    ("data_pipeline.build", ["--root", "raw"], "--segments"),
    ("hotdance_jax.vae.train", ["--workdir", "run"], "--segments"),
    ("data_pipeline.precompute", ["--segments", "seg", "--vae", "raw-coords"], "--latents"),
    ("hotdance_jax.train", ["--workdir", "run"], "--latents"),
])
def test_every_command_names_its_inputs_the_same_way(tmp_path, command, given, missing):
    """--segments (a segment build) and --latents (a latent cache) on every command, and no
    config key that takes them a second way."""
    result = subprocess.run([sys.executable, "-m", command, *given], capture_output=True,
                            text=True, cwd=tmp_path, env={**ENV, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert missing in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # starts a Python process
@pytest.mark.parametrize("key", ["vae.train.segments", "train.latents",
                                 "train.dance_eval_segments"])
def test_the_removed_input_keys_are_refused(key):
    result = subprocess.run(
        [sys.executable, "-m", "hotdance_jax.train", f"--config.{key}=data", "--workdir", "run"],
        capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: config key '{key}' does not exist (check the --config.* overrides)"]


@pytest.mark.slow  # starts a Python process
def test_console_scripts_run_the_commands():
    """Each command has a console script beside `python -m`; the installed one runs it."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {f"hotdance-{name}" for name in (
        "build", "inspect", "train-vae", "precompute", "train", "sample", "evaluate", "demo",
        "studio")}
    for target in scripts.values():
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name))
    installed = Path(sys.executable).parent / "hotdance-train"
    result = subprocess.run([installed, "--workdir", "run"], capture_output=True, text=True,
                            cwd=REPO, env=ENV)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: --latents is required"]
