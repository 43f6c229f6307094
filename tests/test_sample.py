"""Sampling: segment-and-stitch over a long song, outputs, batching, references, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile

from data_pipeline import build, precompute
from data_pipeline.sources.synthetic import synthesize_performance
from hotdance_jax import dit_run, evaluate, sample, train
from hotdance_jax.choreography import Keyframe, Opening
from hotdance_jax.errors import InputError
from hotdance_jax.io import save_wav
from hotdance_jax.vae import load_autoencoder
from hotdance_jax.vae import train as vae_train
from tests.test_build import REPO, tiny_config
from tests.test_train import read_events

pytestmark = pytest.mark.slow  # trains or starts processes: make test-fast skips it

STEPS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder of the whole pipeline at tiny shapes (64 bins, 64 frames): a VAE and a DiT
    trained for a few dozen steps on synthetic dances; (root, config)."""
    root = tmp_path_factory.mktemp("sample")
    config = tiny_config()
    config.vae.latent_channels = 4
    config.vae.arch.block_out_channels = (8, 16, 16, 16)
    config.vae.arch.norm_num_groups = 8
    config.vae.train.update(batch_size=8, crop_frames=32, steps=40, learning_rate=3e-3,
                            warmup_steps=1, log_every=20, eval_every=40, checkpoint_every=40,
                            eval_segments=4)
    build.build("synthetic", root / "raw", root / "segments", config)
    vae_train.train(config, root / "segments", root / "vae")
    autoencoder = load_autoencoder("onehot-kl", str(root / "vae" / vae_train.WEIGHTS_FILE), 36)
    config.vae.name = "onehot-kl"
    config.latents.workers = 0
    precompute.precompute(root / "segments", autoencoder, root / "latents", config)
    config.model.width, config.model.depth, config.model.heads = 64, 2, 4
    config.train.update(batch_size=8, steps=60, log_every=20, eval_every=60, checkpoint_every=60,
                        eval_batches=1, warmup_steps=5, learning_rate=1e-3)
    train.train(config, root / "latents", root / "run")
    return root, config


def song_file(path, seconds, seed=7):
    performance = synthesize_performance(seed, seconds=seconds)
    save_wav(path, performance.audio, performance.sample_rate)
    return path


@pytest.fixture(scope="module")
def generator(run):
    return sample.DanceGenerator.load(run[0] / "run")


def test_a_three_minute_song_gives_one_continuous_dance_without_seams(run, generator, tmp_path):
    config = run[1]
    song = sample.load_song(song_file(tmp_path / "long.wav", 180.0), generator.config, 30.0)
    assert song.frames == 5400
    width, height = generator.info["mean_dancer"]["frame"]
    [dance] = generator.generate([song], generator.mean_dancer(width, height), width=width,
                                 height=height, steps=STEPS)
    assert dance.keypoints.shape == (5400, 18, 2)
    assert (dance.confidence > 0).mean() > 0.5
    visible = dance.confidence > 0
    assert np.isfinite(dance.keypoints[visible]).all()
    # per-frame speed (pixels/frame) of the joints visible in both frames, and its jumps
    both = visible[1:] & visible[:-1]
    step = np.linalg.norm(np.diff(np.nan_to_num(dance.keypoints), axis=0), axis=-1)
    speed = np.where(both, step, 0).sum(-1) / np.maximum(both.sum(-1), 1)  # frame t -> t + 1
    jump = np.abs(np.diff(speed))  # jump[t]: between the steps into and out of frame t + 1
    hop = config.pose.segment_frames - sample.OVERLAP
    starts = np.arange(1, (5400 - sample.OVERLAP) // hop + 1) * hop  # where segments 2.. begin
    seams = np.concatenate([starts - 1, starts + sample.OVERLAP - 1])  # both ends of the fades
    seams = seams[seams < len(jump)]
    inside = np.setdiff1d(np.arange(len(jump)), np.concatenate([seams - 1, seams, seams + 1]))
    assert len(starts) == 112  # ceil((5400 - 16) / 48) segments
    # raised-cosine fades: 0.68 at seams vs 0.60 inside when written (linear fades: 0.97 vs 0.57)
    assert jump[seams].mean() <= 1.3 * jump[inside].mean(), (jump[seams].mean(),
                                                             jump[inside].mean())
    assert speed[seams].mean() <= 1.5 * speed[inside].mean()


def test_a_song_is_sampled_alike_whatever_is_batched_with_it(run, generator, tmp_path):
    one = sample.load_song(song_file(tmp_path / "one.wav", 5.0, seed=1), generator.config, 30.0)
    two = sample.load_song(song_file(tmp_path / "two.wav", 9.0, seed=2), generator.config, 30.0)
    shape = generator.mean_dancer(512, 512)
    alone = generator.generate([one], shape, width=512, height=512, steps=STEPS, seed=3)
    batched = generator.generate([one, two], shape, width=512, height=512, steps=STEPS,
                                 num_samples=2, seed=3)
    assert [(d.song.path.name, d.sample, len(d.keypoints)) for d in batched] == [
        ("one.wav", 0, 150), ("one.wav", 1, 150), ("two.wav", 0, 270), ("two.wav", 1, 270)]
    np.testing.assert_allclose(np.nan_to_num(batched[0].keypoints),
                               np.nan_to_num(alone[0].keypoints), atol=0.5)
    assert np.abs(np.nan_to_num(batched[1].keypoints - batched[0].keypoints)).max() > 1.0


def test_songs_of_one_file_name_get_their_own_noise(generator, tmp_path):
    """Noise is keyed by the audio, not the file name (every dwm song is audio.mp3)."""
    songs = [sample.load_song(song_file(tmp_path / name / "audio.wav", 3.0, seed=seed),
                              generator.config, 30.0)
             for name, seed in (("a", 1), ("b", 2), ("c", 1))]
    noise = [sample._noise(3, song.digest, 0, 0, (2, 2, 4)) for song in songs]
    assert np.abs(noise[0] - noise[1]).max() > 0.1
    np.testing.assert_array_equal(noise[0], noise[2])  # the same audio elsewhere: the same noise


def test_the_command_writes_npz_openpose_json_and_video(run, tmp_path):
    song = song_file(tmp_path / "song.wav", 6.0)
    result = subprocess.run(
        [sys.executable, "-m", "hotdance_jax.sample", "--workdir", str(run[0] / "run"),
         "--music", str(song), "--out", str(tmp_path / "dance.npz"), "--video",
         str(tmp_path / "dance.mp4"), "--openpose-dir", str(tmp_path / "openpose"),
         "--steps", str(STEPS), "--width", "640", "--height", "480"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "song.wav: 6.0 s dance (180 frames at 30 fps)" in result.stdout
    with np.load(tmp_path / "dance.npz") as dance:
        assert dance["keypoints"].shape == (180, 18, 2)
        assert dance["confidence"].shape == (180, 18)
        assert (float(dance["fps"]), int(dance["width"]), int(dance["height"])) == (30, 640, 480)
        assert str(dance["skeleton"]) == "openpose18"
        assert str(dance["music_path"]) == str(song)
        assert int(dance["segment_frames"]) == run[1].pose.segment_frames
        assert int(dance["overlap"]) == sample.OVERLAP
        keypoints, confidence = dance["keypoints"], dance["confidence"]
    frames = sorted((tmp_path / "openpose").iterdir())
    assert len(frames) == 180
    assert frames[0].name == "song_000000000000_keypoints.json"
    person = json.loads(frames[7].read_text())["people"][0]["pose_keypoints_2d"]
    expected = np.concatenate([np.nan_to_num(keypoints[7]), confidence[7][:, None]], 1).ravel()
    np.testing.assert_allclose(person, expected, atol=1e-3)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "dance.mp4"))
    meta = next(reader)
    assert meta["size"] == (640, 480)
    assert meta["audio_codec"] == "aac"
    assert abs(meta["duration"] - 6.0) < 0.2
    assert sum(1 for _ in reader) == 180


def test_keyframes_and_an_opening_are_the_known_frames_of_their_segments(generator, tmp_path,
                                                                         monkeypatch):
    """Segment by segment, the sampler's reference: the opening's last 16 frames, then the
    previous segment's, and every keyframe in each segment that holds it, at its frame."""
    song = sample.load_song(song_file(tmp_path / "song.wav", 6.0), generator.config, 30.0)
    calls = []

    def spy(request, k, known_keypoints, known_confidence, known, music):
        calls.append((known.copy(), known_keypoints.copy()))
        dit = generator.model_config
        return np.zeros((len(known), dit.latent_bins, dit.latent_frames, dit.latent_channels),
                        np.float32)

    monkeypatch.setattr(generator, "_segment", spy)
    pose = generator.mean_dancer(512, 512)
    opening = Opening(np.full((40, 18, 2), 7.0, np.float32), np.ones((40, 18), np.float32),
                      512, 512, song.path, 0.0)
    keyframes = [Keyframe(2.0, np.full((18, 2), 3.0, np.float32), np.ones(18, np.float32)),
                 Keyframe(5.5, np.full((18, 2), 4.0, np.float32), np.ones(18, np.float32))]
    [dance] = generator.generate([song], pose, width=512, height=512, steps=1,
                                 keyframes=keyframes, opening=opening)
    hop = generator.frames - sample.OVERLAP
    begins = [24 + k * hop for k in range(len(calls))]  # 16 frames before the opening ends
    assert begins[-1] + generator.frames >= 180 > begins[-1]
    for begin, (known, known_keypoints) in zip(begins, calls, strict=True):
        expected = np.zeros(generator.frames, bool)
        expected[:16] = True
        for frame, value in ((60, 3.0), (165, 4.0)):  # 2.0 s and 5.5 s at 30 fps
            if begin + 16 <= frame < begin + generator.frames:
                expected[frame - begin] = True
                assert (known_keypoints[0, frame - begin] == value).all()
        np.testing.assert_array_equal(known[0], expected)
    np.testing.assert_array_equal(calls[0][1][0, :16], 7.0)  # the opening's last 16 frames
    np.testing.assert_array_equal(dance.keypoints[:40], 7.0)  # the opening, kept as it is
    assert dance.keypoints.shape == (180, 18, 2)


def test_the_command_continues_a_dance_to_another_song_through_a_keyframe(run, generator,
                                                                        tmp_path):
    first = sample.load_song(song_file(tmp_path / "first.wav", 2.0), generator.config, 30.0)
    width, height = generator.info["mean_dancer"]["frame"]
    [dance] = generator.generate([first], generator.mean_dancer(width, height), width=width,
                                 height=height, steps=STEPS)
    sample.save_dance(tmp_path / "first.npz", dance)
    pose = np.nan_to_num(dance.keypoints[30]).tolist()
    (tmp_path / "keys.json").write_text(json.dumps([{"time": 3.0, "pose": pose}]))
    result = run_command("--workdir", run[0] / "run", "--continue", tmp_path / "first.npz",
                         "--music", song_file(tmp_path / "next.wav", 4.0, seed=3), "--seconds", 2,
                         "--keyframes", tmp_path / "keys.json", "--steps", STEPS, "--out",
                         tmp_path / "longer.npz")
    assert result.returncode == 0, result.stderr[-2000:]
    with np.load(tmp_path / "longer.npz") as longer:
        assert longer["keypoints"].shape == (120, 18, 2)  # 2 s danced + 2 s more
        np.testing.assert_array_equal(longer["keypoints"][:60], dance.keypoints)
        seen = longer["confidence"][90] > 0  # 3 s from the dance's start: the keyframe, hit
        assert seen.any()
        np.testing.assert_allclose(longer["keypoints"][90][seen], np.array(pose)[seen], atol=1e-3)
        assert str(longer["music_path"]) == str(tmp_path / "longer.wav")
        assert float(longer["music_offset"]) == 0.0
    audio, rate = soundfile.read(tmp_path / "longer.wav")
    assert abs(len(audio) / rate - 4.0) < 0.05  # the first song's 2 s, then the next's 2 s


def test_the_keyframe_bench_scores_dances_with_and_without_keyframes(run):
    result = subprocess.run(
        [sys.executable, "bench/keyframes.py", "--workdir", str(run[0] / "run"), "--segments",
         str(run[0] / "segments"), "--seconds", "4", "--every", "1", "--sampling-steps", "2"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| with")]
    assert len(rows) == 2  # with the keyframes, without
    for row in rows:
        numbers = [float(x) for cell in row.split("|")[2:5] for x in cell.split("/")]
        assert np.isfinite(numbers).all()
        assert numbers[0] <= numbers[1]  # the median error at most the 95th percentile


def run_command(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "hotdance_jax.sample", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_run_without_checkpoints_is_refused(run, tmp_path):
    (tmp_path / "run").mkdir()
    for name in ("config.json", dit_run.CACHE_INFO_FILE):
        (tmp_path / "run" / name).write_text((run[0] / "run" / name).read_text())
    with pytest.raises(InputError, match="no checkpoint; train first"):
        sample.DanceGenerator.load(tmp_path / "run")


def test_dances_of_the_ema_weights_are_scored_during_training(run, tmp_path, capsys):
    root, config = run
    config = config.copy_and_resolve_references()
    config.train.update(steps=4, log_every=2, eval_every=4, checkpoint_every=4,
                        dance_eval_every=2, dance_eval_seconds=4.0,
                        dance_eval_sampling_steps=2)
    metrics = train.train(config, root / "latents", tmp_path, segments=root / "segments")
    names = {"dance_bas", "dance_fid_k", "dance_fid_g", "dance_jitter"}
    assert names <= metrics.keys()
    assert np.isfinite([metrics[n] for n in names]).all()
    assert 0 <= metrics["dance_bas"] <= 1
    reference = evaluate.read_dance_set(root / "segments", "val")
    for step in (2, 4):
        saved = evaluate.read_dance_set(tmp_path / "dances" / f"step_{step:07d}", "")
        assert len(saved.dances) == len(reference.dances)
        assert saved.dances[0].keypoints.shape[0] == round(4.0 * config.pose.fps)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("step 4 dance_bas ") for line in lines)
    ema_lines = [line for line in lines if line.endswith("(EMA weights)")]
    assert len(ema_lines) == 3  # val_loss at 4, the dances at 2 and 4; no training metrics
    assert not any("grad_norm" in line for line in ema_lines)
    events = [e for path in sorted((tmp_path / "tensorboard").iterdir())
              for e in read_events(path)]
    logged = {(v.tag, e.step) for e in events for v in e.summary.value}
    assert {("train/dance_fid_k", 2), ("train/dance_bas", 4)} <= logged
