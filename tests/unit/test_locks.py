"""Each image's lock file (images/requirements/<extra>.txt, what the Dockerfile installs) pins
the same versions as requirements.txt (what the tests ran against) and covers every dependency
pyproject.toml declares for that image. A stale lock fails here: run `make lock`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_EXTRAS = ("server", "train", "serve", "rollout")
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.MULTILINE)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    return {normalize(n): v for n, v in PIN.findall(path.read_text())}


def declared(extra: str) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"][extra]
    return {normalize(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in specs}


@pytest.mark.parametrize("extra", IMAGE_EXTRAS)
def test_image_lock_matches_the_project_lock(extra: str) -> None:
    lock = REPO / "images" / "requirements" / f"{extra}.txt"
    image, project = pins(lock), pins(REPO / "requirements.txt")
    differ = {n: (v, project.get(n)) for n, v in image.items() if project.get(n) != v}
    assert not differ, f"{lock.name} pins differ from requirements.txt (run `make lock`): {differ}"
    missing = declared(extra) - set(image)
    assert not missing, f"{lock.name} lacks {sorted(missing)} (run `make lock`)"
    unhashed = [line for line in lock.read_text().splitlines() if PIN.match(line)
                and not line.rstrip().endswith("\\")]  # fmt: skip
    assert not unhashed, f"{lock.name} has pins without hashes: {unhashed}"


def test_one_uv_version() -> None:
    """The venv (tools.versions) and the images (images/install-deps.sh) install with the same
    uv."""
    make = re.search(r"^UV_VERSION=(\S+)$", (REPO / "tools.versions").read_text(), re.MULTILINE)
    images = re.search(r"^UV_VERSION=(\S+)$", (REPO / "images" / "install-deps.sh").read_text(),
                       re.MULTILINE)  # fmt: skip
    assert make is not None
    assert images is not None
    assert make.group(1) == images.group(1)


def test_one_version() -> None:
    """mlkube.__version__ is the version: the package's metadata reads it (pyproject's dynamic
    version) and the chart's appVersion, which tags the images, repeats it."""
    import tomllib

    import yaml

    from mlkube import __version__

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mlkube.__version__"}
    chart = yaml.safe_load((REPO / "charts" / "mlkube" / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
