"""The demo end to end, and the Colab notebook on the run the demo trained (nbclient)."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from tests.test_cli import REPO, run_demo

pytestmark = pytest.mark.slow  # trains or starts processes: make test-fast skips it

# Tiny shapes, the same as the notebook's HOTDANCE_NOTEBOOK_TINY setting with 10 steps, so the
# notebook finds the demo's run trained.
QUICK = ["--config.data.synthetic.num_songs=4", "--config.data.synthetic.val_songs=1",
         "--config.data.synthetic.test_songs=1", "--config.data.synthetic.seconds=6",
         "--config.vae.train.steps=10", "--config.vae.train.eval_every=10",
         "--config.vae.train.batch_size=4", "--config.vae.train.crop_frames=32",
         "--config.vae.arch.block_out_channels=(8,16,16,16)", "--config.vae.arch.norm_num_groups=8",
         "--config.train.steps=10", "--config.train.eval_every=10", "--config.train.batch_size=8",
         "--config.model.width=64", "--config.model.depth=1", "--config.latents.workers=0",
         "--seconds=4"]
STAGES = {"[1/5]", "[2/5]", "[3/5]", "[4/5]"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(the folder holding the demo's --out folder "out", the first run's CompletedProcess)."""
    root = tmp_path_factory.mktemp("demo")
    return root, run_demo(root, *QUICK)


def test_demo_runs_end_to_end(demo):
    root, result = demo
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dancing to a synthesised drum track" in result.stdout  # no song, no network here
    assert "[5/5] 4.0 s dance" in result.stdout
    stage_lines = [line for line in result.stdout.splitlines() if line[:5] in STAGES]
    stage_seconds = [int(line.rsplit("(at ", 1)[1].removesuffix(" s)")) for line in stage_lines]
    assert len(stage_seconds) == 4  # each stage's line says when it began
    assert stage_seconds == sorted(stage_seconds)
    assert "beat align score" in result.stdout
    out = root / "out"
    assert {"dance.npz", "dance.mp4", "openpose", "speed_beats.png", "work"} == {
        p.name for p in out.iterdir()}
    assert len(list((out / "openpose").iterdir())) == 120
    with np.load(out / "dance.npz") as dance:
        assert dance["keypoints"].shape == (120, 18, 2)
        assert dance["confidence"].shape == (120, 18)
        assert str(dance["skeleton"]) == "openpose18"
        assert float(dance["fps"]) == 30.0
    assert "step 10/10 loss" in result.stdout  # the VAE and the DiT trained (the notebook's
    # test below runs the demo's stages again on this folder: they only check)


def test_colab_notebook_runs_on_cpu(demo, monkeypatch):
    """The notebook's cells with its tiny setting, in the demo's folder: its training cell (the
    demo's own stages, as a second `make demo` runs them) finds the run trained and only checks
    it; then it samples and shows."""
    root, result = demo
    assert result.returncode == 0, result.stderr[-3000:]
    monkeypatch.setenv("HOTDANCE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("HOTDANCE_NOTEBOOK_STEPS", "10")
    monkeypatch.setenv("HOTDANCE_NOTEBOOK_WORK", str(root / "out"))
    monkeypatch.delenv("LIBROSA_DATA_DIR", raising=False)
    monkeypatch.delenv("HOTDANCE_SHARED", raising=False)
    notebook = nbformat.read(REPO / "notebooks" / "hotdance_colab_tpu.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "mesh {'data': 1, 'fsdp': 1, 'tensor': 1}" in text
    assert text.count("up to date") == 2  # the dataset and the latent cache
    assert "resumed at step 10" in text  # the demo's DiT, not a new one
    assert "step 10/10 loss" not in text  # nothing trained again, the VAE neither
    assert "4.0 s dance" in text
    videos = [o for o in outputs if o.get("output_type") == "execute_result"
              and "text/html" in o.get("data", {})]
    assert videos
    assert "video" in videos[-1]["data"]["text/html"]
    assert (root / "out" / "dance.mp4").stat().st_size > 10_000
