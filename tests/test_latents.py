"""The latent cache: records, statistics, no-op and rebuilds, damage, the precompute command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from data_pipeline import build, latents, loader, precompute, segments
from hotdance_jax.errors import InputError
from hotdance_jax.pose import flip_horizontal, onehot, prefix_frames, reference_pose
from hotdance_jax.vae import Refinement, load_autoencoder
from tests.conftest import LATENT_CHANNELS, latent_config, random_onehot_kl
from tests.test_build import REPO, build_real_aistpp, tiny_config


def encode_poses(autoencoder, keypoints, confidence, record, bins):
    """The latent of one pose sequence, encoded here by hand: (B', T', c)."""
    image = onehot.encode(keypoints, confidence, record["width"], record["height"], bins)
    return np.asarray(autoencoder.encode(image[None]))[0]


def assert_stored(stored, expected):
    """float16 storage: equal within its rounding."""
    np.testing.assert_allclose(stored.astype(np.float32), expected, rtol=2e-3, atol=1e-4)


def test_keyframe_patterns_are_encoded_as_more_references(cache, tmp_path):
    """With config.latents.keyframe_patterns = 2: 2 random patterns of each kind per record,
    the same for the same record whenever the cache is made, each encoded as a reference."""
    root, config, autoencoder, _ = cache
    config = config.copy_and_resolve_references()
    config.latents.keyframe_patterns = 2
    manifest = precompute.precompute(root / "segments", autoencoder, tmp_path / "a", config)
    assert manifest["settings"]["keyframe_patterns"] == 2
    store = latents.LatentStore(tmp_path / "a")
    frames = len(config.latents.reference_frames)
    record = store[3]
    known = record["keyframe_known"]
    assert known.shape == (4, 64)
    assert known.dtype == bool
    assert record["references"].shape == (frames + 4, 8, 8, LATENT_CHANNELS)
    segment = segments.SegmentStore(root / "segments")[3]
    poses = [segment[k] for k in ("keypoints", "confidence", "shape_keypoints",
                                  "shape_confidence")]
    for j in range(4):
        assert 0 < known[j].sum() < 64
        expected = encode_poses(autoencoder, *reference_pose(*poses, known[j]), record, 64)
        assert_stored(record["references"][frames + j], expected)
    assert not np.array_equal(known, store[4]["keyframe_known"])  # drawn per record
    precompute.precompute(root / "segments", autoencoder, tmp_path / "b", config)
    np.testing.assert_array_equal(latents.LatentStore(tmp_path / "b")[3]["keyframe_known"],
                                  known)
    assert "keyframe_known" not in latents.LatentStore(root / "latents")[3]  # prefixes only


def test_records_equal_encoding_by_hand(cache):
    root, config, autoencoder, manifest = cache
    assert manifest["counts"] == {"train": 16, "val": 4, "test": 4}  # 8 train segments, mirrored
    assert manifest["latent_shape"] == [8, 8, LATENT_CHANNELS]
    assert len(manifest["shards"]["train"]) == 4
    frames = config.latents.reference_frames
    store, segment_store = latents.LatentStore(root / "latents"), segments.SegmentStore(
        root / "segments")
    for index in (1, 8 + 1):  # a segment, then its mirrored copy
        record, segment = store[index], segment_store[1]
        assert record["flipped"] == (index >= 8)
        assert record["latent"].shape == (8, 8, LATENT_CHANNELS)
        assert record["latent"].dtype == np.float16
        assert record["references"].shape == (len(frames), 8, 8, LATENT_CHANNELS)
        assert record["music"].shape == (64, 35)
        assert record["sequence_id"] == segment["sequence_id"]
        assert record["start_frame"] == segment["start_frame"]
        np.testing.assert_array_equal(record["music"], segment["music"])
        poses = [segment[k] for k in ("keypoints", "confidence", "shape_keypoints",
                                      "shape_confidence")]
        if record["flipped"]:
            poses = [*flip_horizontal(*poses[:2], segment["width"]),
                     *flip_horizontal(*poses[2:], segment["width"])]
        np.testing.assert_array_equal(record["keypoints"], poses[0])
        assert_stored(record["latent"], encode_poses(autoencoder, *poses[:2], record, 64))
        for n, reference in zip(frames, record["references"], strict=True):
            known = prefix_frames(n, len(poses[0]))
            expected = encode_poses(autoencoder, *reference_pose(*poses, known), record, 64)
            assert_stored(reference, expected)
    assert not np.allclose(store[1]["latent"], store[9]["latent"])
    val = latents.LatentStore(root / "latents", "val")[0]
    assert val["split"] == "val"
    assert not val["flipped"]


def test_manifest_normalises_train_latents(cache):
    root, _, autoencoder, manifest = cache
    store = latents.LatentStore(root / "latents")
    train = np.stack([store[i]["latent"] for i in range(len(store))]).astype(np.float32)
    scale, shift = latents.scale_shift(manifest)
    normalised = ((train - shift) * scale).reshape(-1, LATENT_CHANNELS)
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(normalised.std(axis=0), 1.0, rtol=1e-3)
    music = np.stack([store[i]["music"] for i in range(len(store))]).reshape(-1, 35)
    music_scale, music_shift = latents.scale_shift(manifest, "music")
    varying = music.std(axis=0) > 1e-6
    normalised_music = (music - music_shift) * music_scale
    np.testing.assert_allclose(normalised_music.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(normalised_music.std(axis=0)[varying], 1.0, rtol=1e-3)
    records = [store[i] for i in range(len(store))]
    fractions = np.stack([r["shape_keypoints"] / [r["width"], r["height"]] for r in records])
    visible = np.stack([r["shape_confidence"] for r in records]) > 0
    assert visible.any(axis=0).sum() >= 14  # the synthetic dancer shows most joints
    for k in np.flatnonzero(visible.any(axis=0)):
        np.testing.assert_allclose(manifest["mean_dancer"]["keypoints"][k],
                                   fractions[visible[:, k], k].mean(axis=0), rtol=1e-6)
    assert manifest["vae"]["weights_sha256"] == autoencoder.weights_sha256
    segment_manifest = segments.read_manifest(root / "segments")
    assert manifest["segments"]["content_hash"] == segment_manifest["content_hash"]
    assert manifest["settings"]["reference_frames"] == [0, 16]  # configs/tiny_cpu.py's


def test_rerun_is_a_no_op_and_other_inputs_rebuild(cache, tmp_path, capsys):
    root, config, autoencoder, manifest = cache
    out = tmp_path / "latents"
    shutil.copytree(root / "latents", out)
    shard = out / manifest["shards"]["train"][0]
    before = shard.stat().st_mtime_ns
    again = precompute.precompute(root / "segments", autoencoder, out, config)
    assert again["fingerprint"] == manifest["fingerprint"]
    assert shard.stat().st_mtime_ns == before
    assert "up to date" in capsys.readouterr().out

    other_weights = precompute.pooling_autoencoder(36, LATENT_CHANNELS, seed=1)
    rebuilt = precompute.precompute(root / "segments", other_weights, out, config)
    assert rebuilt["vae"]["weights_sha256"] == other_weights.weights_sha256
    assert not np.allclose(latents.LatentStore(out)[0]["latent"],
                           latents.LatentStore(root / "latents")[0]["latent"])

    other_bins = config.copy_and_resolve_references()
    other_bins.pose.bins = 128
    rebuilt = precompute.precompute(root / "segments", other_weights, out, other_bins)
    assert rebuilt["latent_shape"] == [16, 8, LATENT_CHANNELS]
    assert latents.LatentStore(out)[0]["latent"].shape == (16, 8, LATENT_CHANNELS)

    other_segments = tmp_path / "segments"
    build.build("synthetic", root / "raw", other_segments, tiny_config(segment_stride=64))
    rebuilt = precompute.precompute(other_segments, other_weights, out, config)
    assert rebuilt["counts"] == {"train": 8, "val": 2, "test": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents", "segments"]


def test_refuses_a_folder_that_is_not_a_cache_and_mismatched_segments(cache, tmp_path):
    root, config, autoencoder, _ = cache
    with pytest.raises(InputError, match="not a latent cache"):
        precompute.precompute(root / "segments", autoencoder, root / "segments", config)
    other_fps = config.copy_and_resolve_references()
    other_fps.pose.fps = 25.0
    with pytest.raises(InputError, match=r"pose\.fps = 30\.0, the config has 25\.0"):
        precompute.precompute(root / "segments", autoencoder, tmp_path / "out", other_fps)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("key", "value", "match"), [
    ("vae.name", "taef2", "vae = 'pooling', the config has 'taef2'"),
    ("pose.bins", 128, "bins = 64"),
    ("latents.reference_frames", (0, 8), "reference_frames"),
    ("latents.flip", False, "flip"),
    ("pose.hand_zoom", 4.0, r"hand_zoom = None, the config has 4\.0"),
])
def test_loader_refuses_a_cache_made_otherwise(cache, key, value, match):
    root, config, _, _ = cache
    config = config.copy_and_resolve_references()
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(InputError, match=match) as error:
        loader.train_dataset(root / "latents", config, batch_size=2)
    assert "\n" not in str(error.value)


def test_a_setting_only_the_cache_has_is_refused(cache):
    """A cache of hands in their wrists' frames serves no config that reads them in the
    frame's coordinates."""
    root, config, _, _ = cache
    manifest = latents.read_manifest(root / "latents")
    latents.check_settings(root / "latents", manifest, config)
    manifest["settings"]["hand_zoom"] = 4.0
    with pytest.raises(InputError, match=r"made with hand_zoom = 4\.0, the config has None"):
        latents.check_settings(root / "latents", manifest, config)


def test_damaged_caches_are_refused_and_rebuilt(cache, tmp_path):
    root, config, autoencoder, manifest = cache
    out = tmp_path / "latents"
    shutil.copytree(root / "latents", out)
    shard = out / manifest["shards"]["train"][1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(InputError, match="train latent shard is unreadable"):
        loader.train_dataset(out, config, batch_size=2)
    (out / manifest["shards"]["val"][0]).unlink()
    with pytest.raises(InputError, match="missing latent shard"):
        latents.LatentStore(out, "val")
    edited = json.loads((out / latents.MANIFEST).read_text())
    edited["counts"]["test"] += 1
    (out / latents.MANIFEST).write_text(json.dumps(edited))
    with pytest.raises(InputError, match="the manifest says 5"):
        latents.LatentStore(out, "test")
    with pytest.raises(InputError, match="not a latent cache"):
        latents.LatentStore(root / "segments")
    precompute.precompute(root / "segments", autoencoder, out, config)  # not "up to date"
    assert len(latents.LatentStore(out, "train")) == 16


def test_refined_latents_are_the_poses_and_the_cache_says_so(cache, tmp_path):
    """config.latents.refine_steps: each record's latent is its poses' encoding refined by hand,
    its references the encoder's own (as the sampler encodes them); the manifest records the
    refinement, and a config without it is refused the cache."""
    root, config, _, _ = cache
    config = config.copy_and_resolve_references()
    config.vae.name = "onehot-kl"
    config.latents.refine_steps = 3
    weights = str(random_onehot_kl(tmp_path / "vae.msgpack", 36))
    autoencoder = precompute.load_weights("onehot-kl", weights, config)
    manifest = precompute.precompute(root / "segments", autoencoder, tmp_path / "latents", config)
    assert manifest["settings"]["refine"] == {"steps": 3, "target_sigma": 0.0}
    record, segment = latents.LatentStore(tmp_path / "latents")[1], segments.SegmentStore(
        root / "segments")[1]
    image = onehot.encode(segment["keypoints"], segment["confidence"], record["width"],
                          record["height"], 64)[None]
    plain = autoencoder.encode(image)
    refined = np.asarray(autoencoder.refine(image, plain))[0]
    assert np.abs(refined - np.asarray(plain)[0]).max() > 0.05  # the refinement moved them
    assert_stored(record["latent"], refined)
    known = prefix_frames(0, len(segment["keypoints"]))
    poses = [segment[k] for k in ("keypoints", "confidence", "shape_keypoints",
                                  "shape_confidence")]
    assert_stored(record["references"][0],
                  encode_poses(autoencoder, *reference_pose(*poses, known), record, 64))
    config.latents.refine_steps = 0
    with pytest.raises(InputError, match="latents made with refine = "):
        loader.train_dataset(tmp_path / "latents", config, batch_size=2)


def test_only_onehot_kl_latents_refine_and_steps_are_counted(tmp_path):
    with pytest.raises(InputError, match="raw-coords: latents refine only through the onehot-kl"):
        load_autoencoder("raw-coords", "", 36, bins=64, refine=Refinement(3))
    config = latent_config()
    config.latents.refine_steps = -1
    with pytest.raises(InputError, match=r"refine_steps=-1: expected an integer >= 0"):
        precompute.load_weights("onehot-kl", str(random_onehot_kl(tmp_path / "v.msgpack", 36)),
                                config)


@pytest.mark.slow  # starts a Python process
def test_precompute_command(cache, tmp_path):
    """The command end to end with a (randomly initialised) onehot-kl, then with a missing weights
    file, which leaves the cache as it was."""
    root = cache[0]
    random_onehot_kl(tmp_path / "vae.msgpack", 36)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "latents"
    cmd = [sys.executable, "-m", "data_pipeline.precompute", "--segments", str(root / "segments"),
           "--vae", "onehot-kl", "--vae-weights", str(tmp_path / "vae.msgpack"),
           "--latents", str(out), "--config", str(REPO / "configs" / "tiny_cpu.py"),
           "--config.latents.reference_frames=(0, 16)"]

    def run(command):
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)

    first = run(cmd)
    assert first.returncode == 0, first.stderr
    manifest = latents.read_manifest(out)
    assert manifest["counts"] == {"train": 16, "val": 4, "test": 4}
    assert manifest["latent_shape"] == [8, 8, 4]
    assert manifest["vae"]["name"] == "onehot-kl"
    missing = run([*cmd[:8], str(tmp_path / "nope.msgpack"), *cmd[9:]])
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope.msgpack'}: no such onehot-kl weights file"]
    assert latents.read_manifest(out) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents", "vae.msgpack"]


@pytest.mark.slow  # starts a Python process
def test_motion_only_segments_are_refused(tmp_path):
    """A build with motion-only performances (the real AIST++ pickles, whose music is missing):
    no latent cache, one line naming the build, from the function and the command."""
    config = latent_config()
    segments_dir = build_real_aistpp(tmp_path / "segments", config)
    message = (f"{segments_dir}: 1 of 1 performances in train/val/test are motion-only (built "
               "without their music); the latent cache of the DiT expects a segment build whose "
               "performances all have music")
    autoencoder = precompute.pooling_autoencoder(36, LATENT_CHANNELS)
    with pytest.raises(InputError) as refused:
        precompute.precompute(segments_dir, autoencoder, tmp_path / "latents", config)
    assert str(refused.value) == message
    result = subprocess.run(
        [sys.executable, "-m", "data_pipeline.precompute", "--segments", str(segments_dir),
         "--vae", "raw-coords", "--latents", str(tmp_path / "latents"), "--config",
         str(REPO / "configs" / "tiny_cpu.py")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "latents").exists()
