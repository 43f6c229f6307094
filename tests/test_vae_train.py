"""Training the onehot-kl autoencoder: loss, exact resume, frozen weights, config checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from data_pipeline import build
from data_pipeline.segments import SegmentStore
from hotdance_jax.errors import InputError
from hotdance_jax.pose import OPENPOSE_18, encode, jit_decode
from hotdance_jax.vae import load_autoencoder
from hotdance_jax.vae import train as vae_train
from hotdance_jax.vae.kl import load_onehot_kl
from hotdance_jax.vae.onehot_kl import (
    image_from_outputs,
    onehot_kl_loss,
)
from tests.test_build import build_real_aistpp, tiny_config
from tests.test_source_aistpp import REAL, REAL_IGNORED, write_lists

pytestmark = pytest.mark.slow  # trains or starts processes: make test-fast skips it


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae_data")
    build.build("synthetic", root / "raw", root / "segments", micro_config())
    return root / "segments"


J = OPENPOSE_18.index


def micro_config(segments_dir=""):
    """A VAE small enough to train a few steps in seconds: 32 bins, 32-frame segments."""
    config = tiny_config()
    config.pose.bins = 32
    config.pose.segment_frames = 32
    config.vae.latent_channels = 4
    config.vae.arch.block_out_channels = (8, 16, 16, 16)
    config.vae.arch.layers_per_block = 2
    config.vae.arch.norm_num_groups = 8
    config.vae.train.update(segments=str(segments_dir), batch_size=4, crop_frames=16, steps=24,
                            learning_rate=3e-3, warmup_steps=1, log_every=4, eval_every=12,
                            checkpoint_every=12, eval_segments=4)
    return config


def first_crops(segments) -> dict[str, np.ndarray]:
    """A batch of the first 16 frames of the first 4 train segments."""
    records = SegmentStore(segments, "train").__getitems__(range(4))
    return {"keypoints": np.stack([np.nan_to_num(r["keypoints"][:16]) for r in records]),
            "confidence": np.stack([r["confidence"][:16] for r in records]),
            "size": np.array([[r["width"], r["height"]] for r in records], np.float32)}


def test_loss_parts_by_hand():
    """A decoder that reproduces the target exactly has near-zero position loss."""
    kp = jnp.array([[[[3.0, 5.0]] * 2] * 4])  # (1, T=4, K=2, 2) pixels in a 16 x 16 frame
    conf = jnp.array([[[1.0, 0.0]] * 4])
    images = encode(kp, conf, 16, 16, 16)  # (1, 16, 4, 4)

    class Perfect(nnx.Module):
        def encode(self, x):
            return jnp.zeros((1, 2, 1, 1)), jnp.zeros((1, 2, 1, 1))

        def decode(self, z):
            position = jnp.where(images > 0, 50.0, -50.0)
            visibility = jnp.where(images.max(-3, keepdims=True) > 0, 50.0, -50.0)
            return jnp.concatenate([position, jnp.broadcast_to(visibility, images.shape)], -1)

    loss, parts = onehot_kl_loss(Perfect(), images, jax.random.key(0), 1.0, 1.0)
    assert float(loss) < 1e-5
    assert float(parts["position"]) < 1e-6
    assert float(parts["visibility"]) < 1e-6
    assert float(parts["kl"]) == pytest.approx(0.0)
    np.testing.assert_allclose(image_from_outputs(Perfect().decode(None)), images, atol=1e-6)
    assert float(parts["centre"]) < 1e-6


def test_centre_term_is_the_distance_of_the_expected_bin():
    """Half the mass on the hot bin, half 6 bins away: the expected bin is 3 bins off."""
    kp = jnp.array([[[[3.0, 5.0]]] * 2])  # (1, T=2, K=1, 2): bins 3 (x) and 5 (y) of 16
    images = encode(kp, jnp.ones((1, 2, 1)), 16, 16, 16)  # (1, 16, 2, 2)

    class Split(nnx.Module):
        def encode(self, x):
            return jnp.zeros((1, 2, 1, 1)), jnp.zeros((1, 2, 1, 1))

        def decode(self, z):
            stray = jnp.roll(images, 6, axis=-3)
            position = jnp.where((images > 0) | (stray > 0), 50.0, -50.0)
            return jnp.concatenate([position, jnp.full(images.shape, 50.0)], -1)

    _, parts = onehot_kl_loss(Split(), images, jax.random.key(0), 0.0, 0.0, centre_weight=1.0)
    assert float(parts["centre"]) == pytest.approx(3.0, abs=1e-4)
    assert float(parts["position"]) == pytest.approx(np.log(2.0), abs=1e-4)


def test_training_lowers_the_loss_and_resumes_exactly(segments, tmp_path):
    config = micro_config(segments)  # with every augmentation: its draws resume exactly too
    config.vae.train.update(augment_speed=1.5, augment_scale=1.25, augment_shift=True,
                            augment_limbs=0.5)
    straight = tmp_path / "straight"
    vae_train.train(config, straight)
    interrupted = tmp_path / "interrupted"
    assert vae_train.train(config, interrupted, stop_at=14) == {}
    assert not (interrupted / vae_train.WEIGHTS_FILE).exists()
    final = vae_train.train(config, interrupted)
    assert set(final) == {"val_error_bins_mean", "val_error_bins_p99", "val_visibility_accuracy"}
    a, _ = load_onehot_kl(straight / vae_train.WEIGHTS_FILE)
    b, _ = load_onehot_kl(interrupted / vae_train.WEIGHTS_FILE)
    for x, y in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b)), strict=True):
        np.testing.assert_array_equal(x, y)
    autoencoder = load_autoencoder("onehot-kl", str(straight / vae_train.WEIGHTS_FILE), 36)
    latents = autoencoder.encode(jnp.zeros((2, 32, 16, 36)))
    assert latents.shape == (2, 4, 2, 4)
    assert autoencoder.decode(latents).shape == (2, 32, 16, 36)


def test_resample_frames_interpolates_only_between_visible_frames():
    keypoints = np.arange(4 * 2 * 2, dtype=np.float32).reshape(4, 2, 2)
    confidence = np.ones((4, 2), np.float32)
    confidence[2, 1] = 0
    kp, conf = vae_train.resample_frames(keypoints, confidence, np.array([0.0, 1.0, 1.25, 2.5]))
    np.testing.assert_allclose(kp[:2], keypoints[:2])
    np.testing.assert_allclose(kp[2, 0], 0.75 * keypoints[1, 0] + 0.25 * keypoints[2, 0])
    np.testing.assert_allclose(kp[2, 1], keypoints[1, 1])  # hidden in frame 2: nearest, frame 1
    np.testing.assert_allclose(kp[3, 0], 0.5 * (keypoints[2, 0] + keypoints[3, 0]))
    np.testing.assert_allclose(kp[3, 1], keypoints[2, 1])  # nearest: frame 2 (rint(2.5) = 2)
    np.testing.assert_array_equal(conf[:, 1], [1, 1, 1, 0])


def test_place_in_frame_scales_uniformly_and_stays_inside():
    rng = np.random.default_rng(0)
    size = np.array([640.0, 360.0], np.float32)
    keypoints = rng.uniform([500, 200], [630, 350], (8, 18, 2)).astype(np.float32)  # near a corner
    confidence = (rng.random((8, 18)) > 0.2).astype(np.float32)
    visible = confidence > 0
    keypoints[~visible] = np.nan
    assert vae_train.place_in_frame(keypoints, confidence, size, rng, 1.0, False) is keypoints
    spread = np.ptp(keypoints[visible], axis=0)
    scales = []
    for _ in range(50):
        placed = vae_train.place_in_frame(keypoints, confidence, size, rng, 1.5, True)
        assert (placed[visible] >= 0).all()
        assert (placed[visible] <= size - 1 + 1e-3).all()
        ratio = np.ptp(placed[visible], axis=0) / spread
        np.testing.assert_allclose(ratio[0], ratio[1], rtol=1e-4)  # one factor on both axes
        scales.append(ratio[0])
    assert 1 / 1.5 - 1e-4 <= min(scales) < 0.9
    assert 1.1 < max(scales) <= 1.5 + 1e-4
    grown = vae_train.place_in_frame(keypoints, confidence, size, rng, 1.5, False)
    assert (grown[visible] >= 0).all()
    assert (grown[visible] <= size - 1 + 1e-3).all()


def test_speed_augmentation_plays_crops_faster_and_slower():
    frames = np.arange(64, dtype=np.float32)
    record = {"keypoints": np.stack([frames, frames], -1)[:, None, :].repeat(18, 1),
              "confidence": np.ones((64, 18), np.float32), "width": 640.0, "height": 360.0}
    train = micro_config().vae.train
    train.update(crop_frames=16, flip=0.0, augment_speed=2.0)
    rng = np.random.default_rng(0)
    speeds = [np.diff(vae_train.augmented_crop(record, rng, train)["keypoints"][:, 0, 0]).mean()
              for _ in range(100)]
    assert 0.5 - 1e-5 <= min(speeds) < 0.7
    assert 1.4 < max(speeds) <= 2.0 + 1e-5
    train.augment_speed = 1.0
    crop = vae_train.augmented_crop(record, rng, train)["keypoints"][:, 0, 0]
    np.testing.assert_array_equal(np.diff(crop), 1.0)
    assert crop[0] == int(crop[0])  # whole frames, as without augmentation


def test_splice_limbs_hangs_the_donors_limbs_on_this_poses_roots():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(100, 500, (6, 18, 2)).astype(np.float32)
    donor = rng.uniform(100, 500, (6, 18, 2)).astype(np.float32)
    confidence, donor_confidence = np.ones((6, 18), np.float32), np.ones((6, 18), np.float32)
    confidence[2, J("right_shoulder")] = 0  # no root in frame 2: its arm stays
    donor_confidence[4, J("right_wrist")] = 0  # the donor's hidden wrist comes along hidden
    kept = vae_train.splice_limbs(keypoints, confidence, donor, donor_confidence,
                                  np.zeros(4, bool))
    np.testing.assert_array_equal(kept[0], keypoints)
    kp, conf = vae_train.splice_limbs(keypoints, confidence, donor, donor_confidence,
                                      np.array([True, False, False, False]))  # the right arm
    arm, shoulder = [J("right_elbow"), J("right_wrist")], J("right_shoulder")
    spliced = np.arange(6) != 2
    np.testing.assert_allclose(
        kp[spliced][:, arm] - kp[spliced][:, [shoulder]],
        donor[spliced][:, arm] - donor[spliced][:, [shoulder]], atol=1e-4)
    np.testing.assert_array_equal(kp[2], keypoints[2])
    others = np.setdiff1d(np.arange(18), arm)
    np.testing.assert_array_equal(kp[:, others], keypoints[:, others])
    np.testing.assert_array_equal(conf[:, J("right_wrist")], [1, 1, 1, 1, 0, 1])
    assert [root for root, _ in vae_train.LIMBS] == [
        J("right_shoulder"), J("right_hip"), J("left_shoulder"), J("left_hip")]


def test_limb_augmentation_takes_another_windows_limbs():
    frames = np.arange(64, dtype=np.float32)
    keypoints = np.zeros((64, 18, 2), np.float32) + 300
    for joint in ("nose", "left_wrist"):  # x - 300 tells the frame each came from
        keypoints[:, J(joint), 0] += frames
    record = {"keypoints": keypoints, "confidence": np.ones((64, 18), np.float32),
              "width": 640.0, "height": 360.0}
    train = micro_config().vae.train
    train.update(crop_frames=16, flip=0.0, augment_limbs=1.0)
    rng = np.random.default_rng(0)
    crops = [vae_train.augmented_crop(record, rng, train)["keypoints"] for _ in range(40)]
    wrist = np.stack([c[:, J("left_wrist"), 0] for c in crops])
    nose = np.stack([c[:, J("nose"), 0] for c in crops])
    np.testing.assert_array_equal(np.diff(wrist, axis=1), 1.0)  # a real motion, whole
    np.testing.assert_array_equal(np.diff(nose, axis=1), 1.0)
    spliced = wrist[:, 0] != nose[:, 0]
    assert 10 < spliced.sum() < 30  # the left arm is taken in about half of the crops
    train.augment_limbs = 0.0
    crop = vae_train.augmented_crop(record, rng, train)["keypoints"]
    assert crop[0, J("left_wrist"), 0] == crop[0, J("nose"), 0]


def test_loss_falls(segments, tmp_path, capsys):
    vae_train.train(micro_config(segments), tmp_path)
    losses = [float(line.split(" loss ")[1].split()[0])
              for line in capsys.readouterr().out.splitlines() if line.startswith("step ")
              and " loss " in line]
    assert losses[-1] < 0.8 * losses[0]


def test_trains_on_motion_only_real_aistpp(tmp_path):
    """A few steps on the real AIST++ pickles, built without music: the six sequences of no
    official list to train on, ch02 (officially a test sequence) to validate."""
    lists = write_lists(tmp_path / "lists", {
        "train": [n for n in REAL if n not in REAL_IGNORED and n != REAL[1]], "val": [REAL[1]],
        "test": []}, REAL_IGNORED)
    config = micro_config()
    segments = build_real_aistpp(tmp_path / "segments", config, lists)
    assert SegmentStore(segments, "train")[0]["has_music"] is False
    config.vae.train.update(segments=str(segments), steps=4, log_every=2, eval_every=4,
                            checkpoint_every=4)
    final = vae_train.train(config, tmp_path / "run")
    assert (tmp_path / "run" / vae_train.WEIGHTS_FILE).exists()
    assert set(final) == {"val_error_bins_mean", "val_error_bins_p99", "val_visibility_accuracy"}
    assert np.isfinite(list(final.values())).all()


def test_workdir_of_another_config_is_refused(segments, tmp_path):
    vae_train.train(micro_config(segments), tmp_path, stop_at=1)
    other = micro_config(segments)
    other.vae.arch.block_out_channels = (8, 16, 16, 32)
    with pytest.raises(InputError, match=r"another config \(vae.arch: block_out_channels differ\)"):
        vae_train.train(other, tmp_path)
    other = micro_config(segments)
    other.pose.bins *= 2
    with pytest.raises(InputError, match=r"another config \(pose.bins: pose.bins differ\)"):
        vae_train.train(other, tmp_path)
    # How decoded images are read is not part of what was trained: the run resumes.
    other = micro_config(segments)
    other.pose.decode_jump_cost = 0.0
    vae_train.train(other, tmp_path, stop_at=2)


def test_fits_one_batch_to_the_codecs_floor(segments):
    """Architecture, loss and decode together can represent one-hot poses exactly: fitted to one
    batch, the decoded keypoints reach the codec's quantisation floor (mean 0.25, max 0.5 bin).
    Measured: mean 0.21, p99 0.50 bins after 200 steps (0.59 / 3.7 after 50)."""
    config = micro_config(segments)
    batch = first_crops(segments)
    model = vae_train.create_model(vae_train.kl_config(config), 0)
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    for step in range(200):
        vae_train.train_step(model, optimizer, batch, jax.random.key(step), bins=32,
                             kl_weight=1e-4, visibility_weight=1.0)
    decoded = vae_train._reconstruct(model, vae_train.images_of(batch, 32))
    keypoints, confidence = jit_decode(decoded, batch["size"][:, 0], batch["size"][:, 1])
    visible = batch["confidence"] > 0
    np.testing.assert_array_equal(np.asarray(confidence) > 0, visible)
    error = np.abs(np.asarray(keypoints) - batch["keypoints"]) / batch["size"][:, None, None]
    error = error[visible] * 32
    assert error.mean() < 0.35
    assert np.percentile(error, 99) < 1.0


