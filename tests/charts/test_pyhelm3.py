"""pyhelm3 for real: render charts/mlkube the way `make deploy` installs it (values-kind.yaml plus
the image values the deploy computes), and check that what the deploy and e2e look for by label
and port is what the chart creates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy import objects
from deploy.helm import HelmError, PyHelm3, merge_values
from deploy.options import COMPONENTS, INGRESS_CLASS_KIND, Image, load_values
from deploy.release import first_run_hook, image_values
from mlkube.core.names import LABEL_MODEL_NAME

pytestmark = pytest.mark.charts

TAG = "0.1.0-0123456789ab"


@pytest.fixture(scope="module")
def helm_bin(repo_root: Path) -> str:
    path = repo_root / "bin" / "helm"
    if not path.is_file():
        pytest.skip("./bin/helm is missing: run `make tools`")
    return str(path)


@pytest.fixture(scope="module")
def chart(repo_root: Path) -> Path:
    path = repo_root / "charts" / "mlkube"
    if not (path / "values-kind.yaml").is_file() or not (path / "templates").is_dir():
        pytest.skip("charts/mlkube (with values-kind.yaml) is not there yet")
    return path


@pytest.fixture(scope="module")
def rendered(helm_bin: str, chart: Path) -> list[dict[str, Any]]:
    values = merge_values(
        load_values(chart / "values-kind.yaml"),
        image_values([Image(c, TAG) for c in COMPONENTS]),
    )
    return PyHelm3(helm_bin).template("mlkube", chart, values, namespace="mlkube")


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def labels(doc: dict[str, Any]) -> dict[str, str]:
    return dict(doc.get("metadata", {}).get("labels") or {})


def matches(doc: dict[str, Any], selector: dict[str, str | None]) -> bool:
    """A label selector as kubectl -l reads it (value None: the key exists)."""
    have = labels(doc)
    return all(k in have if v is None else have.get(k) == v for k, v in selector.items())


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"]) if "template" in spec else dict(spec)


INSTANCE = {"app.kubernetes.io/instance": "mlkube"}


def test_every_mlkube_image_is_the_one_we_built(rendered: list[dict[str, Any]]) -> None:
    images = set()
    for doc in rendered:
        if doc.get("kind") in ("Deployment", "StatefulSet", "CronJob", "Job"):
            spec = pod_spec(doc)
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                images.add(c["image"])
    ours = {i for i in images if i.split(":")[0].startswith("mlkube-")}
    assert ours == {f"mlkube-{c}:{TAG}" for c in COMPONENTS}


def test_the_deploy_finds_what_it_looks_for(rendered: list[dict[str, Any]]) -> None:
    # objects.serving_deployment: a Deployment of the release labelled with the model name.
    serving = [
        d
        for d in of_kind(rendered, "Deployment")
        if matches(d, {**INSTANCE, LABEL_MODEL_NAME: None})
    ]
    assert len(serving) == 1
    ports = {
        p["containerPort"] for c in pod_spec(serving[0])["containers"] for p in c.get("ports", [])
    }
    assert 8080 in ports  # e2e port-forwards each replica to 8080
    # objects.mlflow_service: component=mlflow, its port `http` (make ui, e2e).
    mlflow = {**INSTANCE, "app.kubernetes.io/component": "mlflow"}
    [svc] = [s for s in of_kind(rendered, "Service") if matches(s, mlflow)]
    assert objects.service_port(svc) == 5000
    assert [d for d in of_kind(rendered, "Deployment") if matches(d, mlflow)]
    # objects.training_cronjob: the one CronJob of the release (make train ENV=...).
    assert len([c for c in of_kind(rendered, "CronJob") if matches(c, INSTANCE)]) == 1
    # find_ingress_url: the release's Ingress, served by cloud-provider-kind on kind.
    [ingress] = [i for i in of_kind(rendered, "Ingress") if matches(i, INSTANCE)]
    assert ingress["spec"]["ingressClassName"] == INGRESS_CLASS_KIND


def test_first_run_hook_matches_the_chart(rendered: list[dict[str, Any]], chart: Path) -> None:
    """The deploy skips its own first training when the chart's post-install hook trains."""
    hooks = [
        j
        for j in of_kind(rendered, "Job")
        if "post-install" in j["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        and labels(j).get("app.kubernetes.io/component") == "training"
    ]
    assert first_run_hook(load_values(chart / "values-kind.yaml")) == bool(hooks)
    assert [j["metadata"]["name"] for j in hooks] == ["mlkube-training-first-run"]


def test_bad_values_fail_with_helms_message(helm_bin: str, chart: Path) -> None:
    with pytest.raises(HelmError, match="helm template mlkube failed"):
        PyHelm3(helm_bin).template(
            "mlkube", chart, {"serving": {"replicas": "two"}}, namespace="mlkube"
        )
