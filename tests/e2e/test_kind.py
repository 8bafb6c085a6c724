"""End to end on a deployed kind cluster (`make deploy` first; `make e2e` runs the same script).

Skipped where there is no Docker, no kind, or no deployed cluster: the unit tests in
tests/unit/deploy/test_e2e.py check the script's steps with fakes everywhere else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy import cli
from tests.settings import suite_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLUSTER = suite_settings().kind_cluster


def deployed_kind_cluster() -> str | None:
    """Why the test cannot run here, or None when it can."""
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "the Docker daemon does not answer"
    clusters = subprocess.run(
        ["kind", "get", "clusters"], capture_output=True, text=True, check=False
    ).stdout.split()
    if CLUSTER not in clusters:
        return f"no kind cluster named {CLUSTER}: run `make deploy` first"
    return None


@pytest.mark.timeout(1800)
def test_predict_promote_and_roll_out_under_load(tmp_path: Path, repo_root: Path) -> None:
    reason = deployed_kind_cluster()
    if reason:
        pytest.skip(reason)
    artifacts = suite_settings().e2e_artifacts or tmp_path / "artifacts"
    code = cli.main(
        ["e2e", "--cluster", CLUSTER, "--repo", str(repo_root), "--artifacts", str(artifacts)]
    )
    assert code == 0, f"e2e failed; diagnostics in {artifacts}"
