"""The latent cache in parts: shards of processes merged, resume, failed parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_pipeline import build, latents, precompute
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.errors import InputError
from hotdance_jax.vae import load_autoencoder
from tests.conftest import LATENT_CHANNELS, REPO, xla_flags

STATISTICS = ("scale", "shift", "music_scale", "music_shift")


def assert_same_cache(expected: Path, actual: Path) -> None:
    """The same manifest but for "created" (statistics within 1e-6 relative) and the same records
    (float16 latents within their rounding: a batch may have run with other records or devices)."""
    one, other = latents.read_manifest(expected), latents.read_manifest(actual)
    for manifest in (one, other):
        manifest.pop("created")
        manifest.pop("content_hash")
    for key in STATISTICS:
        np.testing.assert_allclose(other.pop(key), one.pop(key), rtol=1e-6)
    assert other == one
    for split in one["counts"]:
        stores = latents.LatentStore(expected, split), latents.LatentStore(actual, split)
        assert len(stores[0]) == len(stores[1]) == one["counts"][split]
        for a, b in ((stores[0][i], stores[1][i]) for i in range(len(stores[0]))):
            assert a.keys() == b.keys()
            for key in a:
                if key in ("latent", "references"):
                    np.testing.assert_allclose(b[key].astype(np.float32), a[key], rtol=2e-3,
                                               atol=1e-4)
                else:
                    np.testing.assert_array_equal(b[key], a[key])


def test_two_shards_merged_equal_the_one_process_cache(cache, tmp_path, capsys):
    root, config, autoencoder, manifest = cache
    assert manifest["parts"] == 6  # 16 train records in parts of 5, then val and test
    out, work = tmp_path / "sharded", build.work_folder(tmp_path / "sharded")
    assert precompute.precompute(root / "segments", autoencoder, out, config, num_shards=2,
                                 shard_index=1) is None
    assert not out.exists()
    assert sorted(p.name for p in work.glob("part-*.json")) == [
        "part-00001.json", "part-00003.json", "part-00005.json"]
    assert sorted(p.name for p in work.glob("*.array_record")) == [
        "latents-test-00000.array_record", "latents-train-00001.array_record",
        "latents-train-00003.array_record"]
    with pytest.raises(InputError, match=r"sharded\.parts: 3 of 6 parts not made \(0, 2, 4\); "):
        precompute.merge(root / "segments", autoencoder, out, config)
    other_weights = precompute.pooling_autoencoder(36, LATENT_CHANNELS, seed=1)
    with pytest.raises(InputError, match=r"part-00001\.json: made from other segments, weights "
                                         r"or settings than this cache's; run its shard again$"):
        precompute.merge(root / "segments", other_weights, out, config)
    with pytest.raises(InputError, match=r"^--num-shards 2, --shard-index 2: expected 0 <= "):
        precompute.precompute(root / "segments", autoencoder, out, config, num_shards=2,
                              shard_index=2)
    precompute.precompute(root / "segments", autoencoder, out, config, num_shards=2,
                          shard_index=0)
    merged = precompute.merge(root / "segments", autoencoder, out, config)
    assert merged["scale"] == manifest["scale"]  # the same sums, added in the same order
    assert_same_cache(root / "latents", out)
    assert not work.exists()
    capsys.readouterr()
    again = precompute.precompute(root / "segments", autoencoder, out, config)
    assert again["fingerprint"] == manifest["fingerprint"]
    assert "up to date" in capsys.readouterr().out


def test_a_failed_part_is_named_in_one_line_and_the_precompute_resumes(
        cache, tmp_path, monkeypatch, capsys):
    root, config, autoencoder, _ = cache
    out, work = tmp_path / "latents", build.work_folder(tmp_path / "latents")
    encode_part, made = precompute.encode_part, []

    def full_disk(part, *args):
        if part.index == 2:
            raise OSError(28, "No space left on device")
        made.append(part.index)
        return encode_part(part, *args)

    monkeypatch.setattr(precompute, "encode_part", full_disk)
    with pytest.raises(InputError) as error:
        precompute.precompute(root / "segments", autoencoder, out, config)
    assert str(error.value) == (
        "1 of 6 parts failed (2); part 2 (train records 10-14): OSError: [Errno 28] No space "
        f"left on device; the finished parts stay in {work}: run again to resume")
    assert made == [0, 1, 3, 4, 5]
    assert not out.exists()
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("*.array_record")}
    assert len(kept) == 5

    made.clear()
    monkeypatch.setattr(precompute, "encode_part",
                        lambda part, *args: made.append(part.index) or encode_part(part, *args))
    capsys.readouterr()
    precompute.precompute(root / "segments", autoencoder, out, config)
    assert made == [2]
    assert f"{work}: 6 parts, 5 of this shard's 6 made before" in capsys.readouterr().out
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # linked, not redone
    assert_same_cache(root / "latents", out)
    assert not work.exists()


def test_parts_of_other_weights_or_cut_short_are_made_again(cache, tmp_path, monkeypatch):
    root, config, autoencoder, _ = cache
    out, work = tmp_path / "latents", build.work_folder(tmp_path / "latents")
    precompute.precompute(root / "segments", autoencoder, out, config, num_shards=3,
                          shard_index=0)  # parts 0 and 3
    other_weights = precompute.pooling_autoencoder(36, LATENT_CHANNELS, seed=1)
    precompute.precompute(root / "segments", other_weights, out, config, num_shards=3,
                          shard_index=1)  # parts 1 and 4, of another cache
    shard = work / "latents-train-00000.array_record"
    shard.write_bytes(shard.read_bytes()[:100])
    encode_part, made = precompute.encode_part, []
    monkeypatch.setattr(precompute, "encode_part",
                        lambda part, *args: made.append(part.index) or encode_part(part, *args))
    precompute.precompute(root / "segments", autoencoder, out, config)
    assert made == [0, 1, 2, 4, 5]
    assert_same_cache(root / "latents", out)


# ---------------------------------------------------------------- the command, in processes


def command_config():
    """What `--config configs/tiny_cpu.py --config.latents.records_per_shard=5` gives."""
    config = sibling_config(REPO / "configs" / "tiny_cpu.py", "tiny_cpu")
    config.latents.records_per_shard = 5
    return config


def command(segments_dir: Path, out: Path, *flags: str) -> list[str]:
    """The precompute command with the raw-coords autoencoder (no weights file to make)."""
    return [sys.executable, "-m", "data_pipeline.precompute", "--segments", str(segments_dir),
            "--vae", "raw-coords", "--latents", str(out), "--config",
            str(REPO / "configs" / "tiny_cpu.py"), "--config.latents.records_per_shard=5", *flags]


def environment(devices: int = 1) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO),
            "XLA_FLAGS": xla_flags(f"--xla_force_host_platform_device_count={devices}")}


@pytest.fixture(scope="module")
def raw_coords_cache(cache, tmp_path_factory) -> Path:
    """The one-process raw-coords cache of the fixture's segments, made in this process."""
    out = tmp_path_factory.mktemp("raw_coords") / "latents"
    config = command_config()
    autoencoder = load_autoencoder("raw-coords", "", 36, bins=config.pose.bins)
    precompute.precompute(cache[0] / "segments", autoencoder, out, config)
    return out


@pytest.mark.slow  # starts three Python processes
def test_two_processes_merged_equal_the_one_process_cache(cache, raw_coords_cache, tmp_path):
    """Two shard processes of 2 CPU devices each, run at the same time, then --merge."""
    segments_dir, out = cache[0] / "segments", tmp_path / "latents"
    shards = [subprocess.Popen(command(segments_dir, out, "--num-shards", "2", "--shard-index",
                                       str(i)),
                               env=environment(2), cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for i in range(2)]
    for i, process in enumerate(shards):
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        assert f"shard {i} of 2 made; when every shard is, run the same command with --merge" in (
            stdout)
    work = build.work_folder(out)
    assert len(list(work.glob("part-*.json"))) == 6
    assert not out.exists()
    merged = subprocess.run(command(segments_dir, out, "--merge"), env=environment(),
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert "{'train': 16, 'val': 4, 'test': 4} records" in merged.stdout
    assert_same_cache(raw_coords_cache, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents"]


def kill_when(process: subprocess.Popen, path: Path, seconds: float = 300) -> None:
    """Kills `process` as soon as `path` exists; fails if it ends or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear while the process ran")
        time.sleep(0.02)
    process.kill()
    process.wait()


@pytest.mark.slow  # starts two Python processes
def test_a_killed_precompute_resumes_from_its_finished_parts(cache, raw_coords_cache, tmp_path,
                                                             capsys):
    """Killed after its first part; then a run whose last part fails names it in one line,
    exits 1, and makes none of the finished parts again; then the rest."""
    segments_dir, out = cache[0] / "segments", tmp_path / "latents"
    work = build.work_folder(out)
    process = subprocess.Popen(command(segments_dir, out), env=environment(), cwd=tmp_path,
                               stdout=subprocess.DEVNULL)
    kill_when(process, work / "part-00000.json")
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("part-*.json")}
    assert 1 <= len(kept) < 6
    assert not out.exists()

    (work / "latents-test-00000.array_record").mkdir()  # the last part cannot write its shard
    failed = subprocess.run(command(segments_dir, out), env=environment(), cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1
    assert failed.stderr.strip().count("\n") == 0
    assert failed.stderr.startswith(
        "error: 1 of 6 parts failed (5); part 5 (test records 0-3): IsADirectoryError: ")
    assert failed.stderr.strip().endswith(f"the finished parts stay in {work}: run again to resume")
    assert f"6 parts, {len(kept)} of this shard's 6 made before" in failed.stdout
    assert {name: (work / name).stat().st_mtime_ns for name in kept} == kept
    assert json.loads((work / "part-00004.json").read_text())["split"] == "val"

    (work / "latents-test-00000.array_record").rmdir()
    config = command_config()
    capsys.readouterr()
    precompute.precompute(segments_dir, load_autoencoder("raw-coords", "", 36, bins=64), out,
                          config)
    assert "6 parts, 5 of this shard's 6 made before" in capsys.readouterr().out
    assert_same_cache(raw_coords_cache, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents"]
