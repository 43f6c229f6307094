"""Atomic writes."""

import numpy as np
import pytest

from hotdance_jax.io import UMASK, atomic_path, save_npz


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "a.txt"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".txt"
        assert tmp.parent == target.parent
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    def failing_writer():
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        failing_writer()
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~UMASK


def test_save_npz_round_trip(tmp_path):
    save_npz(tmp_path / "x.npz", a=np.arange(3), b=np.float32(2.5))
    with np.load(tmp_path / "x.npz") as z:
        np.testing.assert_array_equal(z["a"], [0, 1, 2])
        assert z["b"] == np.float32(2.5)
