"""Fixtures for the settings tests: an environment without QUANTICITY_* variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Remove every QUANTICITY_* variable and run from an empty directory (no stray .env)."""
    for name in list(os.environ):
        if name.upper().startswith("QUANTICITY_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield
