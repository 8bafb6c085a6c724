"""Rendering the chart and reading the rendered manifests (shared by the chart tests).

Every values file the project ships is rendered: the chart defaults, the kind and EKS targets,
and each ``charts/mlkube/ci/*-values.yaml``.
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mlkube"
BIN = REPO / "bin"
RELEASE = "mlkube"
NAMESPACE = "mlkube"

# name -> values file (None: the chart's own values.yaml alone)
VALUES_FILES: dict[str, Path | None] = {
    "default": None,
    "kind": CHART / "values-kind.yaml",
    "eks": CHART / "values-eks.yaml",
    "local": CHART / "values-local.yaml",
    **{p.name.removesuffix(".yaml"): p for p in sorted((CHART / "ci").glob("*.yaml"))},
}

Doc = dict[str, Any]


def tool(name: str) -> Path:
    """A pinned tool from ./bin; a clear failure (not a skip) when `make tools` has not run."""
    path = BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make tools` (scripts/install-tools.sh) first")
    return path


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def helm_template(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool("helm")), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class Rendered:
    name: str
    values_file: Path | None
    values: dict[str, Any]  # values.yaml merged with the file, as Helm sees them
    text: str
    docs: list[Doc] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]

    def pods(self) -> list[tuple[Doc, Doc]]:
        """(workload, pod template) for every workload kind the chart renders."""
        out = []
        for d in self.docs:
            template = pod_template(d)
            if template is not None:
                out.append((d, template))
        return out


def pod_template(doc: Doc) -> Doc | None:
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "Job"):
        return dict(doc["spec"]["template"])
    if kind == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"])
    if kind == "Pod":
        return doc
    return None


def containers(template: Doc, *, init: bool = True) -> list[Doc]:
    spec = template["spec"]
    return list(spec.get("initContainers", []) if init else []) + list(spec["containers"])


def component(doc: Doc) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def name(component: str) -> str:
    return f"{RELEASE}-{component}"


def render(item: tuple[str, Path | None]) -> Rendered:
    label, path = item
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    override = yaml.safe_load(path.read_text()) if path else {}
    proc = helm_template(*(["-f", str(path)] if path else []))
    assert proc.returncode == 0, f"helm template with {label} values failed:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return Rendered(label, path, deep_merge(defaults, override or {}), proc.stdout, docs)
