"""values.schema.json and the values table of the chart README are generated from values.yaml
(`make chart-docs`: helm-docs and helm-values-schema-json, pinned Go modules built into ./bin).
This test regenerates both into a temp dir and fails when the committed files differ."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from tests.charts.manifests import CHART, REPO
from tests.settings import suite_settings

pytestmark = pytest.mark.charts

SCRIPT = REPO / "scripts" / "chart-docs.sh"
GO_MISSING = 3  # scripts/chart-docs.sh's exit status when Go is not installed


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chart-docs")
    # Installs the pinned tools into ./bin first when they are missing (needs Go).
    proc = subprocess.run(
        [str(SCRIPT), "--out", str(out)], capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode == GO_MISSING:
        reason = f"the chart-docs tools cannot be built: {proc.stderr.strip()}"
        if suite_settings().ci:
            pytest.fail(f"{reason} (CI=true: this check must run)")
        pytest.skip(reason)
    assert proc.returncode == 0, f"scripts/chart-docs.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.mark.parametrize("name", ["values.schema.json", "README.md"])
def test_generated_chart_docs_are_committed(generated: Path, name: str) -> None:
    committed = (CHART / name).read_text()
    fresh = (generated / name).read_text()
    if committed != fresh:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                fresh.splitlines(keepends=True),
                f"charts/mlkube/{name} (committed)",
                f"{name} (generated from values.yaml)",
                n=1,
            )
        )
        pytest.fail(f"charts/mlkube/{name} is stale: run make chart-docs\n{diff[:4000]}")
