"""The guard that drops numba cache files built from older helper sources."""

from __future__ import annotations

from pathlib import Path

from quanticity.analytics._jit import refresh_stale_cache


def test_cache_files_are_dropped_when_a_source_changes(tmp_path: Path) -> None:
    (tmp_path / "kernel.py").write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    assert refresh_stale_cache(tmp_path) is False  # first sight: stamp written, nothing cached yet
    (cache / "kernel.f-1.py311.nbi").write_text("index")
    (cache / "kernel.f-1.py311.1.nbc").write_text("code")
    assert refresh_stale_cache(tmp_path) is False  # unchanged sources keep the cache
    assert (cache / "kernel.f-1.py311.nbi").exists()
    (tmp_path / "helper.py").write_text("y = 2\n")
    assert refresh_stale_cache(tmp_path) is True
    assert not list(cache.glob("*.nb*"))
