"""The container layer: the four images built by `make images`' own code, run as the chart runs
them.

Skipped with a one-line reason when no engine answers, unless ``MLKUBE_REQUIRE_CONTAINERS=1``
(set by ``.ci/run``), which turns that skip into a failure: CI never passes without building and
running the images. Every container, network and volume made here is removed at the end, also
when a test fails, and the session checks that none is left behind.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.charts.manifests import REPO
from tests.containers.engine import Chart, Engine, find_engine
from tests.settings import suite_settings
from tests.timeouts import IMAGE_BUILD_S

# The tag the images are built under for these tests (the chart renders with image.tag=TAG).
TAG = "containers-test"
COMPONENTS = ("mlflow", "train", "serve", "rollout")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.containers)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    name, reason = find_engine()
    if name is None:
        message = f"no container engine: {reason}"
        if suite_settings().require_containers:
            pytest.fail(message + " (MLKUBE_REQUIRE_CONTAINERS=1: the container tests must run)")
        pytest.skip(message)
    eng = Engine(name)
    try:
        yield eng
    finally:
        left = eng.cleanup()
        left += eng.leftovers()
        assert not left, "containers, networks or volumes left behind:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def images(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The four images, built by `mlkube images` (what `make images` runs):
    with a warm layer cache this takes seconds."""
    log = tmp_path_factory.mktemp("images") / "build.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlkube",
                "images",
                "--engine",
                engine.name,
                "--tag",
                TAG,
            ],  # fmt: skip
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=IMAGE_BUILD_S,
            check=False,
        )
    text = log.read_text()
    assert proc.returncode == 0, "make images failed:\n" + "\n".join(text.splitlines()[-60:])
    refs = {c: f"mlkube-{c}:{TAG}" for c in COMPONENTS}
    for ref in refs.values():
        assert ref in text, f"{ref} is not among the built images:\n{text[-3000:]}"
    return refs


def render(*values: str) -> Chart:
    """The chart as `make deploy` renders it for kind, with this session's image tag."""
    args = ["-f", str(REPO / "charts" / "mlkube" / "values-kind.yaml"), "--set",
            f"image.tag={TAG}"]  # fmt: skip
    for value in values:
        args += ["--set", value]
    return Chart.render(*args)
