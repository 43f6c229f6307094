r"""How well each autoencoder keeps the keypoints: encode + decode held-out segments, measure.

  python bench/vae_quality.py --segments data/dwm --split test --bins 512 \
      --onehot-kl runs/vae_dwm/onehot_kl.msgpack --taef2 ../shared/weights/taef2 \
      [--diffusers path/to/vae] [--num 32] [--frames 64] [--jump-cost 1] [--jump-cap 16] \
      [--free-motion 4] [--radius 0] [--smooth-window 9] [--smooth-order 3] [--hand-zoom 0]
      [--dances DIR] [--per-joint] [--per-sequence] [--per-speed] [--batch 32] \
      [--refine-steps 5 --refine-sigma 2]

Per autoencoder (and the bare one-hot codec as the floor): mean and 99th-percentile keypoint error
after decoding, in bins and in % of the frame width, visibility accuracy (decoded visible == truly
visible, over all keypoints and frames), side swaps (the fraction of decoded left/right joints
nearer their twin's true place than their own: 0.5 when sides are lost), height swaps (the same
along y alone: 0.5 when which twin is the higher is lost), the decoded dances' jitter
(mean keypoint acceleration, body lengths/s^2, beside the real segments'), latent shape, and encode
throughput in segments/s, all measured in this one run. Decoding tracks each column's bins through
time with --jump-cost / --jump-cap / --free-motion (the config's pose.decode_jump_cost,
decode_jump_cap and decode_free_motion; --jump-cost 0: per-frame peaks; --radius: decode_radius,
the soft-argmax half-width in bins), and smooths the keypoints in time with --smooth-window /
--smooth-order (pose.smooth_window and smooth_order; --smooth-window 0: not smoothed), as sampling
does. The issue's bar for the default: mean <= 1 bin, p99 <= 3 bins, visibility >= 99%.
The figures in bins, % width and L/s^2 are the body's; segments with hands (openpose18_hands)
add the hand keypoints' mean and p99 error in hand lengths, of their places and of their
offsets from their wrists (the hands' shapes; metrics.reconstruction_errors); --hand-zoom is
pose.hand_zoom, the hands encoded in their wrists' frames (pose/hand_frame.py).

--dances DIR also writes every decoded segment as a dance npz (python -m hotdance_jax.sample's
keys), one folder per row (DIR/codec, DIR/onehot-kl, ...) and the real segments in DIR/real, so
that `python -m hotdance_jax.evaluate --generated DIR/onehot-kl --reference SEGMENTS` scores what
the autoencoder alone leaves of the real dances: the ceiling of any DiT trained on its latents.

--per-joint also prints, per row, each body joint's mean and p99 error along x and y (bins) and
its share of the keypoint errors above the row's p99 (beside its share of all the errors):
which joints make the p99; --per-sequence the same per sequence (performance): which dances make
it; --per-speed the same per band of the true keypoint's speed along the error's axis
(bins/frame): whether fast motion makes it.

--refine-steps N adds the row "onehot-kl-refined": the onehot-kl autoencoder's latents moved by N
Adam steps on its decoder's fit to each segment (vae.onehot_kl.refine_latents, the position
target blurred by --refine-sigma bins, as config.latents.refine_steps refines the DiT's): how
much of the error the encoder's guess leaves that the decoder could remove.
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import numpy as np

from data_pipeline.segments import SegmentStore
from hotdance_jax.errors import InputError
from hotdance_jax.io import save_npz
from hotdance_jax.metrics import body_frame, jitter, reconstruction_errors
from hotdance_jax.metrics.reconstruction import in_bins
from hotdance_jax.pose import body_of, decoded_poses, encode, skeleton_of
from hotdance_jax.pose.onehot import (
    DEFAULT_DECODE_RADIUS,
    DEFAULT_FREE_MOTION,
    DEFAULT_JUMP_CAP,
    DEFAULT_JUMP_COST,
)
from hotdance_jax.pose.smoothing import DEFAULT_SMOOTH_ORDER, DEFAULT_SMOOTH_WINDOW
from hotdance_jax.vae import Refinement, load_autoencoder

_encode = jax.jit(encode, static_argnames=("bins", "hand_zoom"))


def load_segments(directory: str, split: str, num: int, frames: int) -> dict:
    """The first `frames` frames of the first `num` segments of a split, stacked, with each
    segment's name, sequence, music file and music offset (s)."""
    store = SegmentStore(directory, split)
    records = store.__getitems__(range(min(num, len(store))))
    return {
        "keypoints": np.stack([np.nan_to_num(r["keypoints"][:frames]) for r in records]),
        "confidence": np.stack([r["confidence"][:frames] for r in records]),
        "size": np.array([[r["width"], r["height"]] for r in records], np.float32),
        "fps": float(records[0]["fps"]),
        "names": [f"{r['sequence_id']}_{int(r['start_frame']):06d}" for r in records],
        "sequences": [str(r["sequence_id"]) for r in records],
        "music": [(str(r["audio_path"]), float(r["audio_offset"])) for r in records],
    }


def mean_jitter(keypoints: np.ndarray, confidence: np.ndarray, fps: float) -> float:
    """Mean keypoint acceleration (body lengths / s^2) of segments (N, T, K, 2) px, (N, T, K),
    over the segments that show a body length (a poor reconstruction may lose the torso)."""
    values = []
    for k, c in zip(keypoints, confidence, strict=True):
        try:
            values.append(jitter(*body_frame(*body_of(k, c)), fps))
        except InputError:
            continue
    return float(np.mean(values)) if values else float("nan")


def save_dances(directory: str, keypoints: np.ndarray, confidence: np.ndarray,
                data: dict) -> None:
    """Segments (N, T, K, 2) px with confidence (N, T, K) as dance npz files in `directory`."""
    for k, c, name, (music, offset), (width, height) in zip(
            keypoints, confidence, data["names"], data["music"], data["size"], strict=True):
        save_npz(f"{directory}/{name}.npz", keypoints=k.astype(np.float32),
                 confidence=c.astype(np.float32), fps=np.float32(data["fps"]),
                 width=np.int32(width), height=np.int32(height),
                 skeleton=np.str_(skeleton_of(k.shape[1]).name), music_path=np.str_(music),
                 music_offset=np.float32(offset))


def keypoint_errors(kp: np.ndarray, conf: np.ndarray, data: dict, bins: int,
                    dances: str | None = None) -> dict[str, float]:
    """Error, visibility and jitter figures of decoded keypoints (N, T, K, 2) pixels with
    confidence (N, T, K) against the true ones; the decoded segments saved as dances in the
    folder `dances` when given."""
    size = data["size"]
    if dances:
        save_dances(dances, kp, conf, data)
    figures = reconstruction_errors(kp, conf, data["keypoints"], data["confidence"], size, bins)
    skeleton = skeleton_of(kp.shape[-2])  # the figures in bins and L/s^2 are the body's
    error, both = body_errors(kp, conf, data, bins)
    percent_width = (np.abs(kp - data["keypoints"])[..., skeleton.body, 0]
                     / size[:, None, None, 0] * 100)[both]
    nan = float("nan")
    return {
        "mean_bins": figures["error_bins_mean"],
        "p99_bins": figures["error_bins_p99"],
        "mean_pct_width": float(percent_width.mean()) if both.any() else nan,
        "p99_pct_width": float(np.percentile(percent_width, 99)) if both.any() else nan,
        "visibility_accuracy": figures["visibility_accuracy"],
        "side_swaps": figures["side_swaps"],
        "height_swaps": figures["height_swaps"],
        "jitter": mean_jitter(kp, conf, data["fps"]),
        "per_joint": joint_errors(error, both, skeleton, figures["error_bins_p99"]),
        "per_sequence": sequence_errors(error, both, data["sequences"],
                                        figures["error_bins_p99"]),
        "per_speed": speed_errors(error, both, body_bins(data["keypoints"], data["size"], bins),
                                  figures["error_bins_p99"]),
        **{k: v for k, v in figures.items() if k.startswith("hand_")},
    }


def body_errors(keypoints: np.ndarray, confidence: np.ndarray, data: dict,
                bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis errors in bins (N, T, J, 2) of decoded body keypoints (N, T, K, 2) pixels against
    the true ones, and where both are seen (N, T, J); J the skeleton's body joints."""
    body = skeleton_of(keypoints.shape[-2]).body
    error = np.abs(body_bins(keypoints, data["size"], bins)
                   - body_bins(data["keypoints"], data["size"], bins))
    return error, ((confidence > 0) & (data["confidence"] > 0))[..., body]


def body_bins(keypoints: np.ndarray, size: np.ndarray, bins: int) -> np.ndarray:
    """Keypoints (N, T, K, 2) pixels in frames of `size` (N, 2) -> the body joints' (N, T, J, 2)
    in bins."""
    return in_bins(keypoints, size, bins)[..., skeleton_of(keypoints.shape[-2]).body, :]


def error_shares(groups: dict[str, np.ndarray],
                 p99: float) -> dict[str, tuple[float, float, float, float]]:
    """Per group of errors (bins, any shape): mean, p99, the share of all groups' errors above
    `p99` that are this group's, and its share of all groups' errors; empty groups left out."""
    above = max(sum(int((e > p99).sum()) for e in groups.values()), 1)
    count = max(sum(e.size for e in groups.values()), 1)
    return {name: (float(e.mean()), float(np.percentile(e, 99)), float((e > p99).sum() / above),
                   e.size / count)
            for name, e in groups.items() if e.size}


def joint_errors(error: np.ndarray, seen: np.ndarray, skeleton,
                 p99: float) -> dict[str, tuple[float, float, float, float]]:
    """Per body joint and axis ("right_wrist y"): error_shares of body_errors' errors (N, T, J, 2)
    bins where `seen` (N, T, J): which joints make the p99."""
    names = np.array(skeleton.joints)[skeleton.body]
    return error_shares({f"{joint} {axis}": error[..., j, a][seen[..., j]]
                         for j, joint in enumerate(names) for a, axis in enumerate("xy")}, p99)


def sequence_errors(error: np.ndarray, seen: np.ndarray, sequences: list[str],
                    p99: float) -> dict[str, tuple[float, float, float, float]]:
    """Per sequence (performance) of the N segments, named by `sequences`: error_shares of
    body_errors' errors (N, T, J, 2) bins where `seen` (N, T, J), both axes: which performances
    make the p99."""
    names = np.array(sequences)[:, None, None]
    return error_shares({name: error[seen & (names == name)] for name in sorted(set(sequences))},
                        p99)


SPEED_BANDS = (1.0, 2.0, 4.0)  # bins/frame: the edges of speed_errors' bands


def speed_errors(error: np.ndarray, seen: np.ndarray, truth: np.ndarray,
                 p99: float) -> dict[str, tuple[float, float, float, float]]:
    """Per band of the true keypoint's speed along the error's axis (bins/frame, the central
    difference of truth (N, T, J, 2) bins, counted where the joint is seen in the frame and its
    neighbours): error_shares of body_errors' errors (N, T, J, 2) bins: whether fast motion makes
    the p99."""
    steady = seen.copy()
    steady[:, 1:] &= seen[:, :-1]
    steady[:, :-1] &= seen[:, 1:]
    steady = np.broadcast_to(steady[..., None], error.shape)
    band = np.digitize(np.abs(np.gradient(truth, axis=1)), SPEED_BANDS)
    edges = (0.0, *SPEED_BANDS, np.inf)
    return error_shares({f"{lo:g} to {hi:g} bins/frame": error[steady & (band == i)]
                         for i, (lo, hi) in enumerate(itertools.pairwise(edges))}, p99)


def decode_in_batches(data: dict, bins: int, pose: dict, autoencoders: dict,
                      batch: int) -> dict[str, dict]:
    """Encodes the segments as one-hot images `batch` at a time (memory: one batch of images and
    activations at once) and decodes them as the config `pose` section (a dict of its decode_*,
    smooth_* and hand_zoom keys) asks, through the bare codec ("codec") and each autoencoder:
    per row, keypoints (N, T, K, 2) pixels, confidence (N, T, K), latent shape and encode
    segments/s (timed over the batches of the first one's shape, after a warm-up call)."""
    size = data["size"]
    poses = {name: [] for name in ("codec", *autoencoders)}
    latent_shape = {"codec": None}
    seconds = dict.fromkeys(autoencoders, 0.0)
    timed = 0
    for start in range(0, len(size), batch):
        part = slice(start, start + batch)
        images = _encode(data["keypoints"][part], data["confidence"][part], size[part, 0],
                         size[part, 1], bins=bins, hand_zoom=pose.get("hand_zoom", 0.0))
        latent_shape["codec"] = tuple(images.shape[1:])
        poses["codec"].append(decoded_poses(images, size[part, 0], size[part, 1], pose))
        timing = start == 0 or len(images) == batch
        timed += len(images) if timing else 0
        for name, autoencoder in autoencoders.items():
            if start == 0:
                jax.block_until_ready(autoencoder.encode(images))
            begin = time.perf_counter()
            latents = autoencoder.encode(images)
            if autoencoder.refine_fn is not None:
                latents = autoencoder.refine(images, latents)
            latents = jax.block_until_ready(latents)
            seconds[name] += time.perf_counter() - begin if timing else 0.0
            latent_shape[name] = tuple(latents.shape[1:])
            poses[name].append(decoded_poses(autoencoder.decode(latents), size[part, 0],
                                             size[part, 1], pose))
    return {name: {"keypoints": np.concatenate([kp for kp, _ in parts]),
                   "confidence": np.concatenate([conf for _, conf in parts]),
                   "latent_shape": latent_shape[name],
                   "segments_per_s": timed / seconds[name] if name in seconds else float("nan")}
            for name, parts in poses.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--bins", type=int, required=True)
    parser.add_argument("--num", type=int, default=32, help="segments to measure")
    parser.add_argument("--frames", type=int, default=64, help="frames of each segment used")
    parser.add_argument("--onehot-kl", help="onehot-kl weights file")
    parser.add_argument("--taef2", help="folder with taef2_encoder.pth and taef2_decoder.pth")
    parser.add_argument("--diffusers", help="diffusers AutoencoderKL folder or .safetensors")
    parser.add_argument("--jump-cost", type=float, default=DEFAULT_JUMP_COST,
                        help="decoding's cost of a path's motion, nats per bin (0: peaks)")
    parser.add_argument("--jump-cap", type=float, default=DEFAULT_JUMP_CAP,
                        help="decoding's largest cost of one jump, nats")
    parser.add_argument("--free-motion", type=int, default=DEFAULT_FREE_MOTION,
                        help="bins per frame decoding's path moves at no cost")
    parser.add_argument("--radius", type=int, default=DEFAULT_DECODE_RADIUS,
                        help="decoding's soft-argmax half-width, bins (0: the peak bin)")
    parser.add_argument("--smooth-window", type=int, default=DEFAULT_SMOOTH_WINDOW,
                        help="frames of the Savitzky-Golay filter on decoded keypoints (0: none)")
    parser.add_argument("--smooth-order", type=int, default=DEFAULT_SMOOTH_ORDER,
                        help="its polynomial degree")
    parser.add_argument("--hand-zoom", type=float, default=0.0,
                        help="pose.hand_zoom: hands encoded in their wrists' frames at this zoom")
    parser.add_argument("--dances", help="folder to write the decoded segments to as dances")
    parser.add_argument("--per-joint", action="store_true",
                        help="also print each joint's errors and share of those above the p99")
    parser.add_argument("--batch", type=int, default=32,
                        help="segments encoded and decoded at once (memory)")
    parser.add_argument("--per-sequence", action="store_true",
                        help="also print each sequence's errors and share of those above the p99")
    parser.add_argument("--per-speed", action="store_true",
                        help="also print the errors and share of those above the p99 per band of "
                             "the true keypoint's speed")
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="add the onehot-kl row with latents refined by this many Adam steps")
    parser.add_argument("--refine-sigma", type=float, default=2.0,
                        help="the refinement's position target blurred by this many bins")
    args = parser.parse_args()
    if args.refine_steps < 0 or (args.refine_steps and not args.onehot_kl):
        parser.error(f"--refine-steps {args.refine_steps}: needs >= 0 and --onehot-kl")

    data = load_segments(args.segments, args.split, args.num, args.frames)
    channels = 2 * data["keypoints"].shape[-2]
    pose = {"decode_jump_cost": args.jump_cost, "decode_jump_cap": args.jump_cap,
            "decode_free_motion": args.free_motion, "decode_radius": args.radius,
            "smooth_window": args.smooth_window, "smooth_order": args.smooth_order,
            "hand_zoom": args.hand_zoom}
    autoencoders = {name: load_autoencoder(name, weights, channels)
                    for name, weights in (("onehot-kl", args.onehot_kl), ("taef2", args.taef2),
                                          ("diffusers-kl", args.diffusers)) if weights}
    if args.refine_steps:
        autoencoders["onehot-kl-refined"] = load_autoencoder(
            "onehot-kl", args.onehot_kl, channels,
            refine=Refinement(args.refine_steps, args.refine_sigma))
    decoded = decode_in_batches(data, args.bins, pose, autoencoders, args.batch)
    if args.dances:
        save_dances(f"{args.dances}/real", data["keypoints"], data["confidence"], data)
    rows = {}
    for name, d in decoded.items():
        row = "one-hot codec only (floor)" if name == "codec" else name
        rows[row] = {**keypoint_errors(d["keypoints"], d["confidence"], data, args.bins,
                                       args.dances and f"{args.dances}/{name}"),
                     "latent_shape": d["latent_shape"], "segments_per_s": d["segments_per_s"]}
    print(f"{len(data['size'])} {args.split} segments of {args.frames} frames, "
          f"B = {args.bins} bins, "
          f"{jax.devices()[0].platform}; the real segments' jitter "
          f"{mean_jitter(data['keypoints'], data['confidence'], data['fps']):.2f} L/s^2")
    hands = "hand_error_mean" in rows["one-hot codec only (floor)"]
    print("| autoencoder | mean err (bins) | p99 err (bins) | mean err (% width) | "
          "p99 err (% width) | visibility acc. | side swaps | height swaps | jitter (L/s^2) | "
          + ("hand err mean (hand lengths) | hand err p99 | hand shape err mean | "
             "hand shape err p99 | " if hands else "")
          + "latent shape | encode segments/s |")
    print("|---" * (15 if hands else 11) + "|")
    for name, r in rows.items():
        print(f"| {name} | {r['mean_bins']:.3f} | {r['p99_bins']:.3f} | "
              f"{r['mean_pct_width']:.3f} | {r['p99_pct_width']:.3f} | "
              f"{100 * r['visibility_accuracy']:.2f}% | {r['side_swaps']:.3f} | "
              f"{r['height_swaps']:.3f} | {r['jitter']:.2f} | "
              + (f"{r['hand_error_mean']:.3f} | {r['hand_error_p99']:.3f} | "
                 f"{r['hand_shape_error_mean']:.3f} | {r['hand_shape_error_p99']:.3f} | "
                 if hands else "")
              + f"{r['latent_shape']} | {r['segments_per_s']:.2f} |")
    for wanted, key, what in ((args.per_joint, "per_joint", "joint, axis"),
                              (args.per_sequence, "per_sequence", "sequence"),
                              (args.per_speed, "per_speed", "speed")):
        for name, r in rows.items() if wanted else ():
            print(f"\n{name}: each {what}'s error (bins) and share of the errors above the p99")
            print(f"| {what} | mean | p99 | share above the p99 | share of all |\n"
                  "|---|---|---|---|---|")
            for group, (mean, p99, share, size) in r[key].items():
                print(f"| {group} | {mean:.2f} | {p99:.2f} | {share:.3f} | {size:.3f} |")


if __name__ == "__main__":
    main()
