"""The README's `make demo`: the whole pipeline on the built-in default, then a dance for a song.

  python -m hotdance_jax.demo --config configs/tiny_cpu.py --out demo_out [--seconds 30]

1. Builds the synthetic dataset (procedural drum music with a dancer on its beats).
2. Trains the config's onehot-kl autoencoder on it (none with --config.vae.name=raw-coords),
   then encodes the latent cache.
3. Trains the config's DiT on the cache.
4. Samples a dance for a real song: librosa's example 'choice' (from LIBROSA_DATA_DIR,
   $HOTDANCE_SHARED/data/music, or librosa's download when the network allows), else a
   synthesised track (it says which).
5. Writes to --out: dance.npz, dance.mp4 (skeleton with the music and a beat indicator),
   openpose/ (one OpenPose JSON per frame), speed_beats.png (keypoint speed against the music's
   beats), and prints the dance's beat align score.

Stages 1-3 work in OUT/work and are cached: a second run finds the dataset, cache and both
checkpoints done and only samples.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import ml_collections
from absl import flags

from data_pipeline import build, precompute
from data_pipeline.sources.synthetic import synthesize_performance
from hotdance_jax import cli, render, sample, train
from hotdance_jax.io import save_wav
from hotdance_jax.metrics import beat_align_score
from hotdance_jax.vae import RAW_COORDS, image_channels, load_autoencoder
from hotdance_jax.vae import train as vae_train

FLAGS = flags.FLAGS
EXAMPLE_SONG = "admiralbob77_-_Choice_-_Drum-bass"


def find_example_song() -> Path | None:
    """librosa's example 'choice' on this machine or from librosa's download; None without."""
    folders = [os.environ.get("LIBROSA_DATA_DIR")]
    if os.environ.get("HOTDANCE_SHARED"):
        folders.append(Path(os.environ["HOTDANCE_SHARED"]) / "data/music/librosa-data/audio")
    for folder in filter(None, folders):
        found = sorted(Path(folder).glob(f"{EXAMPLE_SONG}.*"))
        if found:
            return found[0]
    import librosa

    logging.getLogger("pooch").setLevel(logging.ERROR)  # librosa's downloader: no line offline
    try:
        return Path(librosa.example("choice"))
    except Exception:  # no network and no cache: whatever failed, the song is not available
        return None


def synthesised_song(path: Path, config: ml_collections.ConfigDict, seconds: float) -> Path:
    """A procedural drum track (the synthetic source's music, seed 12345) written to `path`."""
    performance = synthesize_performance(12345, seconds, config.pose.fps,
                                         config.audio.sample_rate)
    save_wav(path, performance.audio, performance.sample_rate)
    return path


def stage(number: int, text: str, start: float) -> None:
    """One line per stage, with the seconds since `start` (a time.perf_counter() value)."""
    print(f"[{number}/5] {text} (at {time.perf_counter() - start:.0f} s)", flush=True)


def prepare(config: ml_collections.ConfigDict, work: Path, start: float | None = None) -> Path:
    """Stages 1-3 (cached in `work`); returns the trained run folder. `start`: as stage()'s
    (default: now)."""
    start = time.perf_counter() if start is None else start
    stage(1, "synthetic dataset", start)
    build.build("synthetic", work / "raw", work / "segments", config)
    if config.vae.name == RAW_COORDS:
        stage(2, "the latent cache of raw coordinates (no autoencoder to train)", start)
        weights = ""
    else:
        stage(2, f"onehot-kl autoencoder ({config.vae.train.steps} steps), then the latent cache",
              start)
        vae_train.train(config, work / "segments", work / "vae")
        weights = str(work / "vae" / vae_train.WEIGHTS_FILE)
    autoencoder = load_autoencoder(config.vae.name, weights, image_channels(config.pose.skeleton),
                                   bins=config.pose.bins)
    precompute.precompute(work / "segments", autoencoder, work / "latents", config)
    stage(3, f"DiT ({config.train.steps} steps)", start)
    train.train(config, work / "latents", work / "run")
    return work / "run"


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    cli.define_config("tiny_cpu")
    flags.DEFINE_string("out", "demo_out", "Output folder (and OUT/work for the cached stages).")
    flags.DEFINE_float("seconds", 30.0, "Seconds of the song to dance to.")


def main(argv: list[str]) -> None:
    del argv
    config, out = FLAGS.config, Path(FLAGS.out)
    start = time.perf_counter()
    run = prepare(config, out / "work", start)
    song_path = find_example_song()
    if song_path is None:
        song_path = synthesised_song(out / "work" / "synthesised_song.wav", config, FLAGS.seconds)
        stage(4, f"librosa's example 'choice' is not on this machine and cannot be "
                 f"downloaded: dancing to a synthesised drum track, {song_path}", start)
    else:
        stage(4, f"dancing to {song_path.name}", start)
    generator = sample.DanceGenerator.load(run)
    song = sample.load_song(song_path, generator.config, config.pose.fps, 0.0, FLAGS.seconds)
    width, height = generator.info["mean_dancer"]["frame"]
    [dance] = generator.generate([song], generator.mean_dancer(width, height), width=width,
                                 height=height, steps=30, guidance=2.0)
    sample.save_dance(out / "dance.npz", dance)
    sample.save_openpose(out / "openpose", dance, "dance")
    sample.save_dance_video(out / "dance.mp4", dance)
    render.save_speed_plot(out / "speed_beats.png", dance.keypoints, dance.confidence, dance.fps,
                           song.beats, title=f"{song_path.name}: generated keypoint speed and "
                                             "music beats")
    bas = beat_align_score(dance.keypoints, dance.confidence, song.beats, dance.fps)
    print(f"[5/5] {len(dance.keypoints) / dance.fps:.1f} s dance at {song.bpm:.1f} BPM: beat "
          f"align score {bas:.3f}; wrote {out}/dance.mp4, dance.npz, openpose/, speed_beats.png "
          f"in {time.perf_counter() - start:.0f} s")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
