"""gs:// paths for the build's --root and --segments and the precompute's --segments, --latents
and --vae-weights, against a stand-in for gcsfs that keeps a bucket in a local folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from etils import epath
from etils.epath import backend
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

from data_pipeline import build, latents, precompute, segments
from hotdance_jax import io
from hotdance_jax.errors import InputError
from hotdance_jax.vae import load_autoencoder
from tests.conftest import REPO, tiny_config
from tests.test_build import assert_same_build, wild_corpus
from tests.test_source_aistpp import TEST, TRAIN, views_2d, write_dataset


class FakeGCS(DirFileSystem):
    """gcsfs as etils.epath calls it, over a local folder: gs://BUCKET/KEY is the file
    FOLDER/BUCKET/KEY; paths come back as gcsfs gives them (BUCKET/KEY, no scheme) and folders
    are made as files are written into them."""

    protocol = ("gs", "gcs")


@pytest.fixture
def bucket(tmp_path, monkeypatch) -> Iterator[Path]:
    """The local folder that holds gs://bucket/...: epath's gs:// calls go to it; the test runs
    in an empty folder `cwd`, where nothing may be written (a "gs:" folder)."""
    storage = tmp_path / "storage"
    (storage / "bucket").mkdir(parents=True)
    fake = FakeGCS(path=str(storage), fs=LocalFileSystem(auto_mkdir=True))
    local = LocalFileSystem()
    monkeypatch.setattr(backend.fsspec_backend, "fs",
                        lambda path: fake if os.fspath(path).startswith("gs://") else local)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    yield storage / "bucket"
    assert list((tmp_path / "cwd").iterdir()) == []


def gs(key: str) -> epath.Path:
    return io.as_path(f"gs://bucket/{key}")


def test_a_build_from_a_bucket_into_a_bucket_is_the_local_build(bucket, tmp_path, capsys):
    root, config = wild_corpus(tmp_path, 4)
    local = build.build("wild", root, tmp_path / "local", config)
    shutil.copytree(root, bucket / "raw")  # the songs the videos link to, copied
    (bucket / "seg").mkdir()
    (bucket / "seg" / segments.shard_name("train", 7)).write_bytes(b"a swap cut short")
    remote = build.build("wild", gs("raw"), gs("seg"), config)

    def named(text: str) -> str:
        return text.replace(str(root), "gs://bucket/raw")

    assert remote["root"] == "gs://bucket/raw"
    for key in ("counts", "stats", "parts", "shards", "skipped"):
        assert remote[key] == local[key], key
    assert remote["sequences"] == [{**s, "audio_path": named(s["audio_path"])}
                                   for s in local["sequences"]]
    assert remote["sequences"][0]["audio_path"].startswith("gs://bucket/raw/video")
    # The records name their music where it is: the one difference, which moves the hash.
    assert remote["content_hash"] != local["content_hash"]
    for split, count in local["counts"]["segments"].items():
        if not count:
            continue
        here = segments.SegmentStore(tmp_path / "local", split)
        there = segments.SegmentStore(bucket / "seg", split)
        for a, b in zip(here.__getitems__(range(count)), there.__getitems__(range(count)),
                        strict=True):
            assert b.pop("audio_path") == named(a.pop("audio_path"))
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(b[key], a[key])
    assert segments.read_manifest(gs("seg")) == json.loads(json.dumps(remote))
    assert sorted(p.name for p in bucket.iterdir()) == ["raw", "seg"]  # no seg.parts left
    assert segments.shard_name("train", 7) not in os.listdir(bucket / "seg")
    capsys.readouterr()
    assert build.build("wild", gs("raw"), gs("seg"), config)["created"] == remote["created"]
    assert "gs://bucket/seg: up to date" in capsys.readouterr().out

    # From a local root into the bucket: the local build, byte for byte.
    build.build("wild", root, gs("seg2"), config)
    assert_same_build(tmp_path / "local", bucket / "seg2")
    (bucket / "thesis").mkdir()
    (bucket / "thesis" / "thesis.tex").write_text("...")
    with pytest.raises(InputError, match=r"^gs://bucket/thesis: exists and is not a segment "):
        build.build("wild", root, gs("thesis"), config)


def test_hosts_share_the_work_folder_in_the_bucket_and_a_build_resumes(
        bucket, tmp_path, monkeypatch, capsys):
    root, config = wild_corpus(tmp_path, 4)
    build.build("wild", root, tmp_path / "local", config)
    out, work = gs("seg"), bucket / "seg.parts"
    assert build.build("wild", root, out, config, num_shards=2, shard_index=1) is None
    first, *shards = sorted(os.listdir(work))  # written by this host; the other's come beside
    assert first == "part-00001.json"
    listed = json.loads((work / first).read_text())["shards"].values()
    assert shards == sorted(shard["name"] for shard in listed)

    def full_disk(part, digest, work):  # only part 0 gets here: part 1 is in the bucket
        raise OSError(28, "No space left on device")

    failed = ("1 of 2 parts failed (0); part 0 (video00000 .. video00001): OSError: [Errno 28] "
              "No space left on device; the finished parts stay in gs://bucket/seg.parts: run "
              "again to resume")
    with monkeypatch.context() as patch:  # the fake bucket stays patched after it
        patch.setattr(build, "build_part", full_disk)
        with pytest.raises(InputError, match=f"^{re.escape(failed)}$"):
            build.build("wild", root, out, config)
    capsys.readouterr()
    build.build("wild", root, out, config)
    assert "gs://bucket/seg.parts: 2 parts, 1 of this shard's 2 built before" in \
        capsys.readouterr().out
    assert_same_build(tmp_path / "local", bucket / "seg")
    assert not work.exists()


def test_sources_of_one_part_build_from_a_bucket(bucket, tmp_path):
    """AIST++ (one part) reads a local copy of the whole root; bad input is named by its gs://
    path. The generated source writes its raw files into the bucket, as a local build does."""
    write_dataset(tmp_path / "raw", keypoints2d={TRAIN: views_2d(150), TEST: views_2d(150)},
                  splits={"train": [TRAIN], "test": [TEST]})
    config = tiny_config()
    config.pose.segment_frames = 32
    local = build.build("aistpp", tmp_path / "raw", tmp_path / "aistpp", config)
    shutil.copytree(tmp_path / "raw", bucket / "raw")
    remote = build.build("aistpp", gs("raw"), gs("aistpp"), config)
    assert remote["counts"] == local["counts"]
    assert remote["sequences"] == [
        {**s, "audio_path": s["audio_path"].replace(str(tmp_path / "raw"), "gs://bucket/raw")}
        for s in local["sequences"]]
    (bucket / "raw" / "keypoints2d" / f"{TRAIN}.pkl").write_bytes(b"not a pickle")
    bad = rf"^aistpp: cannot read gs://bucket/raw/keypoints2d/{TRAIN}\.pkl: "
    with pytest.raises(InputError, match=bad):
        build.build("aistpp", gs("raw"), gs("aistpp"), tiny_config())
    assert segments.read_manifest(gs("aistpp")) == json.loads(json.dumps(remote))

    local = build.build("synthetic", tmp_path / "synthetic", tmp_path / "segments", tiny_config())
    remote = build.build("synthetic", gs("synthetic"), gs("segments"), tiny_config())
    assert remote["counts"] == local["counts"]
    assert sorted(os.listdir(bucket / "synthetic")) == sorted(os.listdir(tmp_path / "synthetic"))
    assert remote["sequences"][0]["audio_path"].startswith("gs://bucket/synthetic/")


def test_a_precompute_from_a_bucket_into_a_bucket_is_the_local_cache(cache, bucket, capsys):
    root, config, autoencoder, local = cache
    shutil.copytree(root / "segments", bucket / "segments")
    remote = precompute.precompute(gs("segments"), autoencoder, gs("latents"), config)
    assert remote["content_hash"] == local["content_hash"]  # the same shards, byte for byte
    assert remote["segments"]["directory"] == "gs://bucket/segments"
    expected = {**local, "created": remote["created"],
                "segments": {**local["segments"], "directory": "gs://bucket/segments"}}
    assert remote == expected
    assert latents.read_manifest(gs("latents")) == json.loads(json.dumps(remote))
    for name in (n for names in local["shards"].values() for n in names):
        assert (bucket / "latents" / name).read_bytes() == (root / "latents" / name).read_bytes()
    assert len(latents.LatentStore(bucket / "latents", "train")) == local["counts"]["train"]
    assert sorted(p.name for p in bucket.iterdir()) == ["latents", "segments"]
    capsys.readouterr()
    again = precompute.precompute(gs("segments"), autoencoder, gs("latents"), config)
    assert again["created"] == remote["created"]
    assert "gs://bucket/latents: up to date" in capsys.readouterr().out


def test_weights_in_a_bucket_load_as_the_local_file_and_keep_their_name(bucket, tmp_path):
    import jax
    from flax import nnx

    from hotdance_jax.vae.kl import AutoencoderKL, KLConfig, save_onehot_kl

    arch = KLConfig(in_channels=36, out_channels=72, block_out_channels=(8, 8), layers_per_block=1,
                    latent_channels=4, norm_num_groups=4, mid_block_add_attention=False)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: AutoencoderKL(arch, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda x: rng.normal(0, 0.2, x.shape).astype(x.dtype), state)
    save_onehot_kl(tmp_path / "vae.msgpack", nnx.merge(graphdef, state), arch)
    shutil.copy(tmp_path / "vae.msgpack", bucket / "vae.msgpack")
    remote = precompute.load_weights("onehot-kl", "gs://bucket/vae.msgpack", tiny_config())
    local = load_autoencoder("onehot-kl", str(tmp_path / "vae.msgpack"), 36)
    assert remote.weights == "gs://bucket/vae.msgpack"
    assert (remote.weights_sha256, remote.stride, remote.latent_channels) == (
        local.weights_sha256, local.stride, local.latent_channels)


def test_a_path_whose_storage_cannot_be_reached_is_named_in_one_line(monkeypatch):
    def refused(path):
        raise OSError("Forbidden: 403 caller has no storage.objects.list access\n{json...}")

    monkeypatch.setattr(backend.fsspec_backend, "fs", refused)
    with pytest.raises(InputError) as error:
        io.reach("gs://other/raw")
    assert str(error.value) == ("gs://other/raw: cannot be reached (OSError: Forbidden: 403 "
                                "caller has no storage.objects.list access)")
    io.reach("no/such/local/folder")  # local paths are the commands' own business


@pytest.mark.slow  # starts a Python process
def test_the_commands_name_a_bucket_they_cannot_reach(tmp_path):
    try:
        import gcsfs  # noqa: F401
        pytest.skip("gcsfs is installed: the commands would go to the network")
    except ImportError:
        pass
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for uri, command in (
            ("gs://b/raw", ["data_pipeline.build", "--source", "wild", "--root", "gs://b/raw",
                            "--segments", str(tmp_path / "seg")]),
            ("gs://b/latents", ["data_pipeline.precompute", "--segments", str(tmp_path / "seg"),
                                "--latents", "gs://b/latents", "--vae", "raw-coords"])):
        done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True,
                              env=env, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"error: {uri}: cannot be reached (ImportError: "), line
    assert list(tmp_path.iterdir()) == []
