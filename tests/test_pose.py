"""Skeleton converters, flipping, the one-hot codec and reference masks."""

from __future__ import annotations

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from data_pipeline.sources import dwm
from hotdance_jax.errors import InputError
from hotdance_jax.metrics import body_frame, jitter
from hotdance_jax.pose import (
    BODY_25,
    COCO_17,
    DWM_23,
    OPENPOSE_18,
    OPENPOSE_18_HANDS,
    decode,
    encode,
    flip_horizontal,
    prefix_frames,
    reference_mask,
    reference_pose,
    smooth,
    to_openpose18,
)
from hotdance_jax.pose.onehot import track
from tests.conftest import shared_file

DWM_DANCES = (
    "C_2 C_4 C_6 R_2 R_3 R_4 R_5 T_5 W_1 W_10 W_11 W_12 W_3 W_4 W_5 W_6 W_7 W_8".split()  # noqa: SIM905
)
DWM_FRAME = (1920, 1080)


def load_dwm_2d(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A Dance-with-Melody performance as OpenPose-18 pixels (T, 18, 2) in a 1920 x 1080 frame,
    through the data source's fixed virtual camera."""
    folder = shared_file(f"data/dwm/DANCE_{name}")
    pixels = dwm.project(dwm.ground(dwm.read_world(folder)), *DWM_FRAME)
    return to_openpose18(pixels, None, "dwm23")


# --- skeletons -------------------------------------------------------------------------------


@pytest.mark.parametrize("skeleton", [OPENPOSE_18, OPENPOSE_18_HANDS, COCO_17, BODY_25, DWM_23])
def test_skeleton_tables_are_consistent(skeleton):
    j = skeleton.num_joints
    assert len(set(skeleton.joints)) == j
    assert all(0 <= a < j and 0 <= b < j and a != b for a, b in skeleton.limbs)
    perm = skeleton.flip_permutation()
    np.testing.assert_array_equal(perm[perm], np.arange(j))  # an involution
    for a, b in skeleton.flip_pairs:  # pairs are true left/right twins by name
        names = {skeleton.joints[a], skeleton.joints[b]}
        assert {n.replace("right", "left") for n in names} == {n for n in names if "left" in n}
        assert len({n.replace("left", "right") for n in names}) == 1
    unpaired = set(range(j)) - {i for p in skeleton.flip_pairs for i in p}
    assert not any("left" in skeleton.joints[i] or "right" in skeleton.joints[i] for i in unpaired)


def test_openpose_colours():
    assert len(OPENPOSE_18.limb_colors) == len(OPENPOSE_18.limbs) == 17
    assert len(OPENPOSE_18.joint_colors) == 18
    assert OPENPOSE_18.limb_colors[0] == (255, 0, 0)


def _named_pose(skeleton, rng):
    """(1, J, 2) random coordinates and a lookup name -> coordinates."""
    xy = rng.uniform(0, 100, (1, skeleton.num_joints, 2)).astype(np.float32)
    return xy, {name: xy[0, i] for i, name in enumerate(skeleton.joints)}


@pytest.mark.parametrize("source", [COCO_17, BODY_25])
def test_converter_maps_joints_by_name(source):
    xy, by_name = _named_pose(source, np.random.default_rng(1))
    out, conf = to_openpose18(xy, None, source.name)
    for k, name in enumerate(OPENPOSE_18.joints):
        if name == "neck" and source is COCO_17:
            expected = (by_name["left_shoulder"] + by_name["right_shoulder"]) / 2
        else:
            expected = by_name[name]
        np.testing.assert_allclose(out[0, k], expected, rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(conf, 1.0)


def test_coco_neck_needs_both_shoulders():
    xy = np.ones((3, 17, 2), np.float32)
    conf = np.ones((3, 17), np.float32)
    conf[1, COCO_17.index("left_shoulder")] = 0
    xy[2, COCO_17.index("right_shoulder")] = np.nan
    out, out_conf = to_openpose18(xy, conf, "coco17")
    neck = OPENPOSE_18.index("neck")
    np.testing.assert_array_equal(out_conf[:, neck], [1, 0, 0])
    assert np.isnan(out[1:, neck]).all()
    assert out_conf[1, OPENPOSE_18.index("right_shoulder")] == 1
    assert out_conf[2, OPENPOSE_18.index("left_shoulder")] == 1


def test_confidence_is_carried_through():
    conf = np.linspace(0.1, 0.9, 25, dtype=np.float32)[None]
    _, out_conf = to_openpose18(np.zeros((1, 25, 2)), conf, "body25")
    for k, name in enumerate(OPENPOSE_18.joints):
        assert out_conf[0, k] == pytest.approx(conf[0, BODY_25.index(name)])


def test_dwm_converter_never_invents_joints():
    xy, by_name = _named_pose(DWM_23, np.random.default_rng(2))
    xyz = np.concatenate([xy, np.zeros((1, 23, 1), np.float32)], axis=-1)
    out, conf = to_openpose18(xyz, None, "dwm23")
    assert out.shape == (1, 18, 3)
    for name in ("nose", "right_eye", "left_eye"):
        assert conf[0, OPENPOSE_18.index(name)] == 0
        assert np.isnan(out[0, OPENPOSE_18.index(name)]).all()
    for op_name, dwm_name in [("right_ear", "head_right"), ("left_ear", "head_left"),
                              ("right_wrist", "right_wrist"), ("left_ankle", "left_ankle"),
                              ("right_hip", "right_hip"), ("left_elbow", "left_elbow")]:
        np.testing.assert_allclose(out[0, OPENPOSE_18.index(op_name), :2], by_name[dwm_name])
    neck = (by_name["left_shoulder"] + by_name["right_shoulder"]) / 2
    np.testing.assert_allclose(out[0, OPENPOSE_18.index("neck"), :2], neck, rtol=1e-6)
    assert conf.sum() == 15


def test_dwm_joint_identification_on_real_data():
    """The identified DWM joints are anatomically consistent: head above neck above hips above
    knees above ankles in upright frames, and the right side on the dancer's right."""
    for name in ("C_2", "W_1"):
        with gzip.open(shared_file(f"data/dwm/DANCE_{name}/skeletons.json.gz"), "rt") as f:
            joints = np.asarray(json.load(f)["skeletons"])
        height = {j: np.median(joints[:, DWM_23.index(j), 1]) for j in DWM_23.joints}
        assert height["head_left"] > height["left_shoulder"] > height["left_hip"]
        assert height["left_hip"] > height["left_knee"] > height["left_ankle"] > height["left_toe"]
        forward = joints[:, DWM_23.index("left_toe")] - joints[:, DWM_23.index("left_heel")]
        forward[:, 1] = 0
        leftward = np.cross([0.0, 1.0, 0.0], forward)
        right_to_left = (joints[:, DWM_23.index("left_shoulder")]
                         - joints[:, DWM_23.index("right_shoulder")])
        assert np.mean(np.sum(right_to_left * leftward, axis=1) > 0) > 0.95


def test_converter_rejects_wrong_joint_count():
    with pytest.raises(InputError, match=r"coco17 keypoints must have shape"):
        to_openpose18(np.zeros((4, 18, 2)), None, "coco17")
    with pytest.raises(InputError, match="unknown skeleton"):
        to_openpose18(np.zeros((4, 17, 2)), None, "smpl")


def test_flip_mirrors_and_swaps_sides():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 640, (5, 18, 2)).astype(np.float32)
    conf = rng.uniform(0, 1, (5, 18)).astype(np.float32)
    fxy, fconf = flip_horizontal(xy, conf, 640)
    rs, ls = OPENPOSE_18.index("right_shoulder"), OPENPOSE_18.index("left_shoulder")
    np.testing.assert_allclose(fxy[:, ls, 0], 640 - xy[:, rs, 0])
    np.testing.assert_allclose(fxy[:, ls, 1], xy[:, rs, 1])
    np.testing.assert_array_equal(fconf[:, ls], conf[:, rs])
    nose = OPENPOSE_18.index("nose")
    np.testing.assert_allclose(fxy[:, nose, 0], 640 - xy[:, nose, 0])
    back, back_conf = flip_horizontal(fxy, fconf, 640)
    np.testing.assert_allclose(back, xy, atol=1e-4)
    np.testing.assert_array_equal(back_conf, conf)
    assert not np.shares_memory(fxy, xy)


# --- one-hot codec ---------------------------------------------------------------------------


def bin_error(decoded, keypoints, bins, size):
    """Per-coordinate absolute error in bins."""
    return np.abs(np.asarray(decoded) - keypoints) / np.asarray(size) * bins


def test_encode_layout_by_hand():
    kp = np.array([[[10.0, 70.0], [99.9, 0.0]]])  # T=1, K=2, frame 100 x 80
    conf = np.array([[0.7, 1.0]])
    img = np.asarray(encode(kp, conf, 100, 80, 10))
    assert img.shape == (10, 1, 4)
    expected = np.zeros((10, 1, 4))
    expected[1, 0, 0] = 0.7  # x = 10 / 100 -> bin 1
    expected[8, 0, 1] = 0.7  # y = 70 / 80 -> bin 8
    expected[9, 0, 2] = 1.0  # x = 99.9 -> bin 9
    expected[0, 0, 3] = 1.0
    np.testing.assert_allclose(img, expected, rtol=1e-6)


def test_out_of_frame_nan_and_zero_confidence_give_empty_columns():
    kp = np.array([[[-1.0, 5.0], [100.0, 5.0], [np.nan, 5.0], [50.0, 5.0], [50.0, 5.0]]])
    conf = np.array([[1.0, 1.0, 1.0, 0.0, 1.0]])
    img = np.asarray(encode(kp, conf, 100, 100, 16))
    col = img[:, 0, :].sum(axis=0)
    np.testing.assert_array_equal(col[[0, 2, 4, 6, 7]], 0)  # x out, x = width, NaN, conf 0
    np.testing.assert_array_equal(col[[1, 3, 5, 8, 9]], 1)  # the valid y's, the valid keypoint
    decoded, dconf = decode(img, 100, 100)
    np.testing.assert_array_equal(np.asarray(dconf[0]), [0, 0, 0, 0, 1])
    assert np.isnan(np.asarray(decoded)[0, :4]).all()


SEGMENT = 256
jit_encode = jax.jit(encode, static_argnames=("bins",))
jit_decode = jax.jit(decode, static_argnames=("radius",))


def as_segments(x):
    """(T, ...) -> (ceil(T / SEGMENT), SEGMENT, ...), padding the end with invisible frames."""
    pad = -len(x) % SEGMENT
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    return x.reshape(-1, SEGMENT, *x.shape[1:])


# make test-fast round-trips one real dance (8 s each here), make test all of them
@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if i else [])
                                  for i, name in enumerate(DWM_DANCES)])
def test_round_trip_on_real_dances(name):
    kp, conf = (as_segments(a) for a in load_dwm_2d(name))  # one compilation for all dances
    visible = conf > 0
    bins = 512
    img = jit_encode(kp, conf, *DWM_FRAME, bins=bins)
    decoded, dconf = jit_decode(img, *DWM_FRAME)
    np.testing.assert_array_equal(np.asarray(dconf) > 0, visible)  # invisibility preserved
    err = bin_error(decoded, kp, bins, DWM_FRAME)[visible]
    assert err.max() <= 0.5 + 1e-3
    # A Gaussian blur along the bins (as a VAE reconstruction smears) still decodes within 1 bin.
    blurred = gaussian_filter1d(np.asarray(img), sigma=1.0, axis=1)
    bdecoded, bconf = jit_decode(blurred, *DWM_FRAME)
    np.testing.assert_array_equal(np.asarray(bconf) > 0, visible)
    assert bin_error(bdecoded, kp, bins, DWM_FRAME)[visible].max() <= 1.0


def test_smoothing_takes_out_the_quantisation_and_keeps_the_motion():
    """A real dance through the codec at B = 256: smoothing more than halves the decoded
    staircase's jitter and shrinks its error; the same filter changes the real dance's own jitter
    by less than 20%."""
    kp, conf = load_dwm_2d("W_5")
    kp, fps, bins = np.nan_to_num(kp), 25.0, 256
    decoded, decoded_conf = jit_decode(jit_encode(kp, conf, *DWM_FRAME, bins=bins), *DWM_FRAME)
    decoded, decoded_conf = np.asarray(decoded), np.asarray(decoded_conf)
    smoothed, visible = smooth(decoded, decoded_conf), conf > 0

    def dance_jitter(keypoints):
        return jitter(*body_frame(keypoints, conf), fps)

    assert dance_jitter(smoothed) < 0.5 * dance_jitter(decoded)  # 42 -> 11 on dwm's test split
    assert (bin_error(smoothed, kp, bins, DWM_FRAME)[visible].mean()
            < 0.8 * bin_error(decoded, kp, bins, DWM_FRAME)[visible].mean())
    assert abs(dance_jitter(smooth(kp, conf)) - dance_jitter(kp)) < 0.2 * dance_jitter(kp)


def test_smoothing_leaves_invisible_frames_and_short_runs_alone():
    t = np.arange(60) / 30
    truth = np.stack([40 + 10 * np.sin(2 * np.pi * t), 20 + 15 * t], -1)[:, None].repeat(3, 1)
    staircase = np.floor(truth) + 0.5  # (60, 3, 2) as a one-hot decodes, to the bin
    conf = np.ones((60, 3))
    conf[20:25, 0] = 0  # a gap: runs of 20 and 35 frames
    conf[:, 1] = 0
    conf[30:34, 1] = 1  # 4 frames: too short for a cubic's window
    conf[:, 2] = 0
    conf[10:17, 2] = 1  # 7 frames: a window of 7
    out = smooth(staircase, conf)
    seen = conf[:, 0] > 0
    assert np.abs(out - truth)[seen, 0].mean() < np.abs(staircase - truth)[seen, 0].mean()
    run = slice(25, 60)  # mean |acceleration| inside the long run
    assert (np.abs(np.diff(out[run, 0], 2, axis=0)).mean()
            < 0.3 * np.abs(np.diff(staircase[run, 0], 2, axis=0)).mean())
    np.testing.assert_array_equal(out[20:25, 0], staircase[20:25, 0])
    np.testing.assert_array_equal(out[:, 1], staircase[:, 1])
    np.testing.assert_array_equal(out[:10, 2], staircase[:10, 2])
    assert not np.array_equal(out[10:17, 2], staircase[10:17, 2])
    np.testing.assert_allclose(smooth(np.stack([staircase] * 2), np.stack([conf] * 2)),
                               np.stack([out] * 2))  # batches agree with one dance
    np.testing.assert_array_equal(smooth(staircase, conf, window=0), staircase)
    for window, order in ((8, 3), (1, 0), (5, 5)):
        with pytest.raises(InputError, match=f"pose.smooth_window {window}, "
                           f"pose.smooth_order {order}: expected an odd window"):
            smooth(staircase, conf, window=window, order=order)


def test_blurred_in_both_axes_decodes_within_one_bin():
    """A slowly moving keypoint, blurred in bins and time, decodes within a bin."""
    t = np.arange(64)
    kp = np.stack([200 + 30 * np.sin(t / 20), 300 + t * 0.5], axis=-1)[:, None, :]
    img = np.asarray(encode(kp, np.ones((64, 1)), 512, 512, 256))
    blurred = gaussian_filter1d(gaussian_filter1d(img, 1.5, axis=0), 0.7, axis=1)
    decoded, conf = decode(blurred, 512, 512)
    assert (np.asarray(conf) > 0).all()
    assert bin_error(decoded, kp, 256, 512)[4:-4].max() <= 1.0


def test_batch_and_single_agree_and_decode_jits():
    rng = np.random.default_rng(4)
    kp = rng.uniform(0, 256, (3, 24, 18, 2)).astype(np.float32)
    conf = (rng.uniform(0, 1, (3, 24, 18)) > 0.2).astype(np.float32)
    batch = encode(kp, conf, 256, 256, 64)
    assert batch.shape == (3, 64, 24, 36)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], encode(kp[i], conf[i], 256, 256, 64))
    bk, bc = jit_decode(batch, 256.0, 256.0)
    for i in range(3):
        sk, sc = decode(batch[i], 256, 256)
        np.testing.assert_allclose(bk[i], sk, rtol=1e-6)
        np.testing.assert_array_equal(bc[i], sc)
    np.testing.assert_array_equal(np.asarray(bc) > 0, conf > 0)


def test_visibility_is_the_window_mass_against_the_threshold():
    img = np.zeros((32, 3, 2), np.float32)
    img[10, :, :] = [[0.05, 0.05], [0.5, 0.5], [0.0, 0.0]]  # frame 0 faint, frame 1 clear
    spread = np.array([0.05, 0.06, 0.07, 0.06, 0.05], np.float32)[:, None]
    img[8:13, 2, :] = spread  # frame 2: peak 0.07 but window mass 0.29
    img[20, 2, :] = 0.08  # a higher but isolated peak elsewhere: the window is around it
    _, conf = decode(img, 32, 32, radius=2, threshold=0.1, jump_cost=0.0)  # per-frame peaks
    np.testing.assert_allclose(np.asarray(conf)[:, 0], [0.0, 0.5, 0.0], atol=1e-6)
    _, conf = decode(img, 32, 32, radius=2, threshold=0.1)  # the path stays at bin 10
    np.testing.assert_allclose(np.asarray(conf)[:, 0], [0.0, 0.5, 0.29], atol=1e-6)
    img[20, 2, :] = 0.0
    _, conf = decode(img, 32, 32, radius=2, threshold=0.1, jump_cost=0.0)
    np.testing.assert_allclose(np.asarray(conf)[:, 0], [0.0, 0.5, 0.29], atol=1e-6)


def two_mode_columns(frames: int, bins: int, modes) -> np.ndarray:
    """(bins, frames, 1) image: for each (bin per frame (frames,), mass per frame (frames,)) a
    Gaussian bump (sigma 1 bin) of that mass centred on that bin."""
    grid = np.arange(bins)[:, None]
    image = np.zeros((bins, frames), np.float32)
    for centre, mass in modes:
        bump = np.exp(-0.5 * (grid - np.asarray(centre)[None]) ** 2)
        image += np.asarray(mass)[None] * bump / bump.sum(axis=0, keepdims=True)
    return image[..., None]


def test_track_ignores_a_brief_flip_to_another_mode():
    """A dancer's wrist at bin 40 with a ghost at bin 100 that outweighs it for 2 frames: peaks
    jump 60 bins there and back, the tracked path does not; where the ghost wins for 30 frames
    the path moves to it (the evidence, about 30 x 1.4 nats, outweighs two jumps of 16), and back
    when the wrist wins again for long enough (36 x 0.85 nats > 16)."""
    frames, bins = 96, 128
    ghost = np.full(frames, 0.3)
    ghost[10:12] = 0.7
    ghost[30:60] = 0.8
    image = two_mode_columns(frames, bins, [(np.full(frames, 40.0), 1 - ghost),
                                            (np.full(frames, 100.0), ghost)])
    peaks = np.asarray(track(np.moveaxis(image, 0, -1), 0.1, 0.0, 16.0, 0))  # jump cost 0: peaks
    tracked = np.asarray(track(np.moveaxis(image, 0, -1), 0.1, 1.0, 16.0, 4))[:, 0]
    np.testing.assert_array_equal(peaks[:10, 0], 40)
    np.testing.assert_array_equal(peaks[10:12, 0], 100)
    np.testing.assert_array_equal(tracked[:30], 40)
    np.testing.assert_array_equal(tracked[30:60], 100)
    np.testing.assert_array_equal(tracked[60:], 40)


def test_track_follows_a_moving_keypoint_past_a_still_distractor():
    """A keypoint sweeping 3 bins per frame (within the free motion) across a still distractor
    of 0.9 its mass."""
    frames, bins = 40, 160
    moving = 20.0 + 3.0 * np.arange(frames)
    image = two_mode_columns(frames, bins, [(moving, np.full(frames, 0.52)),
                                            (np.full(frames, 70.0), np.full(frames, 0.48))])
    still_y = two_mode_columns(frames, bins, [(np.full(frames, 10.0), np.ones(frames))])
    keypoints, _ = decode(np.concatenate([image, still_y], axis=-1), bins, bins)  # 1 bin = 1 px
    apart = np.abs(moving - 70.0) > 6  # where the two bumps overlap their mean is in between
    np.testing.assert_allclose(np.asarray(keypoints)[apart, 0, 0], moving[apart] + 0.5, atol=0.05)
    # Were all motion paid for, the still distractor would be the cheaper path.
    still, _ = decode(np.concatenate([image, still_y], axis=-1), bins, bins, free_motion=0)
    assert np.abs(np.asarray(still)[:, 0, 0] - moving - 0.5).max() > 40


def test_track_finds_the_cheapest_path():
    """Against an exhaustive dynamic programme over every (bin, bin) pair on random columns."""
    rng = np.random.default_rng(7)
    frames, bins, cost, cap, free = 9, 12, 0.7, 2.5, 1
    columns = rng.dirichlet(np.full(bins, 0.3), size=(frames, 5)).astype(np.float32)
    unary = -np.log(columns.astype(np.float64) + 1e-20)
    distance = np.abs(np.arange(bins)[:, None] - np.arange(bins)[None])
    jump = np.minimum(cost * np.maximum(distance - free, 0), cap)
    path = np.asarray(track(jnp.asarray(columns), 0.1, cost, cap, free))  # (frames, 5)
    for c in range(5):
        best = unary[0, c]
        for t in range(1, frames):
            best = (best[:, None] + jump).min(axis=0) + unary[t, c]
        found = unary[np.arange(frames), c, path[:, c]].sum() + jump[path[:-1, c],
                                                                     path[1:, c]].sum()
        np.testing.assert_allclose(found, best.min(), rtol=1e-5)


# --- reference masks and frames --------------------------------------------------------------


def mask_by_design(n, bins, frames, stride=8):
    """docs/design.md's recipe, literally: q = N // 8, r = N % 8, clamped when N >= T."""
    m = np.zeros((stride, bins, frames))
    if n >= stride * frames:
        m[:] = 1
        return m
    q, r = divmod(n, stride)
    m[:, :, :q] = 1
    if r > 0:
        m[:r, :, q] = 1
    return m


@pytest.mark.parametrize("n", [0, 8, 16, 13, 5, 31, 32, 40, 1000])
def test_reference_mask_matches_design(n):
    mask = np.asarray(reference_mask(prefix_frames(n, 32), latent_bins=6))
    assert mask.shape == (6, 4, 8)
    np.testing.assert_array_equal(np.moveaxis(mask, -1, 0), mask_by_design(n, 6, 4))


def test_reference_mask_by_hand():
    mask = reference_mask(prefix_frames(10, 24), 1)[0]  # (T'=3, 8)
    expected = np.zeros((3, 8))
    expected[0] = 1  # frames 0-7
    expected[1, :2] = 1  # frames 8, 9
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 10


def test_reference_pose_switches_to_shape_after_n_frames():
    kp = np.arange(5 * 2 * 2, dtype=np.float32).reshape(5, 2, 2)
    conf = np.full((5, 2), 0.9, np.float32)
    shape_kp = np.array([[-1.0, -2.0], [-3.0, -4.0]], np.float32)
    shape_conf = np.array([1.0, 0.0], np.float32)
    ref_kp, ref_conf = reference_pose(kp, conf, shape_kp, shape_conf, prefix_frames(2, 5))
    np.testing.assert_array_equal(ref_kp[:2], kp[:2])
    np.testing.assert_array_equal(ref_kp[2:], np.broadcast_to(shape_kp, (3, 2, 2)))
    np.testing.assert_array_equal(ref_conf, np.float32([[0.9, 0.9]] * 2 + [[1.0, 0.0]] * 3))
    all_real, _ = reference_pose(kp, conf, shape_kp, shape_conf, prefix_frames(99, 5))
    np.testing.assert_array_equal(all_real, kp)


def test_keyframes_are_the_known_frames_of_mask_and_pose():
    known = np.zeros((2, 16), bool)
    known[0, [3, 12]] = True  # two keyframes
    known[1, :5] = True  # a prefix
    mask = np.asarray(reference_mask(known, latent_bins=3))  # (2, 3, T'=2, 8)
    assert mask.shape == (2, 3, 2, 8)
    np.testing.assert_array_equal(mask[0, 1], [[0, 0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0]])
    np.testing.assert_array_equal(mask[1, 0].ravel(), prefix_frames(5, 16))
    kp = np.arange(16 * 2 * 2, dtype=np.float32).reshape(16, 2, 2)
    conf = np.ones((16, 2), np.float32)
    ref_kp = np.asarray(reference_pose(kp, conf, np.zeros((2, 2)), np.ones(2), known[0])[0])
    np.testing.assert_array_equal(ref_kp[[3, 12]], kp[[3, 12]])
    assert not ref_kp[np.setdiff1d(np.arange(16), [3, 12])].any()
