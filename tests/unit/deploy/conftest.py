"""Fixtures shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.deploy.fakes import make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A minimal checkout: the chart, its values files, the Dockerfile and the kind config."""
    return make_repo(tmp_path / "repo")
