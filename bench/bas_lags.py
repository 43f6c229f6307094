r"""Does a set of dances follow its music's beats, or only move at a beat-like rate? BAS baselines.

  python bench/bas_lags.py data/dwm runs/quality/full/dances_s30_g2 [--split test] \
      [--seconds 20] [--max-lag 0.6]

Per set (a segment build's --split, or a folder of dance npz as python -m hotdance_jax.sample
writes them; each dance cut to its first --seconds): BAS against its own music's beats (the
evaluate table's BAS), against the beats of every other music of the set (mean over them; the
table's "another dance's music" takes one partner), and against its own music's beats shifted by
every lag within +-max-lag seconds, one frame apart (mean over lags: the BAS of a dance that moves
at its own rate, unlocked from the beats). A dance that follows its beats scores its own music
above both baselines and its lag profile peaks near lag 0; lag > 0 is motion after the beat.
A dance can also keep a phase to the beat other than lag 0 (resting between beats, say): the
last column is the Pearson r of each set's mean lag profile with the first set's (give the real
dances first). The mean profile is printed at every tenth of a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hotdance_jax import evaluate
from hotdance_jax.errors import InputError
from hotdance_jax.metrics.beat import beat_align_score


def lag_profile(keypoints: np.ndarray, confidence: np.ndarray, beat_times: np.ndarray,
                fps: float, lags: np.ndarray) -> np.ndarray:
    """(L,) BAS of a (T, K, 2) dance against `beat_times` (s) shifted by each of `lags` (s)."""
    return np.array([beat_align_score(keypoints, confidence, beat_times + lag, fps)
                     for lag in lags])


def set_figures(dance_set: evaluate.DanceSet, seconds: float, lags: np.ndarray) -> dict:
    """BAS own, mean BAS over every other music of the set, and the (L,) mean lag profile
    (each music's beats found once, over the longest dance's first `seconds`)."""
    musics = sorted({(d.audio_path, d.audio_offset) for d in dance_set.dances})
    if len(musics) < 2:
        raise InputError(f"{dance_set.path}: every dance has the same music; no other to compare")
    longest = max(min(d.num_frames / d.fps, seconds) for d in dance_set.dances)
    beats = {music: evaluate.music_beats(*music, longest) for music in musics}
    own, other, profiles = [], [], []
    for dance in dance_set.dances:
        frames = min(dance.num_frames, round(seconds * dance.fps))
        body = evaluate.body_of(dance.keypoints[:frames], dance.confidence[:frames])
        mine = (dance.audio_path, dance.audio_offset)
        own.append(beat_align_score(*body, beats[mine], dance.fps))
        other.append(np.nanmean([beat_align_score(*body, b, dance.fps)
                                 for music, b in beats.items() if music != mine]))
        profiles.append(lag_profile(*body, beats[mine], dance.fps, lags))
    return {"own": float(np.nanmean(own)), "other": float(np.nanmean(other)),
            "profile": np.nanmean(np.array(profiles), axis=0), "dances": len(own)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path, help="segment builds or dance folders")
    parser.add_argument("--split", default="test", help="split of a segment build")
    parser.add_argument("--seconds", type=float, default=20.0, help="first seconds of each dance")
    parser.add_argument("--max-lag", type=float, default=0.6, help="seconds either side")
    args = parser.parse_args(argv)
    rows = []
    try:
        for path in args.sets:
            dance_set = evaluate.read_dance_set(path, args.split)
            step = 1.0 / dance_set.fps
            lags = np.arange(-round(args.max_lag / step), round(args.max_lag / step) + 1) * step
            rows.append((path, lags, set_figures(dance_set, args.seconds, lags)))
    except InputError as e:
        sys.exit(f"error: {e}")
    print(f"first {args.seconds:g} s of each dance; lags +-{args.max_lag:g} s\n")
    print("| set | dances | BAS own | BAS other musics | BAS own, lagged (mean) "
          "| best lag (s) | profile r, first set |\n|---|---|---|---|---|---|---|")
    first = rows[0][2]["profile"]
    for path, lags, fig in rows:
        profile = fig["profile"]
        r = np.corrcoef(first, profile)[0, 1] if len(profile) == len(first) else float("nan")
        print(f"| {path} | {fig['dances']} | {fig['own']:.3f} | {fig['other']:.3f} | "
              f"{np.nanmean(profile):.3f} | {lags[np.nanargmax(profile)]:+.2f} | {r:.2f} |")
    for path, lags, fig in rows:
        tenths = np.flatnonzero(np.isclose(lags * 10, np.round(lags * 10), atol=1e-3))
        print(f"\n{path}: " + " ".join(f"{lags[i]:+.1f}:{fig['profile'][i]:.3f}"
                                       for i in tenths))


if __name__ == "__main__":
    main()
