"""Sharded training on 8 CPU devices (a subprocess: the device count is fixed at jax's start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import xla_flags
from tests.test_build import REPO

pytestmark = pytest.mark.slow  # trains or starts processes: make test-fast skips it


def test_a_sharded_step_equals_a_one_device_step_and_shards_the_weights(cache):
    env = {**os.environ, "XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=8"),
           "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "tests.sharded_checks", str(cache[0])],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["devices"] == 8
    assert abs(figures["loss_single"] - figures["loss_sharded"]) < 1e-5 * figures["loss_single"]
    assert figures["update_max_error"] < 1e-4 * figures["update_max"]
    # the same step's FLOPs, split over the 8 devices (MFU is per device)
    assert figures["flops_per_device_sharded"] == pytest.approx(
        figures["flops_per_device_single"] / 8, rel=1e-3)
    # fsdp = 4 splits every weight matrix; tensor = 2 splits the heads and MLP hidden units too.
    fsdp = 4
    assert figures["param_bytes_per_device"] < 1.1 * figures["param_bytes_total"] / fsdp
    assert figures["optimizer_bytes_per_device"] < 1.1 * figures["optimizer_bytes_total"] / fsdp
