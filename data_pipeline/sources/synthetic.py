"""Synthetic source: procedural drum music and a 2D dancer whose moves hit its beats.

The project's built-in dataset (demo, fast tests). Everything is numpy and deterministic per seed.
A song's tempo curve (80-140 BPM, drifting or changing within the song) integrates to a beat
position b(t); beats sit at integer b. The drums play on that grid. The dancer is a planar
kinematic skeleton (rigid bones) whose key poses sit on integer b and are joined by an ease whose
velocity vanishes on the beats, so every pose "hit" (a minimum of keypoint speed) lands on a beat.
Moves change every 2 or 4 bars, where a crash cymbal marks the change. Confidence is 1 everywhere.
With hands (config.pose.skeleton "openpose18_hands"), each hand follows its forearm, waves with
the beat and closes into a fist on every beat (or every other one) and opens between; its own
random stream leaves the body's motion as without hands (the dancer is placed in the frame with
them).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import ml_collections
import numpy as np
import soundfile as sf

from data_pipeline.sources.base import Performance
from hotdance_jax.errors import InputError
from hotdance_jax.io import save_npz, save_wav
from hotdance_jax.pose.skeletons import pipeline_skeleton, skeleton_of

TEMPO_RANGE = (80.0, 140.0)  # BPM
BEATS_PER_BAR = 4
BLEND_BEATS = 4  # beats over which one move cross-fades into the next
NUM_JOINTS = 18  # OpenPose-18

# Hands in standing heights: per finger (thumb to pinky) its base's distance from the wrist, its
# fan angle from the hand's axis (radians, toward the thumb) and its three phalanges' lengths.
_FINGER_BASE = (0.02, 0.05, 0.052, 0.05, 0.045)
_FINGER_FAN = (0.75, 0.22, 0.0, -0.18, -0.36)
_PHALANGES = ((0.018, 0.015, 0.013), (0.026, 0.016, 0.012), (0.029, 0.018, 0.013),
              (0.027, 0.017, 0.012), (0.021, 0.013, 0.011))
_FIST_SHORTENING = 0.8  # a curled phalanx seen from the front: this fraction of it hidden
_FIST_BEND = 0.35  # radians each phalanx of a curled finger turns toward the thumb

# Pose parameters (one row of a (T, P) array). Lengths in body heights, y down; angles in radians.
# Arm angles turn away from the torso's down axis, outward (pi = straight up): shoulder = upper arm,
# forearm = forearm's own direction (not relative to the upper arm). Feet: ankle x, lift off ground.
PARAMS = ("root_x", "root_y", "lean", "head", "r_sh", "r_fa", "l_sh", "l_fa", "r_foot", "r_lift",
          "l_foot", "l_lift")
(ROOT_X, ROOT_Y, LEAN, HEAD, R_SH, R_FA, L_SH, L_FA, R_FOOT, R_LIFT, L_FOOT, L_LIFT) = range(12)
NUM_PARAMS = len(PARAMS)
ANGLES = [LEAN, HEAD, R_SH, R_FA, L_SH, L_FA]
NEUTRAL = np.array([0, 0, 0, 0, 0.2, 0.05, 0.2, 0.05, -0.09, 0, 0.09, 0], np.float64)
_MIRROR_PERM = [ROOT_X, ROOT_Y, LEAN, HEAD, L_SH, L_FA, R_SH, R_FA, L_FOOT, L_LIFT, R_FOOT, R_LIFT]
_MIRROR_SIGN = np.array([-1, 1, -1, -1, 1, 1, 1, 1, -1, 1, -1, 1], np.float64)

# Body proportions in standing heights (ankle to top of head), before per-song jitter.
_BONES = {
    "torso": 0.29, "neck": 0.095, "upper_arm": 0.175, "forearm": 0.15, "thigh": 0.245,
    "shin": 0.245, "shoulder": 0.11, "hip": 0.08, "eye": 0.025, "eye_up": 0.025, "ear": 0.06,
    "ear_up": 0.01, "crown": 0.09,
}
_GROUND = 0.97  # ankle-to-pelvis distance in the neutral stance, as a fraction of thigh + shin


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticPerformance:
    """One synthetic song and its dance."""

    name: str  # e.g. "synthetic_0007"
    audio: np.ndarray  # (S,) float32 mono in [-1, 1]
    sample_rate: int  # Hz
    beat_times: np.ndarray  # (NB,) float64 seconds, the true beats of the music
    keypoints: np.ndarray  # (T, K, 2) float32 pixels, OpenPose-18 (with hands: K = 60), y down
    confidence: np.ndarray  # (T, K) float32 in [0, 1]
    fps: float
    width: int
    height: int
    tempo_bpm: np.ndarray  # (NB-1,) float64 BPM between consecutive beats


def _vector(base: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """(P,) copy of `base` with the named parameters replaced."""
    out = base.copy()
    for name, value in params.items():
        out[PARAMS.index(name)] = value
    return out


def _key(**params: float) -> np.ndarray:
    """(P,) key pose: NEUTRAL with the named parameters replaced."""
    return _vector(NEUTRAL, params)


def _arc(**params: float) -> np.ndarray:
    """(P,) mid-beat excursion added between two key poses (zero on both beats)."""
    return _vector(np.zeros(NUM_PARAMS), params)


_STEP = {"r_sh": 0.7, "r_fa": -0.2, "l_sh": 0.7, "l_fa": -0.2}
_BOUNCE = _arc(root_y=-0.025)

# Move vocabulary: key poses on consecutive beats (n, P) and the arc from key i to i+1 (n, P).
MOVES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "arm_pump": (
        np.stack([
            _key(root_x=-0.02, root_y=0.04, lean=0.05, head=0.08,
                 r_sh=2.7, r_fa=2.8, l_sh=1.4, l_fa=2.6),
            _key(root_x=0.02, root_y=0.04, lean=-0.05, head=-0.08,
                 r_sh=1.4, r_fa=2.6, l_sh=2.7, l_fa=2.8),
        ]),
        np.zeros((2, NUM_PARAMS)),
    ),
    "side_step": (
        np.stack([
            _key(root_x=0.06, lean=0.05, r_foot=0.0, l_foot=0.13,
                 r_sh=0.3, r_fa=-0.1, l_sh=1.0, l_fa=1.6),
            _key(root_x=-0.02, root_y=0.04, r_foot=-0.17, l_foot=0.13, **_STEP),
            _key(root_x=-0.10, lean=-0.05, r_foot=-0.17, l_foot=-0.04,
                 r_sh=1.0, r_fa=1.6, l_sh=0.3, l_fa=-0.1),
            _key(root_x=-0.02, root_y=0.04, r_foot=-0.17, l_foot=0.13, **_STEP),
        ]),
        np.stack([
            _arc(r_lift=0.06, root_y=-0.02), _arc(l_lift=0.06, root_y=-0.02),
            _arc(l_lift=0.06, root_y=-0.02), _arc(r_lift=0.06, root_y=-0.02),
        ]),
    ),
    "knee_bounce": (
        np.stack([
            _key(root_y=0.09, head=0.06, r_foot=-0.13, l_foot=0.13,
                 r_sh=0.9, r_fa=-0.7, l_sh=0.9, l_fa=-0.7),
            _key(root_y=0.0, head=-0.06, r_foot=-0.13, l_foot=0.13,
                 r_sh=0.35, r_fa=0.15, l_sh=0.35, l_fa=0.15),
        ]),
        np.zeros((2, NUM_PARAMS)),
    ),
    "arm_wave": (
        np.stack([
            _key(root_x=0.03, lean=-0.08, head=-0.1, r_foot=-0.11, l_foot=0.11,
                 r_sh=2.3, r_fa=2.7, l_sh=2.9, l_fa=2.5),
            _key(root_x=-0.03, lean=0.08, head=0.1, r_foot=-0.11, l_foot=0.11,
                 r_sh=2.9, r_fa=2.5, l_sh=2.3, l_fa=2.7),
        ]),
        np.zeros((2, NUM_PARAMS)),
    ),
    "clap": (
        np.stack([
            _key(root_y=0.05, r_sh=0.2, r_fa=-2.07, l_sh=0.2, l_fa=-2.07),
            _key(root_y=0.0, head=0.08, r_sh=0.5, r_fa=2.6, l_sh=0.5, l_fa=2.6),
        ]),
        np.zeros((2, NUM_PARAMS)),
    ),
    "kick": (
        np.stack([
            _key(root_x=0.04, lean=0.12, r_foot=-0.32, r_lift=0.2,
                 r_sh=1.3, r_fa=1.2, l_sh=1.1, l_fa=1.0),
            _key(root_y=0.03, r_sh=0.7, r_fa=0.3, l_sh=0.7, l_fa=0.3),
            _key(root_x=-0.04, lean=-0.12, l_foot=0.32, l_lift=0.2,
                 r_sh=1.1, r_fa=1.0, l_sh=1.3, l_fa=1.2),
            _key(root_y=0.03, r_sh=0.7, r_fa=0.3, l_sh=0.7, l_fa=0.3),
        ]),
        np.stack([_BOUNCE, _arc(), _BOUNCE, _arc()]),
    ),
}


def synthesize_performance(
    seed: int,
    seconds: float = 20.0,
    fps: float = 30.0,
    sample_rate: int = 22050,
    width: int = 512,
    height: int = 512,
    hands: bool = False,
) -> SyntheticPerformance:
    """A `seconds`-long song and its dance; frame t is time t / fps. Same seed, same arrays;
    `hands` adds OpenPose's two hands (keypoints (T, 60, 2)) to the same body."""
    if seconds < 2 or fps <= 0 or sample_rate < 8000 or min(width, height) < 16:
        raise InputError(
            f"synthetic: bad arguments seconds={seconds} fps={fps} sample_rate={sample_rate} "
            f"size={width}x{height}"
        )
    rng = np.random.default_rng(seed)
    grid, phase = _beat_phase(rng, seconds)
    beat_times = np.interp(np.arange(np.ceil(phase[-1])), phase, grid)
    segments = _segments(rng, len(beat_times))
    audio = _drums(rng, grid, phase, segments, seconds, sample_rate)
    frame_beats = np.interp(np.arange(int(seconds * fps + 1e-6)) / fps, grid, phase)
    params = _animate(rng, frame_beats, segments)
    bones = _draw_bones(rng)
    joints = _forward_kinematics(params, bones)
    if hands:
        joints = np.concatenate([joints, _hands(np.random.default_rng([seed, 1]), joints,
                                                frame_beats)], axis=1)
    keypoints = _place(rng, joints, width, height)
    return SyntheticPerformance(
        name=f"synthetic_{seed:04d}",
        audio=audio,
        sample_rate=sample_rate,
        beat_times=beat_times,
        keypoints=keypoints.astype(np.float32),
        confidence=np.ones(keypoints.shape[:2], np.float32),
        fps=float(fps),
        width=width,
        height=height,
        tempo_bpm=60.0 / np.diff(beat_times),
    )


# ---------------------------------------------------------------- tempo and beats


def _beat_phase(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(N,) time grid in seconds (1 ms steps) and (N,) beat position b(t); b = 0 at the first beat.

    The tempo moves from a start to an end tempo 4-15% apart, both in TEMPO_RANGE, as a linear
    drift, a smooth step, or a swell out and back.
    """
    lo, hi = TEMPO_RANGE
    start, change = rng.uniform(lo, hi), rng.uniform(0.04, 0.15)
    ends = [e for e in (start * (1 + change), start * (1 - change)) if lo <= e <= hi]
    end = ends[rng.integers(len(ends))]
    grid = np.linspace(0.0, seconds, int(seconds * 1000) + 1)
    x = grid / seconds
    shape = rng.integers(3)
    if shape == 0:
        ramp = x
    elif shape == 1:
        ramp = 0.5 + 0.5 * np.tanh((x - rng.uniform(0.35, 0.65)) * seconds / rng.uniform(0.3, 1))
    else:
        ramp = np.sin(np.pi * x) ** 2
    beats_per_s = (start + (end - start) * ramp) / 60.0
    steps = (beats_per_s[1:] + beats_per_s[:-1]) / 2 * np.diff(grid)
    phase = np.concatenate([[0.0], np.cumsum(steps)])
    return grid, phase - np.interp(rng.uniform(0.05, 0.35), grid, phase)


def _segments(rng: np.random.Generator, num_beats: int) -> list[tuple[int, str, bool]]:
    """Segments: (first beat, move name, mirrored): 2 or 4 bars each, no move twice in a row."""
    segments, beat, names = [], 0, list(MOVES)
    while beat < num_beats + 1:
        choices = [n for n in names if not segments or n != segments[-1][1]]
        segments.append((beat, choices[rng.integers(len(choices))], bool(rng.integers(2))))
        beat += BEATS_PER_BAR * int(rng.choice([2, 4]))
    return segments


# ---------------------------------------------------------------- music


def _drums(
    rng: np.random.Generator,
    grid: np.ndarray,
    phase: np.ndarray,
    segments: list[tuple[int, str, bool]],
    seconds: float,
    sample_rate: int,
) -> np.ndarray:
    """(S,) float32 drums peaking at 0.9: kick, snare, hats on the beat grid, a crash per move."""
    audio = np.zeros(round(seconds * sample_rate))
    sounds = _drum_sounds(rng, sample_rate)
    levels = {"kick": 1.0, "snare": rng.uniform(0.8, 1.0), "hat": rng.uniform(0.2, 0.35),
              "crash": rng.uniform(0.4, 0.6)}
    for drum, (steps, gains) in _pattern(rng, int(np.ceil(phase[-1]))).items():
        times = np.interp(steps, phase, grid)
        gains = levels[drum] * gains * rng.uniform(0.9, 1.1, len(gains))
        _mix(audio, sounds[drum], np.round(times * sample_rate).astype(int), gains)
    crash_beats = np.array([b for b, _, _ in segments if b < phase[-1]], float)
    crash_times = np.interp(crash_beats, phase, grid)
    _mix(audio, sounds["crash"], np.round(crash_times * sample_rate).astype(int),
         np.full(len(crash_beats), levels["crash"]))
    return (0.9 * audio / np.abs(audio).max()).astype(np.float32)


def _pattern(rng: np.random.Generator, num_beats: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per drum: (beat positions, relative gains). Kick accents downbeats; hats 8ths or 16ths."""
    beats = np.arange(num_beats, dtype=float)
    in_bar = beats % BEATS_PER_BAR
    four_on_floor = rng.random() < 0.5
    kick = beats if four_on_floor else beats[in_bar % 2 == 0]
    snare = beats[in_bar % 2 == 1]
    division = int(rng.choice([2, 4]))
    hats = np.arange(num_beats * division) / division
    if four_on_floor:
        hats = hats[hats % 1 != 0]  # off the beat only
    return {
        "kick": (kick, np.where(kick % BEATS_PER_BAR == 0, 1.0, 0.8)),
        "snare": (snare, np.where(snare % BEATS_PER_BAR == 3, 1.0, 0.9)),
        "hat": (hats, np.where(hats % 0.5 == 0, 1.0, 0.6)),
    }


def _drum_sounds(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    """One sample per drum for the song, each (n,) float64 with peak 1."""
    t = np.arange(int(1.5 * sr)) / sr
    sweep_hz = rng.uniform(45, 60) + rng.uniform(70, 110) * np.exp(-t / rng.uniform(0.03, 0.06))
    kick = np.sin(2 * np.pi * np.cumsum(sweep_hz) / sr) * np.exp(-t / rng.uniform(0.1, 0.18))
    noise = rng.standard_normal(len(t))
    bright = np.diff(noise, 2, prepend=0.0, append=0.0)[: len(t)] / 2
    snare = (0.7 * bright * np.exp(-t / rng.uniform(0.05, 0.09))
             + 0.5 * np.sin(2 * np.pi * rng.uniform(160, 220) * t) * np.exp(-t / 0.05))
    hat = np.diff(bright, prepend=0.0) / 2 * np.exp(-t / rng.uniform(0.01, 0.025))
    crash = bright * np.exp(-t / rng.uniform(0.4, 0.8))
    n = {"kick": 0.4, "snare": 0.3, "hat": 0.08, "crash": 1.5}
    sounds = {"kick": kick, "snare": snare, "hat": hat, "crash": crash}
    sounds = {k: v[: int(n[k] * sr)] for k, v in sounds.items()}
    return {k: v / np.abs(v).max() for k, v in sounds.items()}


def _mix(audio: np.ndarray, sound: np.ndarray, onsets: np.ndarray, gains: np.ndarray) -> None:
    """Adds gain * sound at each onset sample index, in place, clipped at the end of `audio`."""
    for onset, gain in zip(onsets, gains, strict=True):
        if 0 <= onset < len(audio):
            n = min(len(sound), len(audio) - onset)
            audio[onset : onset + n] += gain * sound[:n]


# ---------------------------------------------------------------- dance


def _ease(u: np.ndarray) -> np.ndarray:
    """Smoothstep from 0 to 1 over u in [0, 1]: zero velocity at both ends, a sharp stop."""
    return u * u * (3 - 2 * u)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles in radians wrapped to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _animate(
    rng: np.random.Generator, frame_beats: np.ndarray, segments: list[tuple[int, str, bool]]
) -> np.ndarray:
    """(T, P) pose parameters at beat positions `frame_beats` (T,): eased key poses per beat.

    Per song: amplitude of arms, sway and bounce; bigger poses on downbeats; a small random offset
    on every key pose (smooth style noise that keeps the hits on the beats). Angles take the short
    way round between keys.
    """
    first, last = int(np.floor(frame_beats[0])), int(np.floor(frame_beats[-1])) + 1
    beats = np.arange(first, last + 1)
    keys, arcs = _beat_keys(beats, segments)
    scale = np.ones(NUM_PARAMS)
    scale[[R_SH, R_FA, L_SH, L_FA]] = rng.uniform(0.8, 1.1)
    scale[[ROOT_X, LEAN, HEAD]] = rng.uniform(0.7, 1.2)
    scale[[ROOT_Y, R_LIFT, L_LIFT]] = rng.uniform(0.7, 1.2)
    accent = np.where(beats % BEATS_PER_BAR == 0, rng.uniform(1.0, 1.15), 1.0)[:, None]
    noise = rng.normal(0, 1, keys.shape) * np.array([0.01, 0.005] + [0.04] * 6 + [0.01, 0] * 2)
    keys = NEUTRAL + accent * scale * (keys - NEUTRAL) + noise
    keys[:, ANGLES] = np.unwrap(keys[:, ANGLES], axis=0)
    i = np.floor(frame_beats).astype(int) - first
    u = (frame_beats - np.floor(frame_beats))[:, None]
    return keys[i] + (keys[i + 1] - keys[i]) * _ease(u) + scale * arcs[i] * np.sin(np.pi * u) ** 2


def _beat_keys(
    beats: np.ndarray, segments: list[tuple[int, str, bool]]
) -> tuple[np.ndarray, np.ndarray]:
    """(NB, P) key pose on each beat and (NB, P) arc from it to the next, from the move segments.

    A new move cross-fades in over its first BLEND_BEATS beats while the old one carries on.
    """
    starts = np.array([s for s, _, _ in segments])
    which = np.maximum(np.searchsorted(starts, beats, side="right") - 1, 0)
    keys, arcs = np.empty((len(beats), NUM_PARAMS)), np.empty((len(beats), NUM_PARAMS))
    for j, (beat, w) in enumerate(zip(beats, which, strict=True)):
        keys[j], arcs[j] = _move_key(segments[w], beat)
        fade = (beat - starts[w] + 1) / (BLEND_BEATS + 1)
        if w > 0 and fade < 1:
            old_key, old_arc = _move_key(segments[w - 1], beat)
            change = keys[j] - old_key
            change[ANGLES] = _wrap(change[ANGLES])
            keys[j] = old_key + fade * change
            arcs[j] = old_arc + fade * (arcs[j] - old_arc)
    return keys, arcs


def _move_key(segment: tuple[int, str, bool], beat: int) -> tuple[np.ndarray, np.ndarray]:
    """(P,) key pose and (P,) arc of a segment's move on `beat` (an absolute beat index)."""
    start, name, mirrored = segment
    keys, arcs = MOVES[name]
    k = (beat - start) % len(keys)
    if mirrored:
        return keys[k][_MIRROR_PERM] * _MIRROR_SIGN, arcs[k][_MIRROR_PERM]
    return keys[k], arcs[k]


def _draw_bones(rng: np.random.Generator) -> dict[str, float]:
    """Bone lengths of one dancer in standing heights (ankle to top of head), jittered +-6%."""
    bones = {k: v * rng.uniform(0.94, 1.06) for k, v in _BONES.items()}
    standing = _GROUND * (bones["thigh"] + bones["shin"]) + bones["torso"] + bones["neck"]
    return {k: v / (standing + bones["crown"]) for k, v in bones.items()}


def _direction(angle: np.ndarray) -> np.ndarray:
    """(..., 2) unit vector at `angle` radians from straight down, turning toward +x."""
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)


def _forward_kinematics(params: np.ndarray, bones: dict[str, float]) -> np.ndarray:
    """(T, P) pose parameters -> (T, 18, 2) OpenPose-18 joints in standing heights, y down."""
    p = params.T
    pelvis = np.stack([p[ROOT_X], p[ROOT_Y]], axis=-1)
    up, across = -_direction(-p[LEAN]), _direction(np.pi / 2 - p[LEAN])
    tilt = p[LEAN] + p[HEAD]
    head_up, head_across = -_direction(-tilt), _direction(np.pi / 2 - tilt)
    neck = pelvis + bones["torso"] * up
    nose = neck + bones["neck"] * head_up
    joints = {1: neck, 0: nose}
    for side, (sh, fa), (shoulder, elbow, wrist, hip) in (
        (-1, (R_SH, R_FA), (2, 3, 4, 8)),
        (1, (L_SH, L_FA), (5, 6, 7, 11)),
    ):
        joints[shoulder] = neck + side * bones["shoulder"] * across
        joints[elbow] = joints[shoulder] + bones["upper_arm"] * _direction(side * p[sh] - p[LEAN])
        joints[wrist] = joints[elbow] + bones["forearm"] * _direction(side * p[fa] - p[LEAN])
        joints[hip] = pelvis + side * bones["hip"] * across
    ground = _GROUND * (bones["thigh"] + bones["shin"])
    for side, (foot, lift), (hip, knee, ankle) in (
        (-1, (R_FOOT, R_LIFT), (8, 9, 10)),
        (1, (L_FOOT, L_LIFT), (11, 12, 13)),
    ):
        target = np.stack([p[foot], ground - p[lift]], axis=-1)
        joints[knee], joints[ankle] = _leg_ik(joints[hip], target, bones, side)
    for side, (eye, ear) in ((-1, (14, 16)), (1, (15, 17))):
        joints[eye] = nose + bones["eye_up"] * head_up + side * bones["eye"] * head_across
        joints[ear] = nose + bones["ear_up"] * head_up + side * bones["ear"] * head_across
    return np.stack([joints[j] for j in range(NUM_JOINTS)], axis=1)


def _hands(rng: np.random.Generator, joints: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """(T, 42, 2) left then right hand in OpenPose's hand order, standing heights, for the
    (T, 18, 2) body `joints` at beat positions `beats` (T,).

    Per song and hand: a fist on every beat or every other one (curl 0 open .. 1 closed as a
    raised cosine of the beat), a wave of the hand's axis off its forearm's swinging once per
    beat, and how far each goes.
    """
    out = []
    for side, (elbow, wrist) in ((1, (6, 7)), (-1, (3, 4))):  # left (image right), then right
        period = rng.choice([1.0, 2.0])
        curl = rng.uniform(0.5, 1.0) * (0.5 + 0.5 * np.cos(2 * np.pi * beats / period))
        wave = rng.uniform(0.2, 0.6) * np.sin(np.pi * beats + rng.uniform(0, 2 * np.pi))
        forearm = joints[:, wrist] - joints[:, elbow]
        axis = np.arctan2(forearm[:, 0], forearm[:, 1]) + side * wave  # from straight down
        hand = [joints[:, wrist]]
        for base, fan, phalanges in zip(_FINGER_BASE, _FINGER_FAN, _PHALANGES, strict=True):
            spread = side * fan * (1.0 - 0.4 * curl)
            point = joints[:, wrist] + base * _direction(axis + spread)
            hand.append(point)
            for k, length in enumerate(phalanges):
                turn = axis + spread + side * _FIST_BEND * curl * (k + 1)
                point = point + length * (1 - _FIST_SHORTENING * curl)[:, None] * _direction(turn)
                hand.append(point)
        out.extend(hand)
    return np.stack(out, axis=1)


def _leg_ik(
    hip: np.ndarray, target: np.ndarray, bones: dict[str, float], side: int
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) knee and ankle reaching for `target` (T, 2), knee bent outward (side -1 = image left).

    The reach softly saturates below full extension, so the bones stay rigid and the knee smooth.
    """
    thigh, shin = bones["thigh"], bones["shin"]
    offset = target - hip
    dist = np.linalg.norm(offset, axis=-1, keepdims=True)
    soft, full = 0.97 * (thigh + shin), 0.995 * (thigh + shin)
    saturated = soft + (full - soft) * np.tanh((dist - soft) / (full - soft))
    reach = np.where(dist > soft, saturated, dist)
    along = offset / dist
    outward = side * np.concatenate([along[:, 1:], -along[:, :1]], axis=-1)
    a = (thigh**2 - shin**2 + reach**2) / (2 * reach)
    knee = hip + a * along + np.sqrt(np.maximum(thigh**2 - a**2, 0)) * outward
    return knee, hip + reach * along


def _place(rng: np.random.Generator, joints: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, K, 2) standing heights -> pixels: body 35-70% of frame height, whole dance in frame."""
    margin = 0.03 * min(width, height)
    low, high = joints.min(axis=(0, 1)), joints.max(axis=(0, 1))
    room = np.array([width, height]) - 2 * margin
    scale = min(rng.uniform(0.35, 0.7) * height, *(room / (high - low)))
    free = room - scale * (high - low)
    return joints * scale + margin - scale * low + rng.uniform(0, 1, 2) * free


# ---------------------------------------------------------------- files


def write_performance(perf: SyntheticPerformance, directory: str | os.PathLike) -> None:
    """Writes `audio.wav` (16-bit PCM) and `poses.npz` into `directory`, each atomically."""
    directory = Path(directory)
    save_wav(directory / "audio.wav", perf.audio, perf.sample_rate)
    save_npz(
        directory / "poses.npz", keypoints=perf.keypoints, confidence=perf.confidence,
        fps=perf.fps, width=perf.width, height=perf.height, beat_times=perf.beat_times,
        skeleton=skeleton_of(perf.keypoints.shape[1]).name,
    )


def read_performance(directory: str | os.PathLike) -> SyntheticPerformance:
    """Reads what write_performance wrote; the name is the directory's name."""
    directory = Path(directory)
    for file in ("audio.wav", "poses.npz"):
        if not (directory / file).is_file():
            raise InputError(f"synthetic performance {directory}: missing {file}")
    audio, sample_rate = sf.read(directory / "audio.wav", dtype="float32", always_2d=False)
    with np.load(directory / "poses.npz") as poses:
        beat_times = poses["beat_times"]
        return SyntheticPerformance(
            name=directory.name,
            audio=audio,
            sample_rate=int(sample_rate),
            beat_times=beat_times,
            keypoints=poses["keypoints"],
            confidence=poses["confidence"],
            fps=float(poses["fps"]),
            width=int(poses["width"]),
            height=int(poses["height"]),
            tempo_bpm=60.0 / np.diff(beat_times),
        )


# ---------------------------------------------------------------- data pipeline source


def performances(
    root: Path, config: ml_collections.ConfigDict, stats: collections.Counter
) -> Iterator[Performance]:
    """Writes songs 0 .. num_songs-1 under `root` (a folder each) and yields them.

    `config` is config.data; config.synthetic sets num_songs, seconds, width, height. The last
    test_songs seeds form the test split, the val_songs before them val, the rest train. The
    dancers have hands when config.skeleton (config.pose.skeleton, set by the build) has.
    """
    cfg = config.synthetic
    hands = pipeline_skeleton(config.get("skeleton", "openpose18")).has_hands
    last_val = cfg.num_songs - cfg.test_songs
    first_val = last_val - cfg.val_songs
    if first_val < 1 or min(cfg.val_songs, cfg.test_songs) < 0:
        raise InputError(
            f"synthetic: num_songs={cfg.num_songs} leaves no training songs after "
            f"val_songs={cfg.val_songs} and test_songs={cfg.test_songs}"
        )
    for seed in range(cfg.num_songs):
        perf = synthesize_performance(seed, cfg.seconds, width=cfg.width, height=cfg.height,
                                      hands=hands)
        write_performance(perf, Path(root) / perf.name)
        stats["synthetic_songs_written"] += 1
        split = "train" if seed < first_val else "test" if seed >= last_val else "val"
        yield Performance(
            sequence_id=perf.name,
            keypoints=perf.keypoints,
            confidence=perf.confidence,
            fps=perf.fps,
            width=perf.width,
            height=perf.height,
            audio_path=str(Path(root) / perf.name / "audio.wav"),
            audio_offset=0.0,
            split=split,
            source="synthetic",
        )
