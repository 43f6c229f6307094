r"""Score generated dances against real ones: python -m hotdance_jax.evaluate.

  python -m hotdance_jax.evaluate --generated dances/ --reference data/dwm --json scores.json \
      [--split test] [--window-seconds 5]

--generated is a folder of dances as `python -m hotdance_jax.sample` writes them (npz: keypoints
(T, K, 2) pixels, confidence (T, K), fps, skeleton (openpose18, K = 18, or openpose18_hands,
K = 60), music_path, music_offset; segment_frames and overlap when present locate the seams).
--reference is such a folder too, or a segment build (python -m data_pipeline.build; its --split
performances, reassembled from their segments; refused when some are motion-only, built without
music, since BAS needs their music).
Every dance of both sets must have the same fps. Music beats come from each dance's music file,
read from its offset for the dance's duration.

Prints a markdown table and writes the same figures as JSON (atomically):
  - FID_k, FID_g: Frechet distance between the kinetic / geometric features
    (hotdance_jax/metrics/features.py) of the generated and the reference dances, every
    --window-seconds window of a dance one sample, standardised by the reference's mean and std.
    The ground-truth row's FID is the floor: the first half of every reference dance's windows
    against the second half.
  - Div_k, Div_g: mean pairwise distance of a set's standardised window features.
  - BAS: beat align score, the mean over dances. The rows "..., another dance's music" pair
    every dance of a set with the music of the next dance of that set that has other music: the
    score of a dance that ignores the beat. A set dances to its music's beat when its BAS is
    above its BAS with another dance's music.
  - jitter: mean keypoint acceleration in body lengths per s^2, the mean over dances.
  - seam: mean speed change at the frames where sampled segments join over that elsewhere, the
    same frames in the reference dances for comparison (only when the generated npz record the
    segment settings).
  - with hands in both sets (openpose18_hands; hotdance_jax/metrics/hands.py): FID_hand and
    Div_hand over per-hand pose features (each finger's curl and the spread between adjacent
    fingers: their mean and std over a window, one sample per hand and window), and hand jitter
    (finger keypoints relative to their wrist, in hand lengths per s^2). Every other figure is
    of the 18 body keypoints.
A second table says how often each relation of FID_g's geometric features holds (the knee bent,
a foot raised, a wrist above the neck, ...: hotdance_jax/metrics/features.py) in the reference
and the generated dances, the mean over windows of the fraction of frames: which poses a set
lacks or overdoes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import zipfile
from pathlib import Path

import numpy as np
from absl import flags

from data_pipeline import segments
from data_pipeline.sources.base import Performance
from hotdance_jax import cli
from hotdance_jax.audio import beat_times, load_audio
from hotdance_jax.errors import InputError
from hotdance_jax.io import atomic_path
from hotdance_jax.metrics import (
    GEOMETRIC_FEATURES,
    beat_align_score,
    body_frame,
    diversity,
    fid,
    frechet_distance,
    geometric_features,
    jitter,
    kinetic_features,
    seam_frames,
    seam_jump,
    standardise,
    windows,
)
from hotdance_jax.metrics.hands import (
    HAND_FEATURES,
    hand_frames,
    hand_jitter,
    hand_window_features,
)
from hotdance_jax.pose import Skeleton, body_of, pipeline_skeleton, skeleton_of

FLAGS = flags.FLAGS
MUSIC_SAMPLE_RATE = 22050  # Hz, the configs' audio.sample_rate, for beat tracking
NPZ_KEYS = ("keypoints", "confidence", "fps", "skeleton", "music_path", "music_offset")
ROWS = {"ground_truth": "ground truth", "ground_truth_other_music":
        "ground truth, another dance's music", "generated": "generated",
        "generated_other_music": "generated, another dance's music"}
COLUMNS = {"fid_k": "FID_k", "fid_g": "FID_g", "div_k": "Div_k", "div_g": "Div_g", "bas": "BAS",
           "jitter": "jitter (L/s^2)", "seam_ratio": "seam / inside", "fid_h": "FID_hand",
           "div_h": "Div_hand", "hand_jitter": "hand jitter (H/s^2)"}


@dataclasses.dataclass
class DanceSet:
    """A set of dances at one fps; `seams` (segment_frames, overlap) when its npz record them."""

    path: Path
    dances: list[Performance]
    seams: tuple[int, int] | None = None

    @property
    def fps(self) -> float:
        return self.dances[0].fps

    @property
    def skeleton(self) -> Skeleton:
        return skeleton_of(self.dances[0].keypoints.shape[1])


# ---------------------------------------------------------------- reading


def read_dance_npz(path: Path) -> tuple[Performance, tuple[int, int] | None]:
    """One dance of `python -m hotdance_jax.sample` and its (segment_frames, overlap) if saved."""
    try:
        with np.load(path) as data:
            missing = [k for k in NPZ_KEYS if k not in data]
            if missing:
                raise InputError(f"{path}: not a dance npz: missing {', '.join(missing)} (needs "
                                 f"{', '.join(NPZ_KEYS)})")
            values = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: unreadable npz ({e})") from None
    skeleton = pipeline_skeleton(str(values["skeleton"]), f"{path}: ")
    keypoints = np.asarray(values["keypoints"], np.float32)
    confidence = np.asarray(values["confidence"], np.float32)
    _check_pose(path, keypoints, confidence, skeleton)
    fps = float(values["fps"])
    if not fps > 0:
        raise InputError(f"{path}: fps {fps:g}; expected > 0")
    seams = ((int(values["segment_frames"]), int(values["overlap"]))
             if {"segment_frames", "overlap"} <= values.keys() else None)
    return Performance(sequence_id=path.stem, keypoints=keypoints, confidence=confidence,
                       fps=fps, width=int(values.get("width", 0)),
                       height=int(values.get("height", 0)),
                       audio_path=str(values["music_path"]),
                       audio_offset=float(values["music_offset"]), split="", source="npz"
                       ), seams


def _check_pose(path: Path, keypoints: np.ndarray, confidence: np.ndarray,
                skeleton: Skeleton) -> None:
    """InputError unless keypoints are (T, K, 2), confidence (T, K) of `skeleton`, finite where
    visible."""
    K = skeleton.num_joints
    if keypoints.ndim != 3 or keypoints.shape[1:] != (K, 2) or confidence.shape != \
            keypoints.shape[:2]:
        raise InputError(f"{path}: keypoints {keypoints.shape} and confidence "
                         f"{confidence.shape}; expected (T, {K}, 2) and (T, {K})")
    if not np.isfinite(keypoints[confidence > 0]).all():
        raise InputError(f"{path}: NaN or infinite keypoints where the confidence is > 0")


def read_dance_set(path: Path, split: str) -> DanceSet:
    """The dances of a folder of npz files, or of split `split` of a segment build (InputError
    when one of them is motion-only)."""
    if not path.is_dir():
        raise InputError(f"{path}: no such folder")
    if (path / segments.MANIFEST).exists():
        store = segments.SegmentStore(path, split)
        segments.require_music(path, store.manifest, (split,), "BAS")
        return DanceSet(path, segments.assemble(store[i] for i in range(len(store))))
    files = sorted(path.glob("*.npz"))
    if not files:
        raise InputError(f"{path}: no .npz dances (and not a segment build: no "
                         f"{segments.MANIFEST})")
    read = [read_dance_npz(f) for f in files]
    settings = {seams for _, seams in read}
    if len(settings) > 1:
        raise InputError(f"{path}: dances stitched with different segment settings "
                         f"(segment_frames, overlap): {sorted(settings, key=str)}")
    joints = {dance.keypoints.shape[1] for dance, _ in read}
    if len(joints) > 1:
        raise InputError(f"{path}: dances of different skeletons ({sorted(joints)} keypoints)")
    return DanceSet(path, [dance for dance, _ in read], settings.pop())


def require_one_fps(*sets: DanceSet) -> float:
    """The fps every dance of `sets` shares; InputError naming a dance that differs."""
    fps = sets[0].fps
    for dance_set in sets:
        for dance in dance_set.dances:
            if abs(dance.fps - fps) > 1e-6:
                raise InputError(f"{dance_set.path / dance.sequence_id}: {dance.fps:g} fps, but "
                                 f"{sets[0].path} has {fps:g} fps; every dance must have the "
                                 "same fps")
    return fps


# ---------------------------------------------------------------- scoring


@functools.lru_cache(maxsize=256)
def music_beats(path: str, offset: float, seconds: float) -> np.ndarray:
    """(B,) beat times in seconds of `seconds` of music from `offset` s into `path`."""
    audio = load_audio(path, MUSIC_SAMPLE_RATE, offset=offset, duration=seconds)
    return beat_times(audio, MUSIC_SAMPLE_RATE)


@dataclasses.dataclass
class Analysis:
    """Per-window features and per-dance smoothness of a set; `hands` only with hands."""

    features: dict[str, np.ndarray]  # "k": (W, 54) kinetic, "g": (W, 20) geometric
    first_half: np.ndarray  # (W,) bool: the window is in the first half of its dance
    jitter: list[float]  # per dance, L/s^2
    seam: list[tuple[float, float]]  # per dance: mean speed change at seams, inside (L/s)
    hands: HandAnalysis | None = None


@dataclasses.dataclass
class HandAnalysis:
    """Per hand and window pose features (H, 18), whether each is in the first half of its
    dance (H,), and each dance's hand jitter (hand lengths/s^2)."""

    features: np.ndarray
    first_half: np.ndarray
    jitter: list[float]


def analyse(dance_set: DanceSet, window: int, seams: tuple[int, int] | None) -> Analysis:
    """Features of every `window`-frame window and the smoothness of every dance of a set (its
    body keypoints, and its hands when it has them); `seams` (segment_frames, overlap) places
    the seams, None skips them."""
    kinetic, geometric, first_half, jitters, seam = [], [], [], [], []
    for dance in dance_set.dances:
        name = dance_set.path / dance.sequence_id
        if dance.num_frames < window:
            raise InputError(f"{name}: {dance.num_frames / dance.fps:.2f} s, shorter than one "
                             f"{window / dance.fps:g} s window (--window-seconds)")
        try:
            positions, visible = body_frame(*body_of(dance.keypoints, dance.confidence))
        except InputError as e:
            raise InputError(f"{name}: {e}") from None
        spans = windows(dance.num_frames, window)
        kinetic += [kinetic_features(positions[s], visible[s], dance.fps) for s in spans]
        geometric += [geometric_features(positions[s], visible[s], dance.fps) for s in spans]
        first_half += [i < len(spans) // 2 for i in range(len(spans))]
        jitters.append(jitter(positions, visible, dance.fps))
        if seams:
            seam.append(seam_jump(positions, visible, dance.fps,
                                  seam_frames(dance.num_frames, *seams)))
    hands = (analyse_hands(dance_set, window) if dance_set.skeleton.has_hands else None)
    return Analysis({"k": np.array(kinetic), "g": np.array(geometric)}, np.array(first_half),
                    jitters, seam, hands)


def analyse_hands(dance_set: DanceSet, window: int) -> HandAnalysis:
    """The hand figures of a set with hands (metrics/hands.py) on `window`-frame windows."""
    features, first_half, jitters = [], [], []
    for dance in dance_set.dances:
        spans = windows(dance.num_frames, window)
        hands = hand_frames(dance.keypoints, dance.confidence, dance_set.skeleton)
        for positions, visible in hands:
            for i, span in enumerate(spans):
                sample = hand_window_features(positions, visible, span)
                if sample is not None:
                    features.append(sample)
                    first_half.append(i < len(spans) // 2)
        jitters.append(hand_jitter(hands, dance.fps))
    return HandAnalysis(np.array(features).reshape(-1, 2 * HAND_FEATURES),
                        np.array(first_half, bool), jitters)


def mean_bas(dances: list[Performance], music: list[Performance]) -> float:
    """Mean BAS of each dance against the beats of the music of its partner in `music`."""
    scores = []
    for dance, partner in zip(dances, music, strict=True):
        try:
            beats = music_beats(partner.audio_path, partner.audio_offset,
                                dance.num_frames / dance.fps)
        except InputError as e:
            raise InputError(f"{dance.sequence_id}'s music: {e}") from None
        scores.append(beat_align_score(*body_of(dance.keypoints, dance.confidence), beats,
                                       dance.fps))
    return _nanmean(scores)


def other_music_bas(dances: list[Performance]) -> float:
    """Mean BAS of each dance against the music of the next dance (cyclically) whose music
    (file and offset) differs from its own; NaN when all dances share one music."""
    music = [(d.audio_path, d.audio_offset) for d in dances]
    partners = []
    for i, own in enumerate(music):
        later = [j % len(dances) for j in range(i + 1, i + len(dances))]
        others = [j for j in later if music[j] != own]
        if not others:
            return float("nan")
        partners.append(dances[others[0]])
    return mean_bas(dances, partners)


def _nanmean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def floor_fid(reference: np.ndarray, first_half: np.ndarray) -> float:
    """FID of the second half of the reference windows against the first, standardised by the
    whole reference (NaN when a half has fewer than 2 windows)."""
    if min(first_half.sum(), (~first_half).sum()) < 2:
        return float("nan")
    [standard] = standardise(reference)
    return frechet_distance(standard[~first_half], standard[first_half])


def distribution_scores(real: Analysis, fake: Analysis | None) -> dict:
    """FID and Div of every feature kind (the hands' "h" when both sets have hands): of `fake`
    against `real`, or, for None, the floor FID and the Div of `real` itself."""
    kinds = {kind: (reference, real.first_half, None if fake is None else fake.features[kind])
             for kind, reference in real.features.items()}
    if real.hands is not None and (fake is None or fake.hands is not None):
        kinds["h"] = (real.hands.features, real.hands.first_half,
                      None if fake is None else fake.hands.features)
    row = {}
    for kind, (reference, first_half, generated) in kinds.items():
        if generated is None:
            row[f"fid_{kind}"] = floor_fid(reference, first_half)
            row[f"div_{kind}"] = diversity(standardise(reference)[0])
        else:
            row[f"fid_{kind}"] = fid(reference, generated)
            row[f"div_{kind}"] = diversity(standardise(reference, generated)[1])
    return row


def dance_scores(dances: list[Performance], analysis: Analysis) -> dict:
    """BAS, jitter and seam ratio (speed change at seams over that inside segments, each
    averaged over the dances; NaN without seams) of a set."""
    seams = np.array(analysis.seam).reshape(-1, 2)
    at_seams, inside = _nanmean(seams[:, 0]), _nanmean(seams[:, 1])
    row = {"bas": mean_bas(dances, dances), "jitter": _nanmean(analysis.jitter),
           "seam_ratio": at_seams / inside if inside > 0 else float("nan")}
    if analysis.hands is not None:
        row["hand_jitter"] = _nanmean(analysis.hands.jitter)
    return row


def score(reference: DanceSet, generated: DanceSet, window_seconds: float) -> dict:
    """Every figure of the table (module docstring) as {"rows": {row: {column: value}}}, with
    the fps, the window and the sets' sizes."""
    fps = require_one_fps(reference, generated)
    window = max(3, round(window_seconds * fps))  # an acceleration needs 3 frames
    real = analyse(reference, window, generated.seams)
    fake = analyse(generated, window, generated.seams)
    for dance_set, analysis in ((reference, real), (generated, fake)):
        if len(analysis.first_half) < 2:
            raise InputError(f"{dance_set.path}: {len(analysis.first_half)} window(s) of "
                             f"{window_seconds:g} s; need at least 2 (shorter --window-seconds)")
    rows = {
        "ground_truth": {**distribution_scores(real, None),
                         **dance_scores(reference.dances, real)},
        "ground_truth_other_music": {"bas": other_music_bas(reference.dances)},
        "generated": {**distribution_scores(real, fake), **dance_scores(generated.dances, fake)},
        "generated_other_music": {"bas": other_music_bas(generated.dances)},
    }
    sizes = {name: {"path": str(s.path), "dances": len(s.dances), "windows": len(a.first_half)}
             for name, s, a in (("reference", reference, real), ("generated", generated, fake))}
    return {"fps": fps, "window_seconds": window_seconds, "sets": sizes, "rows": rows,
            "relations": relation_fractions(real, fake)}


def relation_fractions(real: Analysis, fake: Analysis) -> dict[str, dict[str, float]]:
    """{relation: {"ground_truth": f, "generated": f}}: the mean over windows of the fraction of
    frames in which each geometric relation holds (NaN where no window sees its joints)."""
    means = {}
    for key, analysis in (("ground_truth", real), ("generated", fake)):
        values = analysis.features["g"]  # (W, relations), NaN where unseen
        seen = np.isfinite(values)
        counts = seen.sum(axis=0)
        means[key] = np.where(seen, values, 0).sum(axis=0) / np.maximum(counts, 1)
        means[key][counts == 0] = np.nan
    return {name: {key: float(means[key][i]) for key in means}
            for i, name in enumerate(GEOMETRIC_FEATURES)}


# ---------------------------------------------------------------- output


def labelled_rows(scores: dict) -> dict[str, dict]:
    """The rows of `scores` under their table labels (ROWS)."""
    return {label: scores["rows"][key] for key, label in ROWS.items()}


def markdown_table(rows: dict[str, dict]) -> str:
    """{label: {column: value}} as a markdown table of the COLUMNS some row has; blank where a
    row has no such figure."""
    columns = [c for c in COLUMNS if any(c in row for row in rows.values())]
    lines = ["| | " + " | ".join(COLUMNS[c] for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for label, row in rows.items():
        cells = [_cell(row[c]) if c in row else "" for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def relations_table(scores: dict[str, dict]) -> str:
    """The "relations" of score() results {column label: scores} as one markdown table: the
    ground truth (of the first) and each labelled set's generated dances."""
    labels = list(scores)
    lines = ["| relation (fraction of frames) | ground truth | " + " | ".join(labels) + " |",
             "|---" * (len(labels) + 2) + "|"]
    for relation, row in scores[labels[0]]["relations"].items():
        cells = [row["ground_truth"], *(scores[label]["relations"][relation]["generated"]
                                        for label in labels)]
        lines.append(f"| {relation} | " + " | ".join(map(_cell, cells)) + " |")
    return "\n".join(lines)


def _cell(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def write_json(path: Path, scores: dict) -> None:
    """`scores` as JSON (NaN as null), atomically."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        return None if isinstance(x, float) and not math.isfinite(x) else x

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(clean(scores), indent=2) + "\n")


def define_flags() -> None:
    """The command's flags; defined only when it runs, so modules import side-effect free."""
    flags.DEFINE_string("generated", None, "Folder of generated dance npz files.")
    flags.DEFINE_string("reference", None, "Folder of real dance npz files, or a segment build.")
    flags.DEFINE_string("json", None, "Where to write the scores as JSON.")
    flags.DEFINE_string("split", "test", "Split of a segment build --reference.")
    flags.DEFINE_float("window-seconds", 5.0, "Window length of one FID / Div sample, seconds.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {argv[1:]}")
    cli.require_flags("generated", "reference", "json")
    if not FLAGS["window-seconds"].value > 0:
        raise InputError(f"--window-seconds {FLAGS['window-seconds'].value:g}; expected > 0")
    reference = read_dance_set(Path(FLAGS.reference), FLAGS.split)
    generated = read_dance_set(Path(FLAGS.generated), FLAGS.split)
    scores = score(reference, generated, FLAGS["window-seconds"].value)
    write_json(Path(FLAGS.json), scores)
    sets = scores["sets"]
    print(f"{sets['generated']['dances']} generated dances ({sets['generated']['windows']} "
          f"windows) against {sets['reference']['dances']} reference dances "
          f"({sets['reference']['windows']} windows) of {scores['window_seconds']:g} s at "
          f"{scores['fps']:g} fps")
    print(markdown_table(labelled_rows(scores)))
    print(relations_table({"generated": scores}))
    print(f"-> {FLAGS.json}")


console = cli.command(main, define_flags)

if __name__ == "__main__":
    console()
