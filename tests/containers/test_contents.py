"""Each image holds only the Python packages it runs: the core (``mlkube`` and ``mlkube.core``,
without the ``mlkube`` command or the old deploy shim) and its own component. No image holds the
deploy driver or the local runner, and the MLflow image holds none of mlkube's code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.containers.engine import Engine

CODE = "/opt/mlkube"  # the images' PYTHONPATH (images/Dockerfile)
CORE = {"mlkube", "mlkube.core"}
EXPECTED = {
    "mlflow": set(),
    "train": CORE | {"jobs"},
    "serve": CORE | {"service", "service.api", "service.runtime"},
    "rollout": CORE | {"rollout"},
}
# Run in the image: its packages under CODE, its __main__ programs, and whether the components
# it must not hold can be imported from anywhere (site-packages included).
LIST = f"""
import importlib.util, json, os
root = {CODE!r}
walk = list(os.walk(root)) if os.path.isdir(root) else []
print(json.dumps({{
    "packages": sorted(os.path.relpath(d, root).replace(os.sep, ".")
                       for d, _, files in walk if "__init__.py" in files),
    "programs": sorted(os.path.relpath(os.path.join(d, "__main__.py"), root)
                       for d, _, files in walk if "__main__.py" in files),
    "importable": sorted(n for n in ("deploy", "embedded")
                         if importlib.util.find_spec(n) is not None),
}}))
"""


def contents(engine: Engine, image: str) -> dict[str, Any]:
    out = engine("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", LIST)
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("component", sorted(EXPECTED))
def test_each_image_holds_only_the_packages_it_runs(
    engine: Engine, images: dict[str, str], component: str
) -> None:
    found = contents(engine, images[component])
    assert set(found["packages"]) == EXPECTED[component], (
        f"mlkube-{component} holds {found['packages']}, expected {sorted(EXPECTED[component])}"
    )
    assert found["importable"] == [], f"mlkube-{component} can import {found['importable']}"
    # Its own component's entry point at most (python -m service, python -m rollout): never the
    # mlkube command or the deploy shim.
    assert not [p for p in found["programs"] if p.startswith("mlkube/")], found["programs"]
