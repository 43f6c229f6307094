"""hotdance_jax.flow: exact identities, analytic velocity fields, and a learned 2-D mixture."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hotdance_jax import flow

# --- exact identities -------------------------------------------------------------------------


def test_noise_velocity_identities():
    """x_0 = x_t - t v and e = x_t + (1 - t) v for v = e - x_0; t = 0 is data, t = 1 noise."""
    rng = np.random.default_rng(0)
    x0, e = rng.normal(size=(2, 5, 4, 3, 2)).astype(np.float32)
    t = rng.uniform(size=5).astype(np.float32)
    xt, v = np.asarray(flow.noise(x0, e, t)), np.asarray(flow.velocity_target(x0, e))
    tb = t[:, None, None, None]
    np.testing.assert_allclose(xt - tb * v, x0, atol=1e-5)
    np.testing.assert_allclose(xt + (1 - tb) * v, e, atol=1e-5)
    np.testing.assert_array_equal(flow.noise(x0, e, np.zeros(5)), x0)
    np.testing.assert_array_equal(flow.noise(x0, e, np.ones(5)), e)


def test_sample_t_range_and_shift():
    """t in (0, 1); shift is a monotone map of the same draws, moving the median 0.5 to 0.75."""
    t1, t3 = jax.jit(lambda k: (flow.sample_t(k, (20000,)), flow.sample_t(k, (20000,), shift=3.0)))(
        jax.random.key(1)
    )
    t1, t3 = np.asarray(t1), np.asarray(t3)
    assert t1.shape == (20000,)
    for t in (t1, t3):
        assert t.min() > 0.0
        assert t.max() < 1.0
    assert np.all(t3 >= t1)
    np.testing.assert_allclose(np.median(t1), 0.5, atol=0.01)
    np.testing.assert_allclose(np.median(t3), 0.75, atol=0.01)
    assert np.mean(t3 > 0.5) > np.mean(t1 > 0.5) + 0.2
    np.testing.assert_allclose(t3, 3 * t1 / (1 + 2 * t1), rtol=1e-5)


def test_resolution_shift():
    """FLUX rule: base_shift at base_tokens, max_shift at max_tokens, increasing, a Python float."""
    assert flow.resolution_shift(256) == pytest.approx(1.0)
    assert flow.resolution_shift(4096) == pytest.approx(3.0)
    shifts = [flow.resolution_shift(n) for n in (64, 256, 512, 1024, 4096, 8192)]
    assert all(isinstance(s, float) for s in shifts)
    assert all(a < b for a, b in itertools.pairwise(shifts))
    assert flow.resolution_shift(1024, base_shift=0.5, max_shift=2.0) > 0.5


def test_timesteps():
    """num_steps + 1 points from exactly 1 to exactly 0, strictly decreasing; shift > 1 is later."""
    ts1, ts3 = (np.asarray(flow.timesteps(25, shift)) for shift in (1.0, 3.0))
    for ts in (ts1, ts3):
        assert ts.shape == (26,)
        assert ts[0] == 1.0
        assert ts[-1] == 0.0
        assert np.all(np.diff(ts) < 0)
    assert np.all(ts3 >= ts1)


def test_flow_loss_weights():
    """None is the plain mean; weights' scale does not matter; masked-out entries do not count."""
    x0 = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
    rows, cols = x0.copy(), x0.copy()
    rows[5:], cols[:, 3:] = 100.0, -50.0
    row_mask, col_mask = np.arange(8) < 5, np.ones((8, 6))
    col_mask[:, 3:] = 0.0
    cases = (
        (x0, None),
        (x0, 2 * np.ones(8)),
        (x0, row_mask),
        (rows, row_mask),
        (x0, col_mask),
        (cols, col_mask),
    )
    key = jax.random.key(3)
    plain, scaled, row, row_changed, col, col_changed = jax.jit(
        lambda cases: [flow.flow_loss(lambda x, t: 0.5 * x, x, key, weights=w) for x, w in cases]
    )(cases)
    np.testing.assert_allclose(scaled, plain, rtol=1e-6)
    np.testing.assert_allclose(row_changed, row, rtol=1e-6)
    np.testing.assert_allclose(col_changed, col, rtol=1e-6)


# --- analytic velocity fields -------------------------------------------------------------------

MU, S = np.array([1.5, -0.5], np.float32), 0.5


def gaussian_velocity(x, t):
    """Exact rectified-flow velocity for data N(MU, S^2 I): x (B, 2), t (B,)."""
    t = t[:, None]
    var = (1 - t) ** 2 * S**2 + t**2
    return -MU + (t - (1 - t) * S**2) / var * (x - (1 - t) * MU)


def test_flow_loss_minimised_by_exact_velocity():
    """The target's sign and scale: the analytic field beats it shifted or scaled."""
    x0 = MU + S * np.random.default_rng(4).normal(size=(20000, 2)).astype(np.float32)
    fields = (
        gaussian_velocity,
        lambda x, t: gaussian_velocity(x, t) + 0.1,
        lambda x, t: 1.1 * gaussian_velocity(x, t),
        lambda x, t: -gaussian_velocity(x, t),
    )
    key = jax.random.key(5)
    best, *wrong = jax.jit(lambda x0: [flow.flow_loss(f, x0, key) for f in fields])(x0)
    assert all(loss > best + 5e-3 for loss in wrong)


def test_point_data_straight_paths():
    """Data = one point c: v = (x - c) / t, straight paths; every solver lands on c, any shape."""
    z = np.random.default_rng(6).normal(size=(4, 3, 5, 2)).astype(np.float32)
    c = np.linspace(-1.0, 1.0, 30, dtype=np.float32).reshape(3, 5, 2)

    def v_fn(x, t):
        return (x - c) / t[:, None, None, None].astype(x.dtype)

    runs = (("euler", 1, 1.0), ("heun", 1, 1.0), ("heun", 7, 3.0))
    outs = jax.jit(lambda z: [flow.sample(v_fn, z, n, smp, shift=sh) for smp, n, sh in runs])(z)
    for out in outs:
        np.testing.assert_allclose(out, np.broadcast_to(c, z.shape), atol=1e-5)
    assert flow.sample(v_fn, z.astype(jnp.bfloat16), 3, "heun").dtype == jnp.bfloat16


def test_heun_integrates_gaussian_flow():
    """Gaussian data: noise z maps exactly to MU + S z; Heun is 2nd order, Euler 1st."""
    z = np.random.default_rng(7).normal(size=(512, 2)).astype(np.float32)
    runs = (("heun", 10), ("heun", 20), ("heun", 40), ("euler", 20), ("euler", 40))
    outs = jax.jit(lambda z: [flow.sample(gaussian_velocity, z, n, smp) for smp, n in runs])(z)
    err = {run: np.abs(out - (MU + S * z)).max() for run, out in zip(runs, outs, strict=True)}
    assert err["heun", 40] < 3e-3
    assert err["heun", 20] / err["heun", 40] > 3.5
    assert 1.7 < err["euler", 20] / err["euler", 40] < 2.3
    assert err["heun", 10] < err["euler", 40]


# --- classifier-free guidance -----------------------------------------------------------------


def cond_velocity(x, t):
    """A conditional toy field: (B, 2), (B,) -> (B, 2)."""
    return gaussian_velocity(x, t)


def uncond_velocity(x, t):
    """An unconditional toy field: straight paths to the origin."""
    return x / t[:, None]


def conditioned_velocity(x, t, drop):
    """The toy fields behind a condition switch: uncond_velocity where `drop` is set."""
    return jnp.where(drop[:, None], uncond_velocity(x, t), cond_velocity(x, t))


def test_guidance():
    """guidance 1 = conditional sampler, 0 = unconditional, g = the field v_u + g (v_c - v_u)."""
    z = np.random.default_rng(8).normal(size=(32, 2)).astype(np.float32)

    def run(v_fn):
        return flow.sample(v_fn, z, 12, "heun", shift=2.0)

    def mixed(x, t):
        return 2.5 * cond_velocity(x, t) - 1.5 * uncond_velocity(x, t)

    @jax.jit
    def runs(g0, g1):
        """Python guidance 1, traced guidances g0 and g1, and the reference samplers."""
        guided = [run(flow.guided(conditioned_velocity, g)) for g in (1.0, g0, g1)]
        return [*guided, run(cond_velocity), run(uncond_velocity), run(mixed)]

    one, zero, two_half, cond, uncond, ref = runs(0.0, 2.5)
    np.testing.assert_array_equal(one, cond)
    np.testing.assert_allclose(zero, uncond, atol=1e-6)
    np.testing.assert_allclose(two_half, ref, atol=1e-5)


def test_bad_arguments():
    """An unknown sampler and 0 steps are errors."""
    z = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown sampler"):
        flow.sample(cond_velocity, z, 4, "rk4")
    with pytest.raises(ValueError, match="num_steps"):
        flow.sample(cond_velocity, z, 0)


# --- a learned 2-D mixture of Gaussians ---------------------------------------------------------

MEANS = np.array([[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]])
COVS = np.array(
    [
        [[0.25, 0.0], [0.0, 0.06]],
        [[0.06, 0.0], [0.0, 0.25]],
        [[0.15, 0.1], [0.1, 0.15]],
        [[0.1, 0.0], [0.0, 0.1]],
    ]
)
WEIGHTS = np.array([0.2, 0.3, 0.25, 0.25])


def mixture(key, n):
    """n draws (n, 2) from the 4-component mixture."""
    k1, k2 = jax.random.split(key)
    comp = jax.random.choice(k1, 4, (n,), p=WEIGHTS)
    chol = jnp.asarray(np.linalg.cholesky(COVS))[comp]
    return jnp.asarray(MEANS)[comp] + jnp.einsum("nij,nj->ni", chol, jax.random.normal(k2, (n, 2)))


class VelocityMLP(nnx.Module):
    """v(x, t): x (B, 2), t (B,) -> (B, 2); t enters as sin/cos at 8 frequencies in [1, 8] rad."""

    def __init__(self, width: int, rngs: nnx.Rngs):
        self.layers = nnx.List(
            [nnx.Linear(2 + 16, width, rngs=rngs)]
            + [nnx.Linear(width, width, rngs=rngs) for _ in range(2)]
        )
        self.out = nnx.Linear(width, 2, rngs=rngs)

    def __call__(self, x, t):
        angles = t[:, None] * jnp.exp(jnp.linspace(0.0, jnp.log(8.0), 8))
        h = jnp.concatenate([x, jnp.sin(angles), jnp.cos(angles)], axis=-1)
        for layer in self.layers:
            h = nnx.silu(layer(h))
        return self.out(h)


def train_mixture_model(steps=1500, batch=256, width=96, lr=3e-3):
    """Adam on flow_loss, all steps in one jitted lax.scan; returns the trained VelocityMLP."""
    graphdef, params = nnx.split(VelocityMLP(width, nnx.Rngs(0)))
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))

    def loss_fn(p, key):
        k_data, k_flow = jax.random.split(key)
        return flow.flow_loss(nnx.merge(graphdef, p), mixture(k_data, batch), k_flow)

    def step(carry, key):
        p, opt_state = carry
        grads = jax.grad(loss_fn)(p, key)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    @jax.jit
    def train(p, key):
        (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), jax.random.split(key, steps))
        return p

    return nnx.merge(graphdef, train(params, jax.random.key(1)))


def component_stats(x):
    """Nearest-mean assignment of x (n, 2): weights (4,), means (4, 2), covariances (4, 2, 2)."""
    x = np.asarray(x)
    comp = np.argmin(((x[:, None] - MEANS[None]) ** 2).sum(-1), axis=1)
    weights = np.array([(comp == k).mean() for k in range(4)])
    means = np.stack([x[comp == k].mean(0) for k in range(4)])
    covs = np.stack([np.cov(x[comp == k].T) for k in range(4)])
    return weights, means, covs


MIXTURE_RUNS = (("euler", 40), ("heun", 20), ("euler", 20), ("heun", 10), ("heun", 50))


@pytest.fixture(scope="module")
def mixture_samples():
    """{(sampler, steps): (4000, 2) samples} of the trained field from one fixed noise."""
    model = train_mixture_model()
    z = np.random.default_rng(2).normal(size=(4000, 2)).astype(np.float32)
    outs = jax.jit(lambda z: [flow.sample(model, z, n, smp) for smp, n in MIXTURE_RUNS])(z)
    return {run: np.asarray(out) for run, out in zip(MIXTURE_RUNS, outs, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "steps"), [("euler", 40), ("heun", 20)])
def test_mixture_transport(mixture_samples, sampler, steps):
    """Samples match the mixture: weights within 0.04, means 0.15, covariance entries 0.05."""
    weights, means, covs = component_stats(mixture_samples[sampler, steps])
    np.testing.assert_allclose(weights, WEIGHTS, atol=0.04)
    np.testing.assert_allclose(means, MEANS, atol=0.15)
    np.testing.assert_allclose(covs, COVS, atol=0.05)


@pytest.mark.slow
def test_mixture_heun_fewer_steps_beats_euler(mixture_samples):
    """Heun, 10 steps (19 evaluations), is at least as accurate as Euler with 20.

    Both measures: RMS distance to the learned ODE's solution (Heun, 50 steps), and the worst
    per-component mean error against the mixture.
    """
    heun, euler, ref = (mixture_samples[run] for run in (("heun", 10), ("euler", 20), ("heun", 50)))

    def rms(x):
        return np.sqrt(np.mean(np.sum((x - ref) ** 2, axis=-1)))

    def mean_error(x):
        return np.abs(component_stats(x)[1] - MEANS).max()

    assert rms(heun) <= rms(euler)
    assert mean_error(heun) <= mean_error(euler)


def test_per_example_keys_make_the_loss_independent_of_batch_order():
    x0 = jax.random.normal(jax.random.key(0), (6, 3, 2))
    keys = jax.random.split(jax.random.key(1), 6)

    def velocity(x, t):
        return x * t[:, None, None]

    loss = flow.flow_loss(velocity, x0, keys)
    order = jnp.array([3, 0, 5, 1, 4, 2])
    np.testing.assert_allclose(flow.flow_loss(velocity, x0[order], keys[order]), loss, rtol=1e-6)
    other = flow.flow_loss(velocity, x0, jax.random.split(jax.random.key(2), 6))
    assert abs(float(other) - float(loss)) > 1e-4
