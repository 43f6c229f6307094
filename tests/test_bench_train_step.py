"""bench/train_step.py's reading of a jax.profiler CPU trace (a small trace written here)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench import train_step as bench
from hotdance_jax import parallel


def _write_trace(directory: Path, events: list[dict]) -> None:
    threads = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}}
               for tid, name in ((10, "tf_XLAEigen/1"), (11, "tf_XLAPjRtCpuClient/2"),
                                 (12, "python"))]
    folder = directory / "plugins" / "profile" / "2026_11_26_00_00_00"
    folder.mkdir(parents=True)
    (folder / "perfetto_trace.json.gz").write_bytes(
        gzip.compress(json.dumps({"traceEvents": threads + events}).encode()))


def _span(tid: int, name: str, start: float, duration: float) -> dict:
    return {"ph": "X", "pid": 1, "tid": tid, "name": name, "ts": start, "dur": duration}


def test_op_time_is_self_time_per_kind_and_step(tmp_path):
    _write_trace(tmp_path, [
        # thread 10: an executor span holding a while (its body: two fusions), then a dot
        _span(10, "ThunkExecutor::Execute", 0, 1000),
        _span(10, "while.3", 0, 600),
        _span(10, "ynn_fusion.1", 100, 200),
        _span(10, "ynn_fusion.2", 300, 250),
        _span(10, "dot", 700, 100),
        # thread 11: a wait, and a fusion of the same kind as thread 10's
        _span(11, "ThunkExecutor::Execute (wait for completion)", 0, 900),
        _span(11, "ynn_fusion.7", 0, 50),
        _span(12, "ynn_fusion.9", 0, 5000),  # the Python thread: not XLA's
    ])
    kinds = dict(bench.op_time_by_kind(tmp_path, steps=2))
    assert kinds == pytest.approx({"ynn_fusion": 0.25, "while": 0.075, "dot": 0.05,
                                   "ThunkExecutor::Execute": 0.15})
    assert next(iter(bench.op_time_by_kind(tmp_path, steps=2)))[0] == "ynn_fusion"


@pytest.mark.slow  # traces an autoencoder's train step twice
def test_the_autoencoders_step_is_set_up_on_crops_of_its_config():
    """What `--model vae` times: the autoencoder's Trainer on random crops of its config's shape
    (the FLOPs from the step as lowered; nothing compiled here)."""
    from tests.test_vae_train import micro_config

    config = micro_config()
    mesh = parallel.make_mesh((1, -1, 1))
    trainer, batch, compute, pixels = bench.vae_setup(config, 2, mesh)
    assert batch["keypoints"].shape == (2, 16, 18, 2)  # crops of vae.train.crop_frames
    assert batch["confidence"].shape == (2, 16, 18)
    assert ((batch["keypoints"] >= 0) & (batch["keypoints"] < batch["size"][:, None, None])).all()
    assert (pixels, compute) == (32 * 16, "float32, 32 bins x 16 frames")
    assert config.vae.train.batch_size == 2
    small = trainer.model_flops(parallel.global_batch(batch, mesh))
    trainer, batch, *_ = bench.vae_setup(config, 4, mesh)
    large = trainer.model_flops(parallel.global_batch(batch, mesh))
    assert large == pytest.approx(2 * small, rel=0.02)  # the optimizer's FLOPs do not double
