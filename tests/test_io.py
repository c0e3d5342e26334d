"""Atomic writers (xnorm._io): outputs appear whole or not at all, with the permissions the umask gives."""
from __future__ import annotations

import os
import stat

import pytest

from xnorm._io import atomic_dir, atomic_write


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_umask_permissions_not_the_temp_files(tmp_path, umask_022):
    with atomic_write(tmp_path / "out.jsonl") as f:
        f.write("{}\n")
    with atomic_dir(tmp_path / "index") as d:
        (d / "manifest.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "out.jsonl").stat().st_mode) == 0o644  # mkstemp alone gives 0600
    assert stat.S_IMODE((tmp_path / "index").stat().st_mode) == 0o755  # mkdtemp alone gives 0700


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the umask from Linux /proc")
def test_the_umask_is_read_without_setting_it(tmp_path, monkeypatch):
    """Setting the umask to read it would let another thread create a file unmasked in that instant."""
    old = os.umask(0o027)
    try:
        def no_umask(mask):
            raise AssertionError("os.umask called")

        monkeypatch.setattr(os, "umask", no_umask)
        with atomic_write(tmp_path / "out.jsonl") as f:
            f.write("{}\n")
        monkeypatch.undo()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.jsonl").stat().st_mode) == 0o640


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "out.jsonl") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "index") as d:
            (d / "part").write_text("x")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
