"""The Colab TPU notebook runs end to end on CPU with its tiny setting (nbclient)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.test_build import REPO


@pytest.mark.slow
def test_colab_notebook_runs_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("HOTDANCE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("HOTDANCE_NOTEBOOK_STEPS", "4")
    monkeypatch.setenv("HOTDANCE_NOTEBOOK_WORK", str(tmp_path))
    monkeypatch.delenv("LIBROSA_DATA_DIR", raising=False)
    monkeypatch.delenv("HOTDANCE_SHARED", raising=False)
    notebook = nbformat.read(REPO / "notebooks" / "hotdance_colab_tpu.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "mesh {'data': 1, 'fsdp': 1, 'tensor': 1}" in text
    assert "4.0 s dance" in text
    videos = [o for o in outputs if o.get("output_type") == "execute_result"
              and "text/html" in o.get("data", {})]
    assert videos
    assert "video" in videos[-1]["data"]["text/html"]
    assert (tmp_path / "dance.mp4").stat().st_size > 10_000
