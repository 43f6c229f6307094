"""The paper's ablations through the whole pipeline: raw coordinates (the raw-coords cache made by
the precompute command), then no reference conditioning with sequential temporal indices on it,
each trained a few steps and sampled over two segments."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipeline import build, latents
from hotdance_jax import sample, train
from hotdance_jax.pose import decode
from hotdance_jax.vae import load_autoencoder
from tests.test_build import REPO, tiny_config
from tests.test_pose import bin_error
from tests.test_sample import song_file

pytestmark = pytest.mark.slow  # trains or starts processes: make test-fast skips it

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def raw_cache(tmp_path_factory):
    """(root, config): tiny synthetic segments (64 bins, 64 frames) in root/segments, their
    raw-coords latents in root/latents, and a config training a tiny DiT on them."""
    root = tmp_path_factory.mktemp("raw")
    config = tiny_config()
    build.build("synthetic", root / "raw", root / "segments", config)
    made = subprocess.run(
        [sys.executable, "-m", "data_pipeline.precompute", "--segments", str(root / "segments"),
         "--vae", "raw-coords", "--latents", str(root / "latents"),
         "--config", str(REPO / "configs" / "tiny_cpu.py")],
        capture_output=True, text=True, env=ENV, cwd=root, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    config.vae.name = "raw-coords"
    config.latents.workers = 0
    config.model.update(width=32, depth=1, heads=2)
    config.train.update(batch_size=4, steps=2, warmup_steps=1, log_every=1, eval_every=2,
                        eval_batches=1, checkpoint_every=2)
    return root, config


def test_raw_cache_has_one_latent_row_that_decodes_to_the_poses(raw_cache):
    root, _ = raw_cache
    manifest = latents.read_manifest(root / "latents")
    autoencoder = load_autoencoder("raw-coords", "", 36, bins=64)
    assert manifest["latent_shape"] == [1, 8, 8 * 54]
    assert manifest["vae"] == {"name": "raw-coords", "weights_sha256": autoencoder.weights_sha256,
                               "stride": [64, 8], "latent_channels": 432}
    assert manifest["vae_weights"] == ""
    record = latents.LatentStore(root / "latents")[3]
    frame = (record["width"], record["height"])
    images = autoencoder.decode(record["latent"][None].astype(np.float32))
    keypoints, confidence = decode(images, *frame)
    visible = record["confidence"] > 0
    np.testing.assert_array_equal(np.asarray(confidence)[0] > 0, visible)
    # float16 storage moves a coordinate by at most 2^-11 (0.03 bin at 64 bins): same bin
    assert bin_error(keypoints[0], record["keypoints"], 64, frame)[visible].max() <= 0.5 + 1e-3


@pytest.mark.parametrize("model", [{}, {"reference": False, "temporal_index": "sequential"}],
                         ids=["raw", "no-reference-sequential"])  # two ablations in one run: faster
def test_ablation_trains_and_samples_a_two_segment_dance(raw_cache, tmp_path, model):
    config = raw_cache[1].copy_and_resolve_references()
    config.model.update(model)
    metrics = train.train(config, raw_cache[0] / "latents", tmp_path / "run")
    assert np.isfinite([metrics["loss"], metrics["val_loss"]]).all()
    generator = sample.DanceGenerator.load(tmp_path / "run")
    dit = generator.model_config
    assert (dit.latent_bins, dit.latent_frames, dit.latent_channels) == (1, 8, 432)
    assert (dit.reference, dit.temporal_index) == (model.get("reference", True),
                                                   model.get("temporal_index", "shared"))
    song = sample.load_song(song_file(tmp_path / "song.wav", 3.0), generator.config, 30.0)
    shape = generator.mean_dancer(512, 512)
    [dance] = generator.generate([song], shape, width=512, height=512, steps=2)
    assert dance.keypoints.shape == (90, 18, 2)  # 2 segments of 64 frames, 16 shared
    visible = dance.confidence > 0
    assert visible.mean() > 0.1
    assert np.isfinite(dance.keypoints[visible]).all()
    if not dit.reference:  # the dancer's shape pose reaches nothing
        moved = (shape[0] + [40.0, -30.0], shape[1])
        [other] = generator.generate([song], moved, width=512, height=512, steps=2)
        np.testing.assert_array_equal(other.keypoints, dance.keypoints)
        (tmp_path / "pose.json").write_text(json.dumps(np.nan_to_num(shape[0]).tolist()))
        refused = subprocess.run(
            [sys.executable, "-m", "hotdance_jax.sample", "--workdir", str(tmp_path / "run"),
             "--music", str(tmp_path / "song.wav"), "--out", str(tmp_path / "dance.npz"),
             "--reference", str(tmp_path / "pose.json")],
            capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines()[-1].endswith(
            "this run's DiT takes no reference (config.model.reference = False)")
        assert not (tmp_path / "dance.npz").exists()
