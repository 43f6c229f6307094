r"""Generate dances for music with a trained run: python -m hotdance_jax.sample.

  python -m hotdance_jax.sample --workdir runs/tiny --music song.mp3 --out dance.npz \
      [--video dance.mp4] [--openpose-dir dance_openpose] [--reference pose.json]
      [--seconds 30] [--start 0] [--num-samples 1] [--seed 0] [--steps 30] [--sampler euler]
      [--guidance 2] [--fps 30] [--width W --height H] [--keyframes keyframes.json]
  python -m hotdance_jax.sample --workdir runs/tiny --music-dir songs/ --out dances/ ...
  python -m hotdance_jax.sample --workdir runs/tiny --continue dance.npz --seconds 20 \
      --out longer.npz [--music other.mp3 --start 0]

The run folder's EMA weights (latest checkpoint, or --checkpoint WORKDIR/checkpoints/STEP) and
the autoencoder its latent cache was made with (latent_cache.json; --vae-weights overrides the
path, the weights' sha256 must match) turn music into poses, segment by segment (docs/design.md,
"Segment-and-stitch"): a song of F frames is covered by segments of T frames that start every
T - 16 frames. The first segment's reference is shape-only: the --reference dancer (one pose:
OpenPose JSON, an npz with keypoints and confidence, or a JSON list of [x, y(, c)], 18 OpenPose
or 25 BODY_25 keypoints, in pixels of the output frame), or the training data's mean dancer. Each
next segment takes the last 16 generated frames as its pose-aware reference (N = 16) and the
16-frame overlap is cross-faded (a raised cosine). A run of the no-reference ablation
(config.model.reference = False) ignores references: its segments join by the cross-fade alone,
and it refuses --reference. --keyframes (hotdance_jax/choreography.py) gives poses the dance
passes through: each is a known frame of the reference of every segment that holds it. --continue
gives a dance (an npz of this command) that the new one starts with, unchanged: the first sampled
segment begins 16 frames before its end, those 16 frames its reference; the dancer's shape is
taken from it (unless --reference), the music is its own followed by --seconds more of it or of
--music (the joined audio written beside the npz as a .wav). All songs and samples run as one
batch through one jit-compiled sampler per segment, compiled once per batch shape.

Writes, atomically: the dance as npz (docs/design.md section 5) per song and sample; with
--openpose-dir one OpenPose JSON per frame (people[0].pose_keypoints_2d); with --video an mp4 of
the skeleton with the music and a beat indicator. Several songs or samples get one file each,
named SONG or SONG_sampleN, in --out (a folder), --openpose-dir and --video (folders).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm
from absl import flags
from flax import nnx

from hotdance_jax import cli, evaluate, flow, render
from hotdance_jax.audio import beat_times, load_audio, music_features, require_duration, tempo_bpm
from hotdance_jax.choreography import (
    Keyframe,
    Opening,
    read_keyframes,
    read_opening,
    read_reference,
    warp_to_keyframes,
)
from hotdance_jax.dit_run import CACHE_INFO_FILE, StepSettings, TrainState, dit_config
from hotdance_jax.errors import InputError
from hotdance_jax.io import run_path, save_npz, save_wav, staged_directory
from hotdance_jax.models import DiT
from hotdance_jax.pose import (
    Skeleton,
    decoded_poses,
    pipeline_skeleton,
    reference_images,
    reference_mask,
)
from hotdance_jax.pose.openpose_json import person_json
from hotdance_jax.pose.shape import shape_pose
from hotdance_jax.training import CONFIG_FILE, OptimizerSettings
from hotdance_jax.vae import RAW_COORDS, Autoencoder, image_channels, load_autoencoder

FLAGS = flags.FLAGS
OVERLAP = 16  # frames shared by consecutive segments: the next one's pose-aware reference
MIN_SECONDS = 1.0
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus", ".aiff", ".aif")


@dataclasses.dataclass
class Song:
    """A piece of music ready to dance to: raw features (frames, D) at fps, beats in seconds;
    `audio` is from `start` seconds of the file `path` (None: two songs joined, no file yet)."""

    path: Path | None
    start: float
    audio: np.ndarray
    sample_rate: int
    features: np.ndarray
    beats: np.ndarray
    bpm: float

    @property
    def frames(self) -> int:
        return len(self.features)

    @functools.cached_property
    def digest(self) -> bytes:
        """sha256 of its audio samples: what its noise is keyed by (songs that share a file
        name, as every Dance with Melody song's audio.mp3 does, still get their own noise)."""
        return hashlib.sha256(np.ascontiguousarray(self.audio).tobytes()).digest()


@dataclasses.dataclass
class Dance:
    """A generated dance of `skeleton`: keypoints (F, K, 2) pixels (NaN where invisible),
    confidence (F, K), sampled in segments of `segment_frames` frames overlapping by OVERLAP."""

    song: Song
    sample: int
    keypoints: np.ndarray
    confidence: np.ndarray
    fps: float
    width: int
    height: int
    segment_frames: int
    skeleton: Skeleton


def load_song(path: Path, config: ml_collections.ConfigDict, fps: float, start: float = 0.0,
              seconds: float | None = None) -> Song:
    """Reads `seconds` of audio (None: to the end) from `start` and analyses it at `fps`."""
    audio = load_audio(path, config.audio.sample_rate, offset=start, duration=seconds)
    require_duration(audio, config.audio.sample_rate, MIN_SECONDS, path)
    return analysed_song(path, start, audio, config, fps)


def analysed_song(path: Path | None, start: float, audio: np.ndarray,
                  config: ml_collections.ConfigDict, fps: float) -> Song:
    """A Song of `audio` (samples at config.audio.sample_rate, from `start` seconds of `path`),
    its features at `fps`, beats and tempo."""
    sample_rate = config.audio.sample_rate
    features = music_features(audio, sample_rate, fps, round(len(audio) / sample_rate * fps))
    return Song(path, start, audio, sample_rate, features, beat_times(audio, sample_rate),
                tempo_bpm(audio, sample_rate))


def continued_song(opening: Opening, config: ml_collections.ConfigDict, fps: float) -> Song:
    """The music of a continued dance (--continue, with --seconds): the opening's own music under
    its P frames, then --seconds more of it, or of --music from --start; the joined music of two
    songs has no file yet (path None: the command writes it beside the dance)."""
    opened = len(opening.keypoints) / fps
    if not opening.music_path.exists():
        raise InputError(f"{opening.music_path}: the music of the dance to continue is missing")
    if not flag("music"):
        song = load_song(opening.music_path, config, fps, opening.music_offset,
                         opened + flag("seconds"))
        if song.frames <= len(opening.keypoints):
            raise InputError(f"{opening.music_path}: the song ends where the dance to continue "
                             "does; give another with --music")
        return song
    sample_rate = config.audio.sample_rate
    before = load_audio(opening.music_path, sample_rate, offset=opening.music_offset,
                        duration=opened)
    before = np.pad(before, (0, max(round(opened * sample_rate) - len(before), 0)))
    after = load_audio(Path(flag("music")), sample_rate, offset=flag("start"),
                       duration=flag("seconds"))
    require_duration(after, sample_rate, MIN_SECONDS, Path(flag("music")))
    return analysed_song(None, 0.0, np.concatenate([before[:round(opened * sample_rate)],
                                                    after]), config, fps)


def read_dancer(path: Path, config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    """The shape pose of the dancer in the pose file `path` (read_reference, in the run's
    skeleton): (K, 2) pixels and (K,) confidence, for DanceGenerator.generate; InputError when
    the run (its `config`) has a DiT that takes no reference."""
    if not config.model.reference:
        raise InputError(f"{path}: this run's DiT takes no reference "
                         "(config.model.reference = False)")
    skeleton = pipeline_skeleton(config.pose.skeleton)
    return shape_pose(*(x[None] for x in read_reference(path, skeleton=skeleton)))


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "sampler", "shift",
                                             "guidance"))
def _sample_latents(graphdef, state, noise, reference, mask, music, *, num_steps, sampler, shift,
                    guidance):
    """Latents (b, B', T', c) from noise by the flow ODE, guided by the music (cond and null
    music in one model call of 2b examples when guidance != 1)."""
    model = nnx.merge(graphdef, state)

    def velocity(x, t, drop_music):
        copies = x.shape[0] // noise.shape[0]  # 2 when guided: conditional and unconditional
        return model(x, t, *(jnp.concatenate([a] * copies) for a in (reference, mask, music)),
                     drop_music)

    return flow.sample(flow.guided(velocity, guidance), noise, num_steps, sampler, shift)


@dataclasses.dataclass(frozen=True)
class Request:
    """One call of DanceGenerator.generate: b = len(jobs) dances sampled together.

    jobs: (song, sample index) per dance; shape_keypoints (b, K, 2) pixels and shape_confidence
    (b, K): the dancer's shape pose in a width x height frame; seed, steps (ODE steps per
    segment), sampler ("euler" or "heun") and guidance (classifier-free, on the music).
    """

    jobs: list[tuple[Song, int]]
    shape_keypoints: np.ndarray
    shape_confidence: np.ndarray
    width: int
    height: int
    seed: int
    steps: int
    sampler: str
    guidance: float


class DanceGenerator:
    """A DiT (a run's EMA weights) and its autoencoder, sampling segments of T frames.

    config: the run's config; info: its latent_cache.json (dit_run.cache_info); model: the DiT;
    autoencoder: the frozen autoencoder of the latent cache; step: the checkpoint's step.
    `DanceGenerator.load(workdir)` builds one from a training run folder.
    """

    def __init__(self, config: ml_collections.ConfigDict, info: dict, model: DiT,
                 autoencoder: Autoencoder, step: int = 0):
        self.config, self.info, self.autoencoder, self.step = config, info, autoencoder, step
        self.skeleton = pipeline_skeleton(config.pose.skeleton)
        self.model_config = model.config
        self.graphdef, self.state = nnx.split(model)
        self.scale, self.shift = (np.asarray(self.info[k], np.float32) for k in ("scale", "shift"))
        self.music_scale, self.music_shift = (np.asarray(self.info[k], np.float32)
                                              for k in ("music_scale", "music_shift"))
        self.time_shift = StepSettings.of(self.config, self.model_config).time_shift
        self.frames = self.config.pose.segment_frames
        self.stride = self.model_config.frames_per_token

    @classmethod
    def load(cls, workdir: Path, checkpoint: Path | None = None,
             vae_weights: str | None = None,
             config: ml_collections.ConfigDict | None = None) -> DanceGenerator:
        """The EMA DiT of a run's checkpoint (default its latest) with the run's autoencoder
        (vae_weights overrides its path; the file must be the one the latents were made with);
        `config`: the run's config when already read (read_run_config), else read here."""
        config = config if config is not None else read_run_config(workdir)
        info = _read_json(workdir / CACHE_INFO_FILE, "run's latent cache info")
        model, step = _restore_ema(workdir, checkpoint, config, dit_config(config, info))
        return cls(config, info, model, _autoencoder(config, info, vae_weights), step)

    def mean_dancer(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The training data's mean shape pose in a width x height frame."""
        dancer = self.info["mean_dancer"]
        keypoints = np.asarray(dancer["keypoints"], np.float32) * [width, height]
        confidence = np.asarray(dancer["confidence"], np.float32)
        return np.where(confidence[:, None] > 0, keypoints, np.nan), (confidence > 0).astype(
            np.float32)

    def generate(self, songs: list[Song], shape: tuple[np.ndarray, np.ndarray], *, width: int,
                 height: int, num_samples: int = 1, seed: int = 0, steps: int = 30,
                 sampler: str = "euler", guidance: float = 2.0, keyframes: Sequence[Keyframe] = (),
                 opening: Opening | None = None) -> list[Dance]:
        """One dance per song and sample, each as long as its song; `shape` is the dancer's
        shape pose ((K, 2) pixels, (K,) confidence). Every dance passes through `keyframes`
        (their times in seconds from the dance's start, which is the song's): the DiT is given
        them as known frames, then the decoded dance is warped onto them (warp_to_keyframes).
        It begins with the P frames of `opening` (a dance to continue, kept as it is over the
        song's first P frames)."""
        T, hop = self.frames, self.frames - OVERLAP
        jobs = [(song, sample) for song in songs for sample in range(num_samples)]
        b, K = len(jobs), self.skeleton.num_joints
        opened = 0 if opening is None else len(opening.keypoints)
        if (keyframes or opened) and not self.model_config.reference:
            raise InputError("this run's DiT takes no reference (config.model.reference = False):"
                             " no keyframes or dance to continue")
        first = max(opened - OVERLAP, 0)  # where the first sampled segment begins
        needed = np.array([max(1, math.ceil((song.frames - first - OVERLAP) / hop))
                           for song, _ in jobs])
        segments = int(needed.max())
        total = first + (segments - 1) * hop + T
        pinned = self._pinned(keyframes, total, opening)
        music = np.stack([self._music(song.features, total) for song, _ in jobs])
        request = Request(
            jobs, np.broadcast_to(np.nan_to_num(shape[0]), (b, K, 2)).astype(np.float32),
            np.broadcast_to(shape[1], (b, K)).astype(np.float32), width, height, seed, steps,
            sampler, float(guidance))
        keypoints = np.zeros((b, total, K, 2), np.float32)
        confidence = np.zeros((b, total, K), np.float32)
        keypoints[:, :opened], confidence[:, :opened] = pinned[1][:opened], pinned[2][:opened]
        bar = tqdm.tqdm(total=segments * steps, unit="step", desc="sampling", disable=None)
        for k in range(segments):
            begin = first + k * hop
            window = slice(begin, begin + T)
            n = opened - first if k == 0 else OVERLAP
            # known: the segment's first n frames (sampled or the opening) and the keyframes
            known, known_keypoints, known_confidence = (
                np.broadcast_to(x[window], (b, T, *x.shape[1:])).copy() for x in pinned)
            known[:, :n] = True
            known_keypoints[:, :n], known_confidence[:, :n] = (keypoints[:, begin:begin + n],
                                                               confidence[:, begin:begin + n])
            latents = self._segment(request, k, known_keypoints, known_confidence, known,
                                    music[:, window])
            new_keypoints, new_confidence = self._poses(latents, width, height)
            active = k < needed  # a song's dance ends with its own last segment
            keypoints[active, window], confidence[active, window] = _blend(
                keypoints[active, window], confidence[active, window], new_keypoints[active],
                new_confidence[active], n)
            bar.update(steps)
        bar.close()
        keypoints[:, :opened], confidence[:, :opened] = pinned[1][:opened], pinned[2][:opened]
        if keyframes:
            keypoints = np.stack([warp_to_keyframes(k, c, list(keyframes), self.config.pose.fps,
                                                    opened) for k, c in zip(keypoints, confidence,
                                                                            strict=True)])
        return [Dance(song, sample, np.where(confidence[i, :song.frames, :, None] > 0,
                                             keypoints[i, :song.frames], np.nan),
                      confidence[i, :song.frames], self.config.pose.fps, width, height, T,
                      self.skeleton)
                for i, (song, sample) in enumerate(jobs)]

    def _pinned(self, keyframes: Sequence[Keyframe], total: int, opening: Opening | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which of `total` frames have given poses (total,) bool, and those poses (total, K, 2)
        pixels and (total, K) confidence (zero elsewhere): the opening's and the keyframes'."""
        K, fps = self.skeleton.num_joints, self.config.pose.fps
        frames = np.zeros(total, bool)
        keypoints = np.zeros((total, K, 2), np.float32)
        confidence = np.zeros((total, K), np.float32)
        if opening is not None:
            opened = len(opening.keypoints)
            frames[:opened] = True
            keypoints[:opened] = np.nan_to_num(opening.keypoints)
            confidence[:opened] = opening.confidence
        for keyframe in keyframes:
            t = round(keyframe.time * fps)
            if t < total:
                frames[t] = True
                keypoints[t], confidence[t] = np.nan_to_num(keyframe.keypoints), \
                    keyframe.confidence
        return frames, keypoints, confidence

    def _music(self, features: np.ndarray, frames: int) -> np.ndarray:
        """(frames, D) normalised features, the last row repeated past the song's end."""
        padded = np.concatenate([features, np.repeat(features[-1:], max(frames - len(features),
                                                                         0), axis=0)])
        return ((padded[:frames] - self.music_shift) * self.music_scale).astype(np.float32)

    def _segment(self, request: Request, k: int, known_keypoints: np.ndarray,
                 known_confidence: np.ndarray, known: np.ndarray, music: np.ndarray
                 ) -> np.ndarray:
        """Sampled latents (b, B', T', c), unnormalised, of segment k whose frames `known` (b, T)
        bool show the poses known_keypoints (b, T, K, 2) pixels, known_confidence (b, T, K), to
        (b, T, D) normalised music."""
        latent_bins, latent_frames, channels = self.model_config.latent_bins, \
            self.model_config.latent_frames, self.model_config.latent_channels
        noise = np.stack([_noise(request.seed, song.digest, sample, k,
                                 (latent_bins, latent_frames, channels))
                          for song, sample in request.jobs])
        mask = np.asarray(reference_mask(known, latent_bins, self.stride))
        reference = np.zeros_like(noise)  # the no-reference ablation's DiT ignores it
        if self.model_config.reference:
            images = reference_images(known_keypoints, known_confidence, request.shape_keypoints,
                                      request.shape_confidence, request.width, request.height,
                                      known, bins=self.config.pose.bins,
                                      hand_zoom=self.config.pose.get("hand_zoom", 0.0))
            reference = (np.asarray(self.autoencoder.encode(images)) - self.shift) * self.scale
        latents = _sample_latents(self.graphdef, self.state, noise, reference, mask, music,
                                  num_steps=request.steps, sampler=request.sampler,
                                  shift=self.time_shift, guidance=request.guidance)
        return np.asarray(latents) / self.scale + self.shift

    def _poses(self, latents: np.ndarray, width: int, height: int):
        """Latents (b, B', T', c) -> keypoints (b, T, K, 2) pixels, smoothed in time, and
        confidence (b, T, K)."""
        return decoded_poses(self.autoencoder.decode(jnp.asarray(latents)), width, height,
                             self.config.pose)


def _noise(seed: int, song: bytes, sample: int, segment: int, shape) -> np.ndarray:
    """Standard normal noise of one (song digest, sample, segment): the same whatever else is
    batched."""
    words = [seed, sample, segment, *song]
    return np.random.default_rng(words).standard_normal(shape).astype(np.float32)


def _blend(old_keypoints, old_confidence, new_keypoints, new_confidence, overlap: int):
    """A segment's poses (b, T, K, ...) written over what is there: its first `overlap` frames
    are cross-faded with the old ones. The new segment's weight rises as a raised cosine, whose
    slope is 0 at both ends of the fade: a linear fade would add (new - old) / overlap to the
    velocity inside the fade only, a step at each end. In the fade a joint seen by one segment
    only is shown where that segment weighs at least half, else hidden: shown at its one
    segment's place beside blended frames it would jump by the segments' whole disagreement.
    Returns (keypoints, confidence)."""
    weight = np.ones(new_keypoints.shape[1], np.float32)
    weight[:overlap] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / max(overlap, 1))
    w = weight[None, :, None]
    old_seen, new_seen = old_confidence > 0, new_confidence > 0
    both = old_seen & new_seen
    only_old, only_new = old_seen & ~new_seen, new_seen & ~old_seen
    show_old = only_old & (w < 0.5)
    hidden = (w < 1) & ((only_old & (w >= 0.5)) | (only_new & (w < 0.5)))
    keypoints = np.where(both[..., None], (1 - w[..., None]) * old_keypoints
                         + w[..., None] * new_keypoints, new_keypoints)
    confidence = np.where(both, (1 - w) * old_confidence + w * new_confidence, new_confidence)
    return (np.where(show_old[..., None], old_keypoints, keypoints),
            np.where(show_old, old_confidence, np.where(hidden, 0.0, confidence)))


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing; not a training run folder ({what})") from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable {what} ({e})") from None


def read_run_config(workdir: Path) -> ml_collections.ConfigDict:
    """A training run's config (its config.json)."""
    return ml_collections.ConfigDict(_read_json(workdir / CONFIG_FILE, "config"))


def _restore_ema(workdir: Path, checkpoint: Path | None, config, model_config
                 ) -> tuple[DiT, int]:
    """The EMA DiT of a run's checkpoint (default: the latest) and its step."""
    directory = run_path(workdir / "checkpoints")
    reading = ocp.CheckpointManagerOptions(read_only=True, save_interval_steps=0, create=False)
    with ocp.CheckpointManager(directory, options=reading) as manager:
        step = int(checkpoint.name) if checkpoint else manager.latest_step()
        if step is None or step not in manager.all_steps():
            raise InputError(f"{directory}: no checkpoint"
                             + (f" at step {step}" if step is not None else "")
                             + "; train first (python -m hotdance_jax.train)")
        optimizer = OptimizerSettings.of(config.train)
        abstract = nnx.eval_shape(lambda: TrainState(model_config, optimizer, config.seed))
        _, abstract_state = nnx.split(abstract)
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state)))
    train_graphdef, _ = nnx.split(abstract)
    return nnx.merge(train_graphdef, restored.state).ema, step


def _autoencoder(config: ml_collections.ConfigDict, info: dict, weights: str | None):
    """The run's frozen autoencoder; InputError unless it is the one the cache was made with
    (the same weights_sha256: of its weights, or of raw-coords' layout)."""
    name, path = info["vae"]["name"], weights or info["vae_weights"]
    if name != RAW_COORDS and not (path and Path(path).exists()):
        raise InputError(f"autoencoder weights {path!r} not found; pass --vae-weights (the "
                         f"{name} file the latent cache was made with)")
    autoencoder = load_autoencoder(name, path, image_channels(config.pose.skeleton),
                                   bins=info["settings"]["bins"])
    if autoencoder.weights_sha256 != info["vae"]["weights_sha256"]:
        raise InputError(f"{path or name}: not the autoencoder the run was trained with (sha256 "
                         "differs)")
    return autoencoder


class DanceCheck:
    """The dances of a training run's EMA weights, scored as `python -m hotdance_jax.evaluate`
    scores them: one dance (the mean dancer, seed 0) to the first config.train.dance_eval_seconds
    of the song of every performance in split config.train.dance_eval_split of the segment build
    `segments`, against that split's real dances. `info` is the run's latent cache info
    (dit_run.cache_info)."""

    def __init__(self, config: ml_collections.ConfigDict, info: dict, segments: Path):
        train = config.train
        self.config, self.info = config, info
        self.reference = evaluate.read_dance_set(segments, train.dance_eval_split)
        if self.reference.fps != config.pose.fps:
            raise InputError(f"{segments}: {self.reference.fps:g} fps; the run is at "
                             f"{config.pose.fps:g} (--segments of the dance check)")
        self.songs = [load_song(Path(d.audio_path), config, d.fps, d.audio_offset,
                                train.dance_eval_seconds) for d in self.reference.dances]
        self.autoencoder = _autoencoder(config, info, None)

    def __call__(self, model: DiT, step: int, out: Path) -> dict[str, float]:
        """Dances `model` to the songs, saved as npz in `out`; returns their dance_bas,
        dance_fid_k, dance_fid_g and dance_jitter."""
        generator = DanceGenerator(self.config, self.info, model, self.autoencoder, step)
        width, height = self.info["mean_dancer"]["frame"]
        dances = generator.generate(self.songs, generator.mean_dancer(width, height),
                                    width=width, height=height,
                                    steps=self.config.train.dance_eval_sampling_steps)
        for i, dance in enumerate(dances):
            save_dance(out / f"{i:03d}_{dance.song.path.parent.name}.npz", dance)
        window = min(5.0, self.config.train.dance_eval_seconds / 2)
        row = evaluate.score(self.reference, evaluate.read_dance_set(out, ""), window)["rows"]
        return {f"dance_{k}": row["generated"][k] for k in ("bas", "fid_k", "fid_g", "jitter")}


# ---------------------------------------------------------------- outputs


def save_dance(path: Path, dance: Dance) -> None:
    """The dance as npz (docs/design.md section 5), atomically, with the segment length and overlap
    it was stitched from (python -m hotdance_jax.evaluate finds the seams by them)."""
    save_npz(path, keypoints=dance.keypoints.astype(np.float32),
             confidence=dance.confidence.astype(np.float32), fps=np.float32(dance.fps),
             width=np.int32(dance.width), height=np.int32(dance.height),
             skeleton=np.str_(dance.skeleton.name), music_path=np.str_(str(dance.song.path)),
             music_offset=np.float32(dance.song.start),
             segment_frames=np.int32(dance.segment_frames), overlap=np.int32(OVERLAP))


def save_openpose(directory: Path, dance: Dance, name: str) -> None:
    """One OpenPose JSON per frame, NAME_000000000000_keypoints.json, written all or nothing;
    with the hands' lists when the dance's skeleton has hands."""
    with staged_directory(directory) as staging:
        for t, (keypoints, confidence) in enumerate(zip(dance.keypoints, dance.confidence,
                                                        strict=True)):
            person = person_json(keypoints, confidence, dance.skeleton)
            (staging / f"{name}_{t:012d}_keypoints.json").write_text(
                json.dumps({"version": 1.3, "people": [person]}))


def save_dance_video(path: Path, dance: Dance) -> None:
    """The dance's skeleton video (render.save_video) with its song's music and beats."""
    song = dance.song
    render.save_video(path, dance.keypoints, dance.confidence, dance.fps, dance.width,
                      dance.height, song.beats, song.audio, song.sample_rate,
                      skeleton=dance.skeleton)


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    flags.DEFINE_string("workdir", None, "Training run folder (python -m hotdance_jax.train), "
                        "local or gs://bucket/path.")
    flags.DEFINE_string("checkpoint", None, "A checkpoint step folder, WORKDIR/checkpoints/STEP.")
    flags.DEFINE_string("vae-weights", None, "Autoencoder weights; default: the run's.")
    flags.DEFINE_string("music", None, "An audio file.")
    flags.DEFINE_string("music-dir", None, "A folder: every audio file in it.")
    flags.DEFINE_string("out", None, "FILE.npz (one dance) or a folder (several).")
    flags.DEFINE_string("video", None, "FILE.mp4 (one dance) or a folder: skeleton videos.")
    flags.DEFINE_string("openpose-dir", None, "Folder for one OpenPose JSON per frame.")
    flags.DEFINE_string("reference", None, "The dancer: one pose (OpenPose JSON, npz, or JSON "
                        "list), pixels of the output frame.")
    flags.DEFINE_string("keyframes", None, "JSON list of {\"time\": seconds of the dance, "
                        "\"pose\": ...}: poses the dance passes through "
                        "(hotdance_jax/choreography.py).")
    flags.DEFINE_string("continue", None, "A dance npz of this command to continue: the output "
                        "starts with it unchanged and goes on for --seconds more of its music, or "
                        "of --music from --start.")
    flags.DEFINE_float("seconds", None, "Seconds of music to dance to (> 0); default the whole "
                       "song.")
    flags.register_validator("seconds", lambda v: v is None or v > 0, "must be > 0 seconds")
    flags.DEFINE_float("start", 0.0, "Where in the song to start, seconds.", lower_bound=0.0)
    flags.DEFINE_integer("seed", 0, "Noise seed.")
    flags.DEFINE_integer("num-samples", 1, "Different dances per song.", lower_bound=1)
    flags.DEFINE_integer("steps", 30, "ODE steps per segment.", lower_bound=1)
    flags.DEFINE_enum("sampler", "euler", ["euler", "heun"], "ODE solver.")
    flags.DEFINE_float("guidance", 2.0, "Classifier-free guidance scale on the music (1: off).")
    flags.DEFINE_float("fps", None, "Frame rate; must be the run's (default).")
    flags.DEFINE_integer("width", None, "Output frame width, pixels; default the training "
                         "data's (poses are fractions of the frame: other aspects stretch them).")
    flags.DEFINE_integer("height", None, "Output frame height, pixels; default the training "
                         "data's.")


def flag(name: str):
    """The value of a (possibly dashed) flag of this command."""
    return FLAGS[name].value


def music_files() -> list[Path]:
    """The --music file or every audio file of --music-dir."""
    if bool(flag("music")) == bool(flag("music-dir")):
        raise InputError("give exactly one of --music FILE and --music-dir DIR")
    if flag("music"):
        return [Path(flag("music"))]
    folder = Path(flag("music-dir"))
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


def dance_name(dance: Dance, num_samples: int) -> str:
    """SONG, or SONG_sampleN when several samples are drawn per song."""
    song = dance.song.path.stem if dance.song.path else Path(flag("continue")).stem + "_continued"
    return song + (f"_sample{dance.sample}" if num_samples > 1 else "")


@dataclasses.dataclass
class Choreography:
    """What the command dances: songs, the dancer's shape pose (None: the run's mean dancer),
    the dance to continue and the keyframes."""

    songs: list[Song]
    dancer: tuple[np.ndarray, np.ndarray] | None
    opening: Opening | None
    keyframes: Sequence[Keyframe]


def read_choreography(config: ml_collections.ConfigDict) -> Choreography:
    """The command's songs, reference, --continue and --keyframes, each checked (InputError)."""
    fps = config.pose.fps
    dancer = read_dancer(Path(flag("reference")), config) if flag("reference") else None
    if flag("continue") and not flag("seconds"):
        raise InputError("--continue needs --seconds S: how much longer to dance")
    if flag("continue") and flag("music-dir"):
        raise InputError("--continue takes one song (--music), not --music-dir")
    skeleton = pipeline_skeleton(config.pose.skeleton)
    opening = read_opening(Path(flag("continue")), fps, skeleton) if flag("continue") else None
    if opening is not None:
        songs = [continued_song(opening, config, fps)]
        dancer = dancer if dancer is not None else shape_pose(opening.keypoints,
                                                              opening.confidence)
    else:
        songs = [load_song(p, config, fps, flag("start"), flag("seconds"))
                 for p in music_files()]
    keyframes = (read_keyframes(Path(flag("keyframes")), min(s.frames for s in songs) / fps, fps,
                                skeleton) if flag("keyframes") else ())
    return Choreography(songs, dancer, opening, keyframes)


def write_dance(dance: Dance, name: str, many: bool) -> list[str]:
    """The dance's npz (and joined music), OpenPose folder and video as the flags ask; returns
    what was written."""
    npz = Path(flag("out")) / f"{name}.npz" if many else Path(flag("out"))
    if dance.song.path is None:  # music joined for a continuation: written beside the npz
        save_wav(npz.with_suffix(".wav"), dance.song.audio, dance.song.sample_rate)
        dance = dataclasses.replace(dance, song=dataclasses.replace(
            dance.song, path=npz.with_suffix(".wav"), start=0.0))
    save_dance(npz, dance)
    written = [str(npz)]
    if flag("openpose-dir"):
        folder = Path(flag("openpose-dir")) / (name if many else "")
        save_openpose(folder, dance, name)
        written.append(f"{folder}/")
    if flag("video"):
        video = Path(flag("video")) / f"{name}.mp4" if many else Path(flag("video"))
        save_dance_video(video, dance)
        written.append(str(video))
    return written


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {argv[1:]}")
    if not flag("workdir") and not flag("checkpoint"):
        raise InputError("give --workdir DIR or --checkpoint DIR/checkpoints/STEP")
    if not flag("out"):
        raise InputError("--out is required (FILE.npz, or a folder for several dances)")
    checkpoint = run_path(flag("checkpoint")) if flag("checkpoint") else None
    workdir = run_path(flag("workdir")) if flag("workdir") else checkpoint.parent.parent
    num_samples = flag("num-samples")
    start = time.perf_counter()
    # The inputs first (the run's config is one small file), then the model: a bad song or
    # reference is refused in seconds.
    config = read_run_config(workdir)
    if flag("fps") is not None and abs(flag("fps") - config.pose.fps) > 1e-6:
        raise InputError(f"--fps {flag('fps'):g}: the run was trained at {config.pose.fps:g} fps")
    given = read_choreography(config)
    generator = DanceGenerator.load(workdir, checkpoint, flag("vae-weights"), config)
    frame = ((given.opening.width, given.opening.height) if given.opening
             else generator.info["mean_dancer"]["frame"])
    width, height = flag("width") or frame[0], flag("height") or frame[1]
    shape = given.dancer if given.dancer is not None else generator.mean_dancer(width, height)
    dances = generator.generate(given.songs, shape, width=width, height=height,
                                num_samples=num_samples, seed=flag("seed"), steps=flag("steps"),
                                sampler=flag("sampler"), guidance=flag("guidance"),
                                keyframes=given.keyframes, opening=given.opening)
    for dance in dances:
        written = write_dance(dance, dance_name(dance, num_samples), len(dances) > 1)
        frames = dance.keypoints.shape[0]
        music = dance.song.path.name if dance.song.path else "joined music"
        print(f"{music}: {frames / dance.fps:.1f} s dance ({frames} frames at "
              f"{dance.fps:g} fps), music {dance.song.bpm:.1f} BPM -> {', '.join(written)}")
    print(f"{len(dances)} dance(s) from step {generator.step} of {workdir} in "
          f"{time.perf_counter() - start:.1f} s")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
