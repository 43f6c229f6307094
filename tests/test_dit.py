"""The latent DiT and its rotary embeddings: shapes, zero init, music paths, positions, sharding."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from hotdance_jax.errors import InputError
from hotdance_jax.models import DiT, DiTConfig, apply_rope, rope_frequencies, token_positions
from hotdance_jax.models.dit import (
    LOGICAL_AXES,
    MUSIC_BIN,
    music_per_pose_token,
    patchify,
    unpatchify,
)

TINY = DiTConfig(latent_bins=8, latent_frames=4, latent_channels=4, music_features=3,
                 patch=(2, 2), width=64, depth=2, heads=4)


@nnx.jit
def forward(model, x_t, t, reference, mask, music, drop_music):
    return model(x_t, t, reference, mask, music, drop_music)


# numpy draws: jax.random would compile a sampler per shape, seconds each on a busy CPU
def normal(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> jax.Array:
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def inputs(config: DiTConfig, batch: int = 2) -> dict[str, jax.Array]:
    latent = (batch, config.latent_bins, config.latent_frames)
    frames = config.latent_frames * config.frames_per_token
    return {
        "x_t": normal((*latent, config.latent_channels), seed=0),
        "t": jnp.linspace(0.2, 0.8, batch),
        "reference": normal((*latent, config.latent_channels), seed=1),
        "mask": jnp.ones((*latent, config.frames_per_token)),
        "music": normal((batch, frames, config.music_features), seed=2),
        "drop_music": jnp.array([True, False]),
    }


def randomized(model: DiT, seed: int, scale: float = 0.3) -> DiT:
    """A copy of `model` with every parameter redrawn from N(0, scale^2)."""
    model = nnx.clone(model)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda x: normal(x.shape, seed, scale), params))
    return model


@pytest.fixture(scope="module")
def model() -> DiT:
    return DiT(TINY, rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- rope


def test_rope_is_identity_at_position_zero():
    x = normal((2, 5, 3, 12), seed=0)
    cos, sin = rope_frequencies(jnp.zeros((5, 2)), (8, 4))
    np.testing.assert_array_equal(apply_rope(x, cos, sin), x)


def test_rope_scores_depend_only_on_position_difference():
    q, k = normal((2, 1, 1, 10), seed=1)
    dims = (4, 6)

    def score(p_q, p_k):
        rq = apply_rope(q, *rope_frequencies(jnp.array([p_q]), dims))
        rk = apply_rope(k, *rope_frequencies(jnp.array([p_k]), dims))
        return float(jnp.sum(rq * rk))

    base = score([1.5, -1.0], [4.0, 2.0])
    assert score([11.25, 2.5], [13.75, 5.5]) == pytest.approx(base, abs=1e-4)  # shifted both
    assert score([1.5, -1.0], [5.0, 2.0]) != pytest.approx(base, abs=1e-2)  # another difference


# ---------------------------------------------------------------- positions and patches


def test_shared_index_puts_music_and_pose_of_a_column_at_one_time():
    config = dataclasses.replace(TINY, patch=(2, 1))
    music, pose = token_positions(config)
    nb, nt = config.grid
    columns = np.tile(np.arange(nt), nb)  # pose tokens are bin-major
    np.testing.assert_array_equal(pose[:, 0], music[columns, 0])
    np.testing.assert_array_equal(music[:, 0], np.arange(config.latent_frames))
    np.testing.assert_array_equal(pose[:, 1], np.repeat(np.arange(nb), nt))
    assert (music[:, 1] == MUSIC_BIN).all()
    assert pose[:, 1].min() > MUSIC_BIN


def test_shared_index_puts_a_wide_patch_at_its_centre():
    music, pose = token_positions(TINY)  # p_time = 2: columns 2j and 2j + 1
    centres = (music[0::2, 0] + music[1::2, 0]) / 2
    np.testing.assert_array_equal(pose[:, 0], np.tile(centres, TINY.grid[0]))


def test_sequential_index_puts_music_after_the_pose():
    shared_music, shared_pose = token_positions(TINY)
    music, pose = token_positions(dataclasses.replace(TINY, temporal_index="sequential"))
    np.testing.assert_array_equal(pose, shared_pose)
    np.testing.assert_array_equal(music[:, 0], shared_music[:, 0] + TINY.latent_frames)
    np.testing.assert_array_equal(music[:, 1], shared_music[:, 1])


def test_patchify_round_trip():
    x = jnp.arange(2 * 8 * 4 * 3, dtype=jnp.float32).reshape(2, 8, 4, 3)
    tokens = patchify(x, (2, 2))
    assert tokens.shape == (2, 8, 12)
    np.testing.assert_array_equal(tokens[0, 1], x[0, 0:2, 2:4].ravel())  # bin-major order
    np.testing.assert_array_equal(unpatchify(tokens, (2, 2), (4, 2)), x)


# ---------------------------------------------------------------- the model


def test_output_has_the_latent_shape_and_starts_at_zero(model):
    batch = inputs(TINY)
    velocity = forward(model, **batch)
    assert velocity.shape == batch["x_t"].shape
    assert velocity.dtype == jnp.float32
    assert not velocity.any()  # adaLN-Zero gates and the zero final layer


def test_music_reaches_the_output_only_through_attention(model):
    perturbed = nnx.clone(model)
    kernel = perturbed.final.out.kernel
    kernel[...] = normal(kernel.shape, seed=3)
    batch = inputs(TINY)
    velocity = forward(perturbed, **batch)
    assert jnp.abs(velocity).max() > 0
    batch["music"] = batch["music"] + 5.0
    batch["drop_music"] = ~batch["drop_music"]
    np.testing.assert_array_equal(forward(perturbed, **batch), velocity)  # attention gates are 0


def test_dropped_music_is_ignored_and_kept_music_is_used(model):
    trained = randomized(model, seed=2)
    batch = inputs(TINY)  # example 0 drops its music, example 1 keeps it
    velocity = forward(trained, **batch)
    other = forward(trained, **{**batch, "music": batch["music"] * -2.0 + 1.0})
    np.testing.assert_array_equal(other[0], velocity[0])
    assert jnp.abs(other[1] - velocity[1]).max() > 1e-3


def test_music_per_pose_token_by_hand():
    music = jnp.arange(4.0)[None, :, None] * jnp.ones((1, 4, 3))  # token k holds k
    aligned = np.asarray(music_per_pose_token(music, TINY))  # grid (4, 2), 2 columns a token
    np.testing.assert_array_equal(aligned[0, :, 0], [0.5, 2.5] * 4)  # bin-major token order


def test_aligned_music_reaches_only_the_pose_of_its_moment():
    """Without blocks (depth 0) music can only come through the aligned path: changing the music
    of the last latent column changes the velocity of the last token column alone, and only once
    the zero-initialised map has weights."""
    config = dataclasses.replace(TINY, depth=0, aligned_music=True)
    untrained = DiT(config, rngs=nnx.Rngs(0))
    trained = randomized(untrained, seed=5)
    batch = {**inputs(config), "drop_music": jnp.array([False, False])}
    late = batch["music"].at[:, -config.frames_per_token:].multiply(-2.0)
    for model, changes in ((untrained, False), (trained, True)):
        difference = np.abs(forward(model, **{**batch, "music": late}) - forward(model, **batch))
        assert (difference[:, :, -2:].max() > 1e-3) == changes  # patch (2, 2): 2 columns a token
        np.testing.assert_array_equal(difference[:, :, :-2], 0)


def test_temporal_index_reaches_attention(model):
    trained = randomized(model, seed=4)
    config = dataclasses.replace(TINY, temporal_index="sequential")
    other = nnx.eval_shape(lambda: DiT(config, rngs=nnx.Rngs(0)))
    nnx.update(other, nnx.state(trained))  # the same weights, other positions
    batch = inputs(TINY)
    assert jnp.abs(forward(other, **batch) - forward(trained, **batch)).max() > 1e-3


def test_reference_and_mask_reach_the_output_only_with_config_reference(model):
    batch = inputs(TINY)
    other = {**batch, "reference": batch["reference"] * -2.0 + 1.0, "mask": 1.0 - batch["mask"]}
    trained = randomized(model, seed=6)
    velocity = forward(trained, **batch)
    for name in ("reference", "mask"):
        changed = forward(trained, **{**batch, name: other[name]})
        assert jnp.abs(changed - velocity).max() > 1e-3, name
    blind = randomized(DiT(dataclasses.replace(TINY, reference=False), rngs=nnx.Rngs(0)), seed=6)
    assert blind.pose_embed.kernel.shape == (2 * 2 * 4, 64)  # 2 x 2 patches of x_t (c = 4) alone
    velocity = forward(blind, **batch)
    assert jnp.abs(velocity).max() > 1e-3
    np.testing.assert_array_equal(forward(blind, **other), velocity)
    np.testing.assert_array_equal(forward(blind, **{**batch, "reference": None, "mask": None}),
                                  velocity)


def test_bfloat16_compute_tracks_float32(model):
    trained = randomized(model, seed=3, scale=0.1)
    config = dataclasses.replace(TINY, dtype="bfloat16")
    half = nnx.eval_shape(lambda: DiT(config, rngs=nnx.Rngs(0)))
    nnx.update(half, nnx.state(trained))  # all of the DiT's state is parameters
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(half, nnx.Param)))
    batch = inputs(TINY)
    reference, velocity = forward(trained, **batch), forward(half, **batch)
    assert velocity.dtype == jnp.float32
    error = jnp.abs(velocity - reference).max() / jnp.abs(reference).max()
    assert error < 0.05, error


@pytest.mark.parametrize("remat", ["full", "dots_no_batch"])
def test_remat_gives_the_same_loss_and_gradients(model, remat):
    """Rematerialised blocks compute the same values (the program holds one remat per block,
    which the backward pass recomputes)."""
    batch = inputs(TINY)

    def loss_and_grads(config):
        graphdef, _ = nnx.split(nnx.eval_shape(lambda: DiT(config, rngs=nnx.Rngs(0))))
        state = nnx.state(randomized(DiT(dataclasses.replace(config, remat="none"),
                                         rngs=nnx.Rngs(0)), seed=4, scale=0.1))

        def loss(state):
            return jnp.mean(nnx.merge(graphdef, state)(**batch) ** 2)

        program = str(jax.make_jaxpr(loss)(state))
        value, grads = jax.jit(jax.value_and_grad(loss))(state)
        return float(value), jax.tree.leaves(grads), program.count("remat2[")

    loss, grads, checkpoints = loss_and_grads(TINY)
    loss_remat, grads_remat, checkpoints_remat = loss_and_grads(
        dataclasses.replace(TINY, remat=remat))
    assert (checkpoints, checkpoints_remat) == (0, TINY.depth)
    assert loss > 0
    np.testing.assert_allclose(loss_remat, loss, rtol=1e-6)
    for g, g_remat in zip(grads, grads_remat, strict=True):
        np.testing.assert_allclose(g_remat, g, rtol=1e-5, atol=1e-7)


def test_bad_shapes_and_configs_raise_input_error(model):
    batch = inputs(TINY)
    batch["music"] = batch["music"][:, :-8]
    with pytest.raises(InputError, match="music"):
        model(**batch)
    with pytest.raises(InputError, match="temporal_index"):
        dataclasses.replace(TINY, temporal_index="absolute")
    with pytest.raises(InputError, match="patch"):
        dataclasses.replace(TINY, patch=(3, 1))
    with pytest.raises(InputError, match="attention_implementation 'flash' not xla/cudnn"):
        dataclasses.replace(TINY, attention_implementation="flash")
    with pytest.raises(InputError, match="remat 'some' not none/full/dots/dots_no_batch"):
        dataclasses.replace(TINY, remat="some")


# ---------------------------------------------------------------- sharding and size


def test_parameters_carry_logical_axis_names(model):
    params = nnx.state(model, nnx.Param)
    variables = jax.tree.leaves(params, is_leaf=lambda v: isinstance(v, nnx.Variable))
    for variable in variables:
        names = variable.get_metadata()["out_sharding"]
        assert len(names) == variable.ndim
        assert set(names) <= {*LOGICAL_AXES, None}
    specs = nnx.get_partition_spec(params)
    assert specs["blocks"][0]["attention"]["query"]["kernel"].get_value() == P("embed", "heads")


def test_logical_rules_shard_the_model_on_a_mesh():
    mesh = jax.make_mesh((1, 1, 1), ("data", "fsdp", "tensor"),
                         axis_types=(jax.sharding.AxisType.Explicit,) * 3)
    rules = (("embed", "fsdp"), ("mlp", "tensor"), ("heads", "tensor"), ("norm", None))
    with nnx.logical_axis_rules(rules):
        _, state = nnx.get_abstract_model(lambda: DiT(TINY, rngs=nnx.Rngs(0)), mesh)
    block = state["blocks"][1]
    assert block["attention"]["out"]["kernel"].sharding.spec == P("tensor", "fsdp")
    assert block["mlp"]["up"]["kernel"].sharding.spec == P("fsdp", "tensor")


def test_base_parameter_count():
    abstract = nnx.eval_shape(lambda: DiT(DiTConfig(), rngs=nnx.Rngs(0)))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    print(f"DiTConfig() parameters: {count:,}")
    assert 100e6 < count < 160e6
