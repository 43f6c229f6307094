"""The sampler's command refuses bad input in one line before it loads a model: every case
here runs against a run folder that holds only its config, so none would get past the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from hotdance_jax import training
from tests.conftest import tiny_config
from tests.test_sample import run_command, song_file

pytestmark = pytest.mark.slow  # starts processes: make test-fast skips it


@pytest.fixture(scope="module")
def config_only_run(tmp_path_factory):
    """A run folder with a tiny run's config.json and nothing else (no checkpoint)."""
    workdir = tmp_path_factory.mktemp("config_only") / "run"
    training.check_workdir(workdir, tiny_config(), ("model",))
    return workdir


def test_bad_input_gives_one_line_errors_and_writes_nothing(config_only_run, tmp_path):
    song = song_file(tmp_path / "song.wav", 3.0)
    soundfile.write(tmp_path / "silent.wav", np.zeros(22050 * 3, np.float32), 22050)
    (tmp_path / "noise.wav").write_bytes(b"not audio at all")
    (tmp_path / "empty_run").mkdir()
    (tmp_path / "pose.json").write_text(json.dumps(np.ones((17, 2)).tolist()))
    workdir = config_only_run
    cases = {
        "audio is silent": ["--workdir", workdir, "--music", tmp_path / "silent.wav"],
        "not a readable audio file": ["--workdir", workdir, "--music", tmp_path / "noise.wav"],
        "not a training run folder": ["--workdir", tmp_path / "empty_run", "--music", song],
        "17 keypoints; expected 18": ["--workdir", workdir, "--music", song, "--reference",
                                      tmp_path / "pose.json"],
        "exactly one of --music": ["--workdir", workdir],
    }
    flag_cases = {  # refused by the flags' bounds: exit status 2
        "--steps=0": ["--workdir", workdir, "--music", song, "--steps", 0],
        "--seconds=-3": ["--workdir", workdir, "--music", song, "--seconds", -3],
        "--num-samples=0": ["--workdir", workdir, "--music", song, "--num-samples", 0],
        "--start=-1": ["--workdir", workdir, "--music", song, "--start", -1],
    }
    cases["--continue needs --seconds"] = ["--workdir", workdir, "--continue", song]
    cases["no audio samples from offset 500 s"] = ["--workdir", workdir, "--music", song,
                                                    "--start", 500]
    for message, args in [*cases.items(), *flag_cases.items()]:
        result = run_command("--out", tmp_path / "out.npz", "--steps", 2, *args)
        assert result.returncode == (2 if message in flag_cases else 1), (
            message, result.stderr[-1000:])
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: "), last
        assert message in last, (message, last)
        assert not (tmp_path / "out.npz").exists()
