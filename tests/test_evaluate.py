"""python -m hotdance_jax.evaluate: reading dance sets, the scores, the command, and the ground
truth of the real Dance-with-Melody test performances."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from data_pipeline import segments
from data_pipeline.sources import dwm
from hotdance_jax import evaluate
from hotdance_jax.config_utils import sibling_config
from hotdance_jax.errors import InputError
from hotdance_jax.metrics import GEOMETRIC_FEATURES, seam_frames
from tests.conftest import shared_file
from tests.test_build import build_real_aistpp, tiny_config
from tests.test_metrics import POSE

REPO = Path(__file__).resolve().parents[1]
FPS, SECONDS, SR = 30.0, 8.0, 22050
BEAT_PERIODS = (0.5, 2 / 3, 0.5)  # seconds: the music of dances 0, 1, 2 (120, 90, 120 BPM)


def click_track(path: Path, period: float) -> Path:
    """SECONDS of noise bursts every `period` seconds from 0.25 s."""
    rng = np.random.default_rng(round(period * 1000))
    audio = 0.01 * rng.standard_normal(int(SECONDS * SR))
    for start in np.arange(0.25, SECONDS - 0.1, period):
        i = int(start * SR)
        audio[i:i + 2000] += rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    soundfile.write(path, (0.5 * audio / np.abs(audio).max()).astype(np.float32), SR)
    return path


def beat_dance(period: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, 18, 2) pixels, (T, 18): every joint swings with its own amplitude, coming to rest on
    the beats (0.25 s + k period) as its amplitude drifts over seconds."""
    t = np.arange(int(SECONDS * FPS))[:, None, None] / FPS
    rng = np.random.default_rng(seed)
    swing = rng.uniform(-40, 40, (1, 18, 2))
    drift = 1 + 0.5 * np.sin(2 * np.pi * t / 3.1 + rng.uniform(0, 6, (1, 18, 1)))
    keypoints = POSE + [640, 360] + swing * drift * (1 - np.cos(np.pi * (t - 0.25) / period))
    confidence = np.ones(keypoints.shape[:2], np.float32)
    confidence[:, [0, 14, 15]] = 0  # nose and eyes unseen, as in Dance with Melody
    return np.where(confidence[..., None] > 0, keypoints, np.nan).astype(np.float32), confidence


def save_dance(path: Path, keypoints, confidence, music: Path, **extra) -> Path:
    values = {"keypoints": keypoints, "confidence": confidence, "fps": np.float32(FPS),
              "width": np.int32(1280), "height": np.int32(720), "skeleton": np.str_("openpose18"),
              "music_path": np.str_(str(music)), "music_offset": np.float32(0.0), **extra}
    np.savez(path, **values)
    return path


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """A reference folder of 3 dances on the beat of their music, and a copy of it as generated
    dances stitched from 64-frame segments overlapping by 16."""
    root = tmp_path_factory.mktemp("evaluate")
    for folder in ("reference", "generated"):
        (root / folder).mkdir()
    for i, period in enumerate(BEAT_PERIODS):
        music = click_track(root / f"music{i}.wav", period)
        keypoints, confidence = beat_dance(period, seed=i)
        save_dance(root / "reference" / f"dance{i}.npz", keypoints, confidence, music)
        save_dance(root / "generated" / f"dance{i}.npz", keypoints, confidence, music,
                   segment_frames=np.int32(64), overlap=np.int32(16))
    return root


def run_evaluate(*args):
    return subprocess.run([sys.executable, "-m", "hotdance_jax.evaluate", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow  # starts a Python process
def test_the_command_scores_a_copy_of_the_reference_like_the_reference(sets, tmp_path):
    out = tmp_path / "scores" / "scores.json"
    result = run_evaluate("--generated", sets / "generated", "--reference", sets / "reference",
                          "--json", out, "--window-seconds", 2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 generated dances (12 windows) against 3 reference dances (12 windows)" in \
        result.stdout
    assert "| | FID_k | FID_g | Div_k | Div_g | BAS | jitter (L/s^2) | seam / inside |" in \
        result.stdout
    assert [p.name for p in out.parent.iterdir()] == ["scores.json"]  # no temporary left
    scores = json.loads(out.read_text())
    truth, generated = scores["rows"]["ground_truth"], scores["rows"]["generated"]
    assert generated["fid_k"] == pytest.approx(0, abs=1e-6)
    assert generated["fid_g"] == pytest.approx(0, abs=1e-6)
    assert truth["fid_k"] > 1  # the floor: half against half
    assert truth["fid_g"] > 0.1
    for key in ("div_k", "div_g", "bas", "jitter", "seam_ratio"):
        assert generated[key] == pytest.approx(truth[key]), key
    assert truth["bas"] > 0.8  # the dances rest on their music's beats ...
    assert scores["rows"]["ground_truth_other_music"]["bas"] < truth["bas"] - 0.2  # ... not others'
    assert scores["rows"]["generated_other_music"]["bas"] == pytest.approx(
        scores["rows"]["ground_truth_other_music"]["bas"])
    assert "| generated, another dance's music |  |  |  |  | 0." in result.stdout
    assert scores["sets"]["reference"] == {"path": str(sets / "reference"), "dances": 3,
                                           "windows": 12}
    relations = scores["relations"]
    assert list(relations) == list(GEOMETRIC_FEATURES)
    for name, row in relations.items():
        assert row["generated"] == pytest.approx(row["ground_truth"]), name
    assert "| relation (fraction of frames) | ground truth | generated |" in result.stdout


def test_other_music_skips_dances_of_the_same_music(sets):
    """Two samples of one song are paired with the next song's music, not with each other's."""
    first, second, _ = evaluate.read_dance_set(sets / "reference", "test").dances
    again = dataclasses.replace(first, sequence_id="again")
    assert evaluate.other_music_bas([first, again, second]) == pytest.approx(
        evaluate.mean_bas([first, again, second], [second, second, first]))
    assert evaluate.other_music_bas([first, again, second]) < 0.5  # on beats it scores > 0.8
    assert np.isnan(evaluate.other_music_bas([first, again]))


def test_worse_dances_score_worse(sets, tmp_path):
    """Jitter raises FID_k and the jitter figure; a jump at every seam raises the seam ratio."""
    reference = evaluate.read_dance_set(sets / "reference", "test")
    noise = np.random.default_rng(0)
    for name, change in (("jittery", lambda k, _: k + noise.normal(0, 3, k.shape)),
                         ("jumpy", lambda k, seams: k + 8.0 * np.searchsorted(
                             seams, np.arange(len(k)), side="right")[:, None, None])):
        (tmp_path / name).mkdir()
        for dance in reference.dances:
            seams = seam_frames(dance.num_frames, 64, 16)
            save_dance(tmp_path / name / f"{dance.sequence_id}.npz",
                       change(dance.keypoints, seams[::2]), dance.confidence,
                       Path(dance.audio_path), segment_frames=np.int32(64),
                       overlap=np.int32(16))
    jittery = evaluate.score(reference, evaluate.read_dance_set(tmp_path / "jittery", ""), 2.0)
    truth, worse = jittery["rows"]["ground_truth"], jittery["rows"]["generated"]
    assert worse["jitter"] > 5 * truth["jitter"]
    assert worse["fid_k"] > 3 * truth["fid_k"]
    fast = {name: row for name, row in jittery["relations"].items() if name.endswith("_fast")}
    assert len(fast) == 4
    for name, row in fast.items():  # the noise moves every joint faster
        assert row["generated"] > row["ground_truth"], name
    jumpy = evaluate.score(reference, evaluate.read_dance_set(tmp_path / "jumpy", ""), 2.0)
    assert jumpy["rows"]["generated"]["seam_ratio"] > 3 * jumpy["rows"]["ground_truth"][
        "seam_ratio"]


@pytest.mark.slow  # starts a Python process
def test_bad_input_is_a_one_line_error(sets, tmp_path):
    other_fps = tmp_path / "other_fps"
    shutil.copytree(sets / "generated", other_fps)
    with np.load(other_fps / "dance1.npz") as data:
        np.savez(other_fps / "dance1.npz", **{**data, "fps": np.float32(25.0)})
    result = run_evaluate("--generated", other_fps, "--reference", sets / "reference",
                          "--json", tmp_path / "scores.json")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {other_fps / 'dance1'}: 25 fps, but {sets / 'reference'} has 30 fps; every "
        "dance must have the same fps"]
    assert not (tmp_path / "scores.json").exists()


def test_bad_dance_folders_and_files_are_refused(sets, tmp_path):
    keypoints, confidence = beat_dance(0.5, seed=0)
    music = sets / "music0.wav"
    cases = {
        "no .npz dances": lambda d: None,
        "unreadable npz": lambda d: (d / "a.npz").write_bytes(b"PK\x03\x04 not a zip"),
        "missing music_path, music_offset": lambda d: np.savez(
            d / "a.npz", keypoints=keypoints, confidence=confidence, fps=30.0,
            skeleton="openpose18"),
        "expected (T, 18, 2) and (T, 18)": lambda d: save_dance(
            d / "a.npz", keypoints[:, :17], confidence[:, :17], music),
        "NaN or infinite keypoints where the confidence is > 0": lambda d: save_dance(
            d / "a.npz", np.where(np.arange(18)[:, None] == 3, np.nan, keypoints),
            confidence, music),
        "skeleton 'coco17'": lambda d: save_dance(d / "a.npz", keypoints, confidence, music,
                                                  skeleton=np.str_("coco17")),
    }
    for i, (message, write) in enumerate(cases.items()):
        folder = tmp_path / str(i)
        folder.mkdir()
        write(folder)
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            evaluate.read_dance_set(folder, "test")
    with pytest.raises(InputError, match="no such folder"):
        evaluate.read_dance_set(tmp_path / "nothere", "test")
    short = tmp_path / "short"
    short.mkdir()
    save_dance(short / "a.npz", keypoints[:50], confidence[:50], music)
    reference = evaluate.read_dance_set(sets / "reference", "test")
    with pytest.raises(InputError, match=r"a: 1.67 s, shorter than one 2 s window"):
        evaluate.score(reference, evaluate.read_dance_set(short, ""), 2.0)
    unseen = tmp_path / "unseen"
    unseen.mkdir()
    save_dance(unseen / "a.npz", keypoints, confidence * (np.arange(18) != 1), music)
    with pytest.raises(InputError, match="unseen/a: no frame shows the neck and both hips"):
        evaluate.score(reference, evaluate.read_dance_set(unseen, ""), 2.0)


def test_a_segment_build_is_read_as_whole_performances(sets, tmp_path):
    keypoints, confidence = beat_dance(0.5, seed=3)
    base = {"confidence": None, "width": np.int32(1280), "height": np.int32(720),
            "fps": np.float32(FPS), "audio_path": str(sets / "music0.wav"), "split": "test",
            "sequence_id": "perf", "source": "synthetic"}
    with segments.SegmentWriter(tmp_path, 0) as writer:
        for start in (0, 64, 128):  # 96-frame segments every 64 frames cover frames 0..223
            window = slice(start, start + 96)
            writer.write({**base, "keypoints": keypoints[window],
                          "confidence": confidence[window],
                          "audio_offset": np.float64(1.0 + start / FPS),
                          "start_frame": np.int32(start)})
    (tmp_path / segments.MANIFEST).write_text(json.dumps(
        {"format_version": segments.FORMAT_VERSION, "counts": {"segments": {"test": 3}},
         "shards": {"test": [writer.shards()["test"]["name"]]}}))
    [perf] = evaluate.read_dance_set(tmp_path, "test").dances
    assert (perf.sequence_id, perf.num_frames, perf.audio_offset) == ("perf", 224, 1.0)
    np.testing.assert_array_equal(perf.keypoints, keypoints[:224])
    flipped = {"flipped": True, "sequence_id": "perf", "start_frame": 0}
    store = segments.SegmentStore(tmp_path, "test")
    [again] = segments.assemble([flipped] + [store[i] for i in (2, 0, 1)])
    np.testing.assert_array_equal(again.confidence, perf.confidence)


@pytest.mark.slow  # scores 7 whole real performances, twice
def test_ground_truth_of_the_real_dwm_test_performances():
    """The real dances score FID 0 against themselves, a positive floor between their halves, a
    different BAS with another performance's music, and far from themselves at double speed."""
    root = shared_file("data/dwm/DANCE_C_6/config.json").parent.parent
    config = sibling_config(str(REPO / "configs" / "dwm.py"), "dwm")
    test = [segments.resample(p, config.pose.fps) for p in dwm.performances(
        root, config.data, collections.Counter()) if p.split == "test"]
    assert [p.sequence_id for p in test] == ["DANCE_C_6", "DANCE_R_5", "DANCE_W_10", "DANCE_W_15",
                                             "DANCE_W_21", "DANCE_W_31", "DANCE_W_5"]
    reference = evaluate.DanceSet(root, test)
    # as themselves, with the seams where configs/dwm.py would stitch 256-frame segments
    scores = evaluate.score(reference, evaluate.DanceSet(root, test, (256, 16)), 5.0)
    truth, itself = scores["rows"]["ground_truth"], scores["rows"]["generated"]
    assert scores["sets"]["reference"]["windows"] == 93
    assert itself["fid_k"] == pytest.approx(0, abs=1e-6)
    assert itself["fid_g"] == pytest.approx(0, abs=1e-6)
    assert truth["fid_k"] > 1  # 19.9 when written
    assert truth["fid_g"] > 1  # 9.1
    other = scores["rows"]["ground_truth_other_music"]["bas"]
    assert 0 < truth["bas"] < 1  # 0.214
    assert 0 < other < 1  # 0.224: on dwm BAS does not tell the right music from another
    assert other != truth["bas"]
    assert 0 < truth["jitter"] < 100  # 6.23 body lengths per s^2
    assert 0.8 < truth["seam_ratio"] < 1.5  # 1.11: real dances have no seams
    print(evaluate.markdown_table(evaluate.labelled_rows(scores)))
    fast = evaluate.DanceSet(root, [dataclasses.replace(  # every other frame, the same fps
        p, keypoints=p.keypoints[::2], confidence=p.confidence[::2]) for p in test])
    doubled = evaluate.score(reference, fast, 5.0)
    print(evaluate.markdown_table(evaluate.labelled_rows(doubled)))
    assert doubled["rows"]["generated"]["fid_k"] > 10 * truth["fid_k"]  # 740 when written
    assert doubled["rows"]["generated"]["jitter"] > 3 * truth["jitter"]  # 22.9: acceleration x 4


@pytest.mark.slow  # starts a Python process
def test_motion_only_reference_dances_are_refused(sets, tmp_path):
    """BAS needs the reference dances' music: a build of the real AIST++ pickles (no music) is
    refused, by the command and by training's dance check, in one line naming the build."""
    from hotdance_jax.sample import DanceCheck

    config = tiny_config()
    reference = build_real_aistpp(tmp_path / "aistpp", config)
    message = (f"{reference}: 1 of 1 performances in test are motion-only (built without their "
               "music); BAS expects a segment build whose performances all have music")
    result = run_evaluate("--generated", sets / "generated", "--reference", reference,
                          "--json", tmp_path / "scores.json")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {message}"]
    config.train.dance_eval_split = "test"
    with pytest.raises(InputError) as refused:
        DanceCheck(config, {}, reference)
    assert str(refused.value) == message
