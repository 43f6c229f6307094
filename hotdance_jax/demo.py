"""The README's `make demo`: everything that exists so far, end to end, on the built-in default.

  python -m hotdance_jax.demo --config configs/tiny_cpu.py --out demo_out

1. A real song, when one is on this machine (librosa's example 'choice', found through
   LIBROSA_DATA_DIR or HOTDANCE_SHARED): its tempo, beats and frame-aligned music features.
2. A synthetic performance (procedural drum music with a dancer on its beats): its music features,
   its dance as one-hot pose images of config.pose.bins bins in segments of
   config.pose.segment_frames frames, decoded back, with the round-trip error in bins.
3. Writes to --out: dance.npz (the decoded dance, DESIGN.md section 3), music.wav, onehot.png (the
   first segment's image), speed_beats.png (keypoint speed against the music's beats).
Training and sampling replace step 2's dance with a generated one when they land.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from absl import flags

from data_pipeline.sources.synthetic import synthesize_performance
from hotdance_jax import cli, render
from hotdance_jax.audio import beat_times, load_audio, music_features, tempo_bpm
from hotdance_jax.io import save_npz, save_wav
from hotdance_jax.pose import OPENPOSE_18, decode, encode

FLAGS = flags.FLAGS


def find_example_song() -> Path | None:
    """librosa's example 'choice' on this machine, or None (the demo never downloads)."""
    folders = [os.environ.get("LIBROSA_DATA_DIR")]
    if os.environ.get("HOTDANCE_SHARED"):
        folders.append(Path(os.environ["HOTDANCE_SHARED"]) / "data/music/librosa-data/audio")
    for folder in filter(None, folders):
        found = sorted(Path(folder).glob("admiralbob77_-_Choice_-_Drum-bass.*"))
        if found:
            return found[0]
    return None


def analyse_song(path: Path, config: ml_collections.ConfigDict) -> None:
    """Prints tempo, beat count and the shape of the music features of a song."""
    audio = load_audio(path, config.audio.sample_rate)
    seconds = len(audio) / config.audio.sample_rate
    frames = int(seconds * config.pose.fps)
    features = music_features(audio, config.audio.sample_rate, config.pose.fps, frames,
                              config.audio.log_mel_bands)
    beats = beat_times(audio, config.audio.sample_rate)
    print(f"[1/3] real song {path.name}: {seconds:.1f} s, "
          f"{tempo_bpm(audio, config.audio.sample_rate):.1f} BPM, {len(beats)} beats, "
          f"music features {features.shape} at {config.pose.fps:g} fps")


def segment_round_trip(
    keypoints: np.ndarray, confidence: np.ndarray, config: ml_collections.ConfigDict,
    width: float, height: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encodes whole segments of the dance as one-hot images and decodes them.

    Returns the images (S, B, T, 2K) and the decoded keypoints (S*T, K, 2) and confidence.
    """
    t = config.pose.segment_frames
    usable = len(keypoints) // t * t
    kp = keypoints[:usable].reshape(-1, t, *keypoints.shape[1:])
    conf = confidence[:usable].reshape(-1, t, confidence.shape[1])
    images = jax.jit(encode, static_argnums=4)(kp, conf, width, height, config.pose.bins)
    decoded, decoded_conf = jax.jit(decode, static_argnames="radius")(
        images, width, height, radius=config.pose.decode_radius,
        threshold=config.pose.visibility_threshold)
    return (np.asarray(images), np.asarray(decoded).reshape(usable, -1, 2),
            np.asarray(decoded_conf).reshape(usable, -1))


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("configs/tiny_cpu.py")
    flags.DEFINE_string("out", "demo_out", "Output folder.")


def main(argv: list[str]) -> None:
    del argv
    config, out = FLAGS.config, Path(FLAGS.out)
    start = time.perf_counter()
    song = find_example_song()
    if song:
        analyse_song(song, config)
    else:
        print("[1/3] no real song on this machine (set LIBROSA_DATA_DIR); skipping")

    synth = config.data.synthetic
    perf = synthesize_performance(config.seed, synth.seconds, config.pose.fps,
                                  config.audio.sample_rate, synth.width, synth.height)
    features = music_features(perf.audio, perf.sample_rate, perf.fps, len(perf.keypoints))
    print(f"[2/3] synthetic performance {perf.name}: {synth.seconds:g} s, "
          f"{np.median(perf.tempo_bpm):.1f} BPM, {len(perf.beat_times)} beats, "
          f"music features {features.shape}")
    images, decoded, decoded_conf = segment_round_trip(
        perf.keypoints, perf.confidence, config, perf.width, perf.height)
    truth = perf.keypoints[: len(decoded)]
    visible = perf.confidence[: len(decoded)] > 0
    size = np.array([perf.width, perf.height])
    error = np.abs(decoded - truth)[visible] / size * config.pose.bins
    print(f"      one-hot images {images.shape} (segments, bins, frames, channels); "
          f"round-trip error mean {error.mean():.3f} bin, max {error.max():.3f} bin")

    save_wav(out / "music.wav", perf.audio, perf.sample_rate)
    save_npz(out / "dance.npz", keypoints=decoded, confidence=decoded_conf, fps=perf.fps,
             width=perf.width, height=perf.height, skeleton=OPENPOSE_18.name,
             music=str(out / "music.wav"), music_offset=0.0)
    render.save_onehot_image(out / "onehot.png", images[0])
    render.save_speed_plot(out / "speed_beats.png", decoded, decoded_conf, perf.fps,
                           perf.beat_times, title=f"{perf.name}: keypoint speed and beats")
    print(f"[3/3] wrote {out}/dance.npz, music.wav, onehot.png, speed_beats.png "
          f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
