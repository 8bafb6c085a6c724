"""values.yaml is documented and guarded: every value has a comment, a schema entry with a
description and a README row, and bad values fail at install time naming the key."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.charts.manifests import CHART, helm_template

pytestmark = pytest.mark.charts


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "image.tag=latest"], "/image/tag"),
        (["--set", "serving.replicaz=3"], "replicaz"),
        (["--set", "mlflow.backend.type=mysql"], "/mlflow/backend/type"),
        (["--set", "mlflow.backend.type=external"], "/mlflow/backend/existingSecret"),
        (["--set", "mlflow.enabled=false"], "/mlflow/externalUri"),
        (["--set", "training.classifier=svm"], "/training/classifier"),
        (["--set", "podSecurityContext.runAsUser=0"], "/podSecurityContext/runAsUser"),
        (["--set", "serving.batching.maxWaitMs=5000"], "/serving/batching/maxWaitMs"),
        (["--set", "model.name=iris classifier"], "/model/name"),
        (["--set", "serving.resources.limits=null"], "/serving/resources"),
        # Objects are objects, and the keys the templates read cannot be deleted with null.
        (["--set", "mlflow=x"], "at '/mlflow': got string, want object"),
        (["--set", "mlflow.backend=3"], "at '/mlflow/backend': got number, want object"),
        (["--set", "mlflow.artifacts=s3"], "at '/mlflow/artifacts': got string, want object"),
        (["--set", "mlflow.backend=null"], "at '/mlflow': missing property 'backend'"),
        (["--set", "mlflow.backend.type=null"], "at '/mlflow/backend': missing property 'type'"),
        (["--set", "serving.enabled=null"], "at '/serving': missing property 'enabled'"),
        (["--set", "networkPolicy=null"], "missing property 'networkPolicy'"),
        (["--set", "mlflow.backend.waitSeconds=5"], "/mlflow/backend/waitSeconds"),
    ],
)
def test_schema_rejects_bad_values_naming_the_key(args: list[str], named: str) -> None:
    proc = helm_template(*args)
    assert proc.returncode != 0, f"{args} was accepted"
    assert "schema" in proc.stderr.lower() or "at '" in proc.stderr, proc.stderr
    assert named in proc.stderr, proc.stderr


def test_schema_accepts_a_valid_override() -> None:
    proc = helm_template("--set", "serving.replicas=3", "--set", "image.tag=1.2.3")
    assert proc.returncode == 0, proc.stderr
    assert "image: mlkube-serve:1.2.3" in proc.stdout


# Maps documented as one value (their keys are Kubernetes fields or free-form labels).
WHOLE_MAPS = {"resources", "annotations", "podAnnotations", "nodeSelector", "affinity"}
WHOLE_MAPS |= {"namespaceSelector", "podSelector"}


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    """Every documented value: scalars, lists and the maps documented as a whole."""
    if isinstance(node, dict) and node and path.rsplit(".", 1)[-1] not in WHOLE_MAPS:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{path}.{key}" if path else key))
        return out
    return {path: node}


def _commented_keys() -> set[str]:
    out: set[str] = set()
    stack: list[str] = []
    pending = False
    for line in (CHART / "values.yaml").read_text().splitlines():
        if re.match(r"^\s*# -- \S", line):
            pending = True
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if m:
            stack = stack[: len(m.group(1)) // 2] + [m.group(2)]
            if pending:
                out.add(".".join(stack))
            pending = False
    return out


def _schema_node(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for key in path.split("."):
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        assert node.get("additionalProperties") is False, f"{path}: parent allows unknown keys"
        node = node["properties"][key]
    return node


def test_every_value_is_commented_described_and_in_the_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    leaves = _leaves(values)
    assert len(leaves) > 100
    undocumented = sorted(set(leaves) - _commented_keys())
    assert not undocumented, f"values without a `# --` comment: {undocumented}"
    for path in leaves:
        assert _schema_node(schema, path).get("description"), f"{path}: no schema description"
        assert f"`{path}`" in readme, f"{path} is not in charts/mlkube/README.md"


def test_every_values_file_starts_with_the_schema_modeline() -> None:
    for path in [CHART / "values.yaml", *CHART.glob("values-*.yaml")]:
        assert path.read_text().startswith("# yaml-language-server: $schema=values.schema.json")
