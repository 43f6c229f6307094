"""The hand-aware variant: config.pose.skeleton = "openpose18_hands" through the data stages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from data_pipeline import build, precompute, segments
from data_pipeline.sources import synthetic
from hotdance_jax import evaluate, sample
from hotdance_jax.errors import InputError
from hotdance_jax.metrics import reconstruction_errors
from hotdance_jax.metrics.hands import hand_lengths, hand_pose_features
from hotdance_jax.pose import OPENPOSE_18, OPENPOSE_18_HANDS, flip_horizontal, onehot, skeleton_of
from hotdance_jax.pose.shape import shape_pose
from hotdance_jax.vae import image_channels
from tests.conftest import tiny_config
from tests.test_cli import ENV, REPO
from tests.test_demo import QUICK

LEFT, RIGHT = OPENPOSE_18_HANDS.hand("left"), OPENPOSE_18_HANDS.hand("right")


def hands_config(**data_overrides):
    config = tiny_config(**data_overrides)
    config.pose.skeleton = OPENPOSE_18_HANDS.name
    return config


def hand_span(keypoints: np.ndarray, hand: slice) -> np.ndarray:
    """(T,) mean distance of a hand's five finger tips from its wrist, pixels."""
    joints = keypoints[:, hand]
    tips = joints[:, [4, 8, 12, 16, 20]]
    return np.linalg.norm(tips - joints[:, :1], axis=-1).mean(axis=-1)


def test_the_layout_of_poses_follows_their_joint_count():
    assert skeleton_of(18) is OPENPOSE_18
    assert skeleton_of(60) is OPENPOSE_18_HANDS
    with pytest.raises(InputError, match="poses of 25 keypoints; expected 18 or 60"):
        skeleton_of(25)
    assert image_channels("openpose18_hands") == 120
    with pytest.raises(InputError, match=r"config\.pose\.skeleton 'coco17'; expected one of"):
        image_channels("coco17")
    keypoints = np.random.default_rng(0).uniform(0, 100, (3, 60, 2)).astype(np.float32)
    flipped, _ = flip_horizontal(keypoints, np.ones((3, 60)), 100.0)
    np.testing.assert_allclose(flipped[:, LEFT, 0], 100.0 - keypoints[:, RIGHT, 0])
    np.testing.assert_allclose(flipped[:, 4, 0], 100.0 - keypoints[:, 7, 0])
    np.testing.assert_allclose(flipped[:, 4, 1], keypoints[:, 7, 1])


def test_synthetic_hands_hang_from_the_wrists_and_close_on_the_beats():
    body = synthetic.synthesize_performance(5, seconds=8.0)
    perf = synthetic.synthesize_performance(5, seconds=8.0, hands=True)
    assert perf.keypoints.shape == (240, 60, 2)
    assert np.isfinite(perf.keypoints).all()
    np.testing.assert_array_equal(perf.keypoints[:, LEFT.start], perf.keypoints[:, 7])
    np.testing.assert_array_equal(perf.keypoints[:, RIGHT.start], perf.keypoints[:, 4])
    # The body moves as without hands: the same poses up to where the dancer is placed.
    a, b = body.keypoints - body.keypoints.mean(1, keepdims=True), \
        perf.keypoints[:, :18] - perf.keypoints[:, :18].mean(1, keepdims=True)
    ratio = np.linalg.norm(b) / np.linalg.norm(a)
    np.testing.assert_allclose(b, ratio * a, atol=0.05)
    # A fist on the beats: every time the finger tips come nearest the wrist is on a beat.
    beat_frames = perf.beat_times * perf.fps
    for hand in (LEFT, RIGHT):
        span = hand_span(perf.keypoints, hand)
        assert span.max() > 1.3 * span.min()
        nearest = np.flatnonzero((span[1:-1] < span[:-2]) & (span[1:-1] <= span[2:])) + 1
        assert len(nearest) >= 3
        assert np.abs(nearest[:, None] - beat_frames[None]).min(axis=1).max() <= 1.0

def test_a_hands_build_has_sixty_keypoints_and_a_body_source_is_refused(tmp_path):
    config = hands_config()
    manifest = build.build("synthetic", tmp_path / "raw", tmp_path / "segments", config)
    assert manifest["config"]["pose"]["skeleton"] == "openpose18_hands"
    record = segments.SegmentStore(tmp_path / "segments", "train")[0]
    assert record["keypoints"].shape == (64, 60, 2)
    assert record["shape_keypoints"].shape == (60, 2)
    assert (record["shape_confidence"][18:] == 1).all()
    with pytest.raises(InputError, match="source dwm has no hands"):
        build.build("dwm", tmp_path, tmp_path / "dwm", config)
    # What was built for hands is refused by a body-only config's later stages, in one line.
    with pytest.raises(InputError, match=r"built with pose\.skeleton = 'openpose18_hands', "
                                         r"the config has 'openpose18'"):
        precompute._check_segments(tmp_path / "segments", manifest, tiny_config())


def test_the_shape_pose_hangs_each_hand_from_its_wrist_fingers_down():
    perf = synthetic.synthesize_performance(2, seconds=4.0, hands=True)
    keypoints, confidence = shape_pose(perf.keypoints, perf.confidence)
    assert keypoints.shape == (60, 2)
    assert confidence.sum() == 60
    for hand, wrist in ((LEFT, 7), (RIGHT, 4)):
        joints = keypoints[hand]
        assert joints[0, 1] >= keypoints[wrist, 1]  # the hand's wrist at or below the arm's
        assert (joints[[4, 8, 12, 16, 20], 1] > joints[0, 1]).all()  # every finger tip below


@pytest.fixture(scope="module")
def hand_sets(tmp_path_factory):
    """Folders of 3 synthetic dances with hands as the sampler writes them: `reference`, `same`
    (a copy), `still` (fingers frozen in their first frame's pose, moved with the wrist) and
    `shaky` (fingers with 0.5 px of noise)."""
    root = tmp_path_factory.mktemp("hand_sets")
    rng = np.random.default_rng(0)
    for seed in range(3):
        perf = synthetic.synthesize_performance(seed, seconds=8.0, hands=True)
        synthetic.write_performance(perf, root / perf.name)
        still = perf.keypoints.copy()
        for hand in (LEFT, RIGHT):
            still[:, hand] = still[:1, hand] - still[:1, hand.start:hand.start + 1] \
                + still[:, hand.start:hand.start + 1]
        shaky = perf.keypoints.copy()
        shaky[:, 18:] += rng.normal(0, 0.5, shaky[:, 18:].shape)
        for folder, keypoints in (("reference", perf.keypoints), ("same", perf.keypoints),
                                  ("still", still), ("shaky", shaky)):
            (root / folder).mkdir(exist_ok=True)
            np.savez(root / folder / f"{perf.name}.npz", keypoints=keypoints,
                     confidence=perf.confidence, fps=np.float32(perf.fps),
                     skeleton=np.str_(OPENPOSE_18_HANDS.name),
                     music_path=np.str_(str(root / perf.name / "audio.wav")),
                     music_offset=np.float32(0.0))
    return root


def test_hand_figures_tell_frozen_and_shaking_fingers_from_real_ones(hand_sets):
    reference = evaluate.read_dance_set(hand_sets / "reference", "test")
    scores = {name: evaluate.score(reference, evaluate.read_dance_set(hand_sets / name, "test"),
                                   window_seconds=2.0)["rows"]
              for name in ("same", "still", "shaky")}
    truth = scores["same"]["ground_truth"]
    assert truth["fid_h"] > 0  # the floor: first half against second half
    assert scores["same"]["generated"]["fid_h"] == pytest.approx(0, abs=1e-6)
    assert scores["still"]["generated"]["fid_h"] > 10 * truth["fid_h"]
    assert scores["still"]["generated"]["hand_jitter"] < 1e-3
    assert scores["shaky"]["generated"]["hand_jitter"] > 3 * truth["hand_jitter"]
    # The body's figures are the body's alone: frozen fingers leave them as they are.
    for key in ("fid_k", "fid_g", "jitter", "bas"):
        assert scores["still"]["generated"][key] == pytest.approx(
            scores["same"]["generated"][key], abs=1e-6), key
    table = evaluate.markdown_table(evaluate.labelled_rows({"rows": scores["still"]}))
    assert "| FID_hand | Div_hand | hand jitter (H/s^2) |" in table


def test_hand_features_measure_curl_and_spread():
    straight = np.zeros((1, 21, 2))
    for finger, angle in enumerate((0.6, 0.2, 0.0, -0.2, -0.4)):
        direction = np.array([np.sin(angle), np.cos(angle)])
        for k in range(4):
            straight[0, 1 + 4 * finger + k] = (0.4 + 0.15 * k) * direction
    features = hand_pose_features(straight, np.ones((1, 21), bool))
    np.testing.assert_allclose(features[0, :5], 0, atol=1e-9)  # straight fingers: no curl
    np.testing.assert_allclose(features[0, 5:], [0.4, 0.2, 0.2, 0.2], atol=1e-9)
    folded = straight.copy()
    folded[0, 12] = folded[0, 10]  # the middle finger's tip back on its second joint
    assert hand_pose_features(folded, np.ones((1, 21), bool))[0, 2] > 0.3


def test_reconstruction_errors_count_hands_in_hand_lengths_apart_from_the_body():
    perf = synthetic.synthesize_performance(4, seconds=3.0, hands=True)
    truth, confidence = perf.keypoints[None, :64], perf.confidence[None, :64]
    length = hand_lengths(truth, confidence, OPENPOSE_18_HANDS)  # (1, 2) pixels
    decoded = truth.copy()
    decoded[..., LEFT, 0] += 0.1 * length[0, 0]
    decoded[..., RIGHT, 1] -= 0.3 * length[0, 1]
    figures = reconstruction_errors(decoded, confidence, truth, confidence,
                                    np.array([[perf.width, perf.height]]), 256)
    assert figures["error_bins_mean"] == 0  # the body is where it was
    assert figures["hand_error_mean"] == pytest.approx(0.2, rel=1e-4)
    assert figures["hand_error_p99"] == pytest.approx(0.3, rel=1e-4)
    assert figures["hand_shape_error_p99"] == pytest.approx(0, abs=1e-4)  # moved, not reshaped
    decoded[..., LEFT.start + 12, 0] += 0.5 * length[0, 0]  # the middle finger's tip alone
    figures = reconstruction_errors(decoded, confidence, truth, confidence,
                                    np.array([[perf.width, perf.height]]), 256)
    assert figures["hand_shape_error_mean"] == pytest.approx(0.5 / 40, rel=1e-3)  # 1 of 40
    assert "hand_error_mean" not in reconstruction_errors(
        decoded[..., :18, :], confidence[..., :18], truth[..., :18, :], confidence[..., :18],
        np.array([[perf.width, perf.height]]), 256)


def test_hands_in_their_wrists_frames_keep_their_shape_and_hang_from_the_wrists():
    """pose.hand_zoom: the hands' channels at 4x the frame's resolution about their wrists; the
    body's channels as without it; a decoded hand follows its decoded wrist."""
    perf = synthetic.synthesize_performance(4, seconds=3.0, hands=True)
    keypoints, confidence, size = perf.keypoints[:64], perf.confidence[:64], (perf.width,
                                                                              perf.height)
    plain = onehot.encode(keypoints, confidence, *size, 64)
    zoomed = onehot.encode(keypoints, confidence, *size, 64, hand_zoom=4.0)
    np.testing.assert_array_equal(zoomed[..., :36], plain[..., :36])
    errors = [reconstruction_errors(*(np.asarray(x)[None] for x in onehot.decode(
        image, *size, jump_cost=0.0, hand_zoom=zoom)), keypoints[None], confidence[None],
        np.array([size]), 64)["hand_shape_error_mean"] for image, zoom in ((plain, 0.0),
                                                                            (zoomed, 4.0))]
    assert errors[1] < errors[0] / 2.5
    # The left wrist's x channel 5 bins to the right: the left hand follows, the right stays.
    moved = np.asarray(zoomed).copy()
    moved[:, :, 2 * 7] = np.roll(moved[:, :, 2 * 7], 5, axis=0)
    before, _ = onehot.decode(zoomed, *size, jump_cost=0.0, hand_zoom=4.0)
    after, _ = onehot.decode(moved, *size, jump_cost=0.0, hand_zoom=4.0)
    np.testing.assert_allclose(after[:, LEFT, 0] - before[:, LEFT, 0], 5 * size[0] / 64,
                               rtol=1e-4)
    np.testing.assert_array_equal(after[:, RIGHT], before[:, RIGHT])
    # A hand whose wrist is unseen is unseen, in the image and decoded.
    unseen = confidence.copy()
    unseen[:10, 7] = 0
    image = np.asarray(onehot.encode(keypoints, unseen, *size, 64, hand_zoom=4.0))
    assert not image[:, :10, 2 * LEFT.start:2 * LEFT.stop].any()
    assert image[:, 10:, 2 * LEFT.start:2 * LEFT.stop].any()
    decoded, decoded_confidence = onehot.decode(image, *size, jump_cost=0.0, hand_zoom=4.0)
    assert np.isnan(decoded[:10, LEFT]).all()
    assert not decoded_confidence[:10, LEFT].any()
    # Body-only poses have no hands to zoom.
    np.testing.assert_array_equal(
        onehot.encode(keypoints[:, :18], confidence[:, :18], *size, 64, hand_zoom=4.0),
        plain[..., :36])


@pytest.mark.slow  # trains a (tiny) autoencoder and DiT in a Python process
def test_a_hands_model_trains_samples_and_is_evaluated_end_to_end(tmp_path):
    """The demo on configs/tiny_cpu_hands.py with tiny shapes: every stage with 60 keypoints and
    the hands in their wrists' frames (a cache that records the zoom), OpenPose JSON with both
    hands, hand figures of the build, a body-only dancer refused."""
    result = subprocess.run(
        [sys.executable, "-m", "hotdance_jax.demo", "--config", "configs/tiny_cpu_hands.py",
         "--out", str(tmp_path / "out"), *QUICK],
        capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 10/10 loss" in result.stdout
    out = tmp_path / "out"
    with np.load(out / "dance.npz") as dance:
        assert dance["keypoints"].shape == (120, 60, 2)
        assert str(dance["skeleton"]) == "openpose18_hands"
    manifest = json.loads((out / "work" / "latents" / "manifest.json").read_text())
    assert manifest["settings"]["hand_zoom"] == 4.0
    person = json.loads(sorted((out / "openpose").iterdir())[0].read_text())["people"][0]
    assert len(person["hand_left_keypoints_2d"]) == len(person["hand_right_keypoints_2d"]) == 63
    # Ten steps dance no body yet; the scoring of hands builds is of the build's splits here.
    build_dir = out / "work" / "segments"
    rows = evaluate.score(evaluate.read_dance_set(build_dir, "test"),
                          evaluate.read_dance_set(build_dir, "val"), 2.0)["rows"]
    assert np.isfinite(rows["ground_truth"]["hand_jitter"])
    assert all(np.isfinite(rows["generated"][k]) for k in ("fid_h", "div_h", "hand_jitter"))
    # A body-only pose cannot be this run's dancer: one line.
    config = sample.read_run_config(out / "work" / "run")
    body_only = tmp_path / "body.json"
    body_only.write_text(json.dumps({"people": [{"pose_keypoints_2d": [100.0, 100.0, 1.0] * 18}]}))
    with pytest.raises(InputError, match=r"body\.json: no hand_left_keypoints_2d in the person"):
        sample.read_dancer(body_only, config)
