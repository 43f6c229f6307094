"""The training loader: batches, reference conditioning, determinism, resume, process shares."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from data_pipeline import latents, loader, precompute
from hotdance_jax.errors import InputError
from hotdance_jax.pose import prefix_frames, reference_mask
from tests.conftest import LATENT_CHANNELS


def config_of(cache, **latents_overrides):
    config = cache[1].copy_and_resolve_references()
    config.latents.workers = 0
    for key, value in latents_overrides.items():
        config.latents[key] = value
    return config


def take(iterator, n):
    return list(itertools.islice(iterator, n))


def assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def record_indices(batch, store):
    """Which train record each example of the batch is, found by its (normalised) latent."""
    scale, shift = latents.scale_shift(store.manifest)
    table = np.stack([(store[i]["latent"].astype(np.float32) - shift) * scale
                      for i in range(len(store))])
    distance = np.abs(batch["latent"][:, None] - table[None]).reshape(len(batch["latent"]),
                                                                      len(table), -1)
    found = distance.max(axis=-1)
    assert (found.min(axis=1) == 0).all()
    return found.argmin(axis=1)


def test_batches_hold_the_drawn_reference_and_its_mask(cache):
    root, config = cache[0], config_of(cache)
    batches = take(iter(loader.train_dataset(root / "latents", config, batch_size=4)), 40)
    batch = batches[0]
    assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
        "latent": ((4, 8, 8, LATENT_CHANNELS), "float32"),
        "reference": ((4, 8, 8, LATENT_CHANNELS), "float32"),
        "mask": ((4, 8, 8, 8), "float32"),
        "music": ((4, 64, 35), "float32"),
        "num_reference_frames": ((4,), "int32"),
        "example": ((4,), "int32"),
    }
    np.testing.assert_array_equal(batches[1]["example"], [4, 5, 6, 7])  # stream positions
    store = latents.LatentStore(root / "latents")
    frames = list(config.latents.reference_frames)
    transform = loader.Conditioning(store.manifest, config.latents)
    for batch in batches[:4]:
        for i, index in enumerate(record_indices(batch, store)):
            n = int(batch["num_reference_frames"][i])
            np.testing.assert_array_equal(batch["mask"][i], reference_mask(prefix_frames(n, 64), 8))
            expected = transform.normalise(store[index]["references"][frames.index(n)])
            np.testing.assert_array_equal(batch["reference"][i], expected)
            music = (store[index]["music"] - transform.music_shift) * transform.music_scale
            np.testing.assert_allclose(batch["music"][i], music, rtol=1e-6)
    drawn = np.concatenate([b["num_reference_frames"] for b in batches])
    assert 0.35 < (drawn == 0).mean() < 0.65  # p_shape_only = 0.5 over 160 draws
    assert set(drawn.tolist()) == set(frames)


@pytest.fixture(scope="module")
def keyframe_cache(tmp_path_factory, cache):
    """The session cache's segments encoded again with 2 random patterns of each kind."""
    root = tmp_path_factory.mktemp("keyframes")
    config = config_of(cache, keyframe_patterns=2)
    precompute.precompute(cache[0] / "segments", cache[2], root / "latents", config)
    return root, config


def test_keyframe_patterns_are_drawn_with_their_probabilities(keyframe_cache):
    root, config = keyframe_cache
    config = config_of((root, config), p_keyframes=0.25, p_spans=0.25)
    batches = take(iter(loader.train_dataset(root / "latents", config, batch_size=4)), 40)
    store = latents.LatentStore(root / "latents")
    transform = loader.Conditioning(store.manifest, config.latents)
    frames = len(config.latents.reference_frames)
    for batch in batches[:6]:
        for i, index in enumerate(record_indices(batch, store)):
            record = store[index]
            if batch["num_reference_frames"][i] >= 0:
                continue
            # which of the record's 4 patterns: the one whose mask this is
            masks = reference_mask(record["keyframe_known"], 8)
            [j] = [j for j in range(4) if np.array_equal(masks[j], batch["mask"][i])]
            expected = transform.normalise(record["references"][frames + j])
            np.testing.assert_array_equal(batch["reference"][i], expected)
    drawn = np.concatenate([b["num_reference_frames"] for b in batches])
    assert 0.35 < (drawn == -1).mean() < 0.65  # p_keyframes + p_spans = 0.5 over 160 draws
    prefix_only = take(iter(loader.train_dataset(root / "latents", keyframe_cache[1], 4)), 10)
    assert (np.concatenate([b["num_reference_frames"] for b in prefix_only]) >= 0).all()


def test_keyframe_draws_need_a_cache_with_patterns(cache):
    config = config_of(cache, p_keyframes=0.5)
    with pytest.raises(InputError, match="the cache has no keyframe patterns"):
        loader.train_dataset(cache[0] / "latents", config, batch_size=4)


def test_n_probabilities():
    np.testing.assert_allclose(loader.n_probabilities(np.array([0, 8, 16]), 0.5),
                               [0.5, 0.25, 0.25])
    np.testing.assert_allclose(loader.n_probabilities(np.array([8, 16]), 0.0), [0.5, 0.5])
    with pytest.raises(InputError, match="no N = 0"):
        loader.n_probabilities(np.array([8, 16]), 0.5)


def test_deterministic_per_seed_and_resumable(cache):
    root, config = cache[0], config_of(cache)

    def batches(config):
        return iter(loader.train_dataset(root / "latents", config, batch_size=3))

    first = batches(config)
    head = take(first, 3)
    state = first.get_state()
    tail = take(first, 7)  # runs past the end of the first epoch (16 records)
    assert_same(take(batches(config), 10), head + tail)
    resumed = batches(config)
    resumed.set_state(state)
    assert_same(take(resumed, 7), tail)
    other = config.copy_and_resolve_references()
    other.seed = 1
    assert not np.array_equal(take(batches(other), 1)[0]["latent"], head[0]["latent"])


@pytest.mark.slow  # starts worker processes
def test_worker_processes_give_the_same_stream_and_resume(cache):
    root = cache[0]
    serial = take(iter(loader.train_dataset(root / "latents", config_of(cache), 2)), 6)
    parallel = iter(loader.train_dataset(root / "latents", config_of(cache, workers=2), 2))
    try:
        assert_same(take(parallel, 2), serial[:2])
        state = parallel.get_state()
    finally:
        parallel.close()
    resumed = iter(loader.train_dataset(root / "latents", config_of(cache, workers=2), 2))
    try:
        resumed.set_state(state)
        assert_same(take(resumed, 4), serial[2:])
    finally:
        resumed.close()


def test_every_epoch_is_a_new_order_of_all_records(cache):
    root, config = cache[0], config_of(cache)
    store = latents.LatentStore(root / "latents")
    ds = loader.train_dataset(root / "latents", config, batch_size=4)
    seen = np.concatenate([record_indices(b, store) for b in take(iter(ds), 8)])
    assert sorted(seen[:16]) == sorted(seen[16:]) == list(range(16))
    assert not np.array_equal(seen[:16], seen[16:])


def test_processes_read_disjoint_shares_of_each_epoch(cache):
    root, config = cache[0], config_of(cache)
    store = latents.LatentStore(root / "latents")
    seen, positions = [], []
    for process in (0, 1):
        ds = loader.train_dataset(root / "latents", config, batch_size=4, process_index=process,
                                  process_count=2)
        for batch in take(iter(ds), 2):  # 2 processes x 2 batches x 4 = the 16 train records
            seen.extend(record_indices(batch, store).tolist())
            positions.extend(batch["example"].tolist())
    assert sorted(seen) == list(range(16))
    assert positions[:4] == [0, 2, 4, 6]  # process 0 takes every other example of the stream
    assert sorted(positions) == list(range(16))


def test_validation_batches_are_one_deterministic_pass(cache):
    root, config = cache[0], config_of(cache)
    batches = list(loader.validation_batches(root / "latents", config, batch_size=3))
    assert [len(b["latent"]) for b in batches] == [3, 1]
    assert_same(list(loader.validation_batches(root / "latents", config, batch_size=3)), batches)
    store = latents.LatentStore(root / "latents", "val")
    scale, shift = latents.scale_shift(store.manifest)
    expected = np.stack([(store[i]["latent"].astype(np.float32) - shift) * scale
                         for i in range(4)])
    np.testing.assert_array_equal(np.concatenate([b["latent"] for b in batches]), expected)
    shares = [loader.validation_batches(root / "latents", config, 4, "test", process_index=p,
                                        process_count=2) for p in (0, 1)]
    assert [len(next(iter(s))["latent"]) for s in shares] == [2, 2]
