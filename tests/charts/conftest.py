"""Render the chart once per values file for the whole session and share the parsed manifests;
the rendered text also goes to one directory, so checkov scans all of them in a single run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.charts.manifests import VALUES_FILES, Rendered, render, tool


@pytest.fixture(scope="session")
def renders() -> dict[str, Rendered]:
    tool("helm")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {r.name: r for r in pool.map(render, VALUES_FILES.items())}


@pytest.fixture(scope="session")
def render_dir(renders: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All rendered manifests, one file per distinct render (checkov scans the directory once)."""
    out = tmp_path_factory.mktemp("rendered")
    written: set[str] = set()
    for r in renders.values():
        if r.text not in written:
            written.add(r.text)
            (out / f"{r.name}.yaml").write_text(r.text)
    return out


@pytest.fixture(params=sorted(VALUES_FILES))
def rendered(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    """Each values file's render in turn (the render itself is shared)."""
    return renders[request.param]
