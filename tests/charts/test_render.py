"""The chart lints and renders valid Kubernetes objects that pass checkov; the Dockerfiles pass
hadolint."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest
import yaml

from tests.charts.manifests import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    VALUES_FILES,
    Rendered,
    component,
    containers,
    pod_template,
    tool,
)

pytestmark = pytest.mark.charts

KUBERNETES_VERSIONS = ["1.33.0", "1.34.0", "1.35.0"]
# Kinds whose schema is a CRD, not part of Kubernetes: checked by the consistency tests instead.
CRD_KINDS = {"HTTPRoute"}

# The only checkov checks the chart may skip, and where: each skip is annotated in the template
# with its reason (`checkov.io/skipN: CKV_K8S_xx=reason`).
ALLOWED_SKIPS: dict[str, set[str]] = {
    # the pull policy is a value; the reason said is the one that holds for the values (see
    # test_checkov_image_skips_give_the_reason_of_their_render)
    "CKV_K8S_15": {
        "mlflow",
        "serving",
        "training",
        "rollout",
        "rollout-webhook",
        "test",
        "postgres",
    },
    # pinned by a tag (a new one per build from make deploy) unless <component>.image.digest is
    # set; the bundled Postgres by postgres.image.tag
    "CKV_K8S_43": {
        "mlflow",
        "serving",
        "training",
        "rollout",
        "rollout-webhook",
        "test",
        "postgres",
    },
    # env vars from Secrets: MLflow server settings, MLflow client basic auth, the operator's
    # ROLLOUT_WEBHOOK_SECRET (contract)
    "CKV_K8S_35": {"mlflow", "serving", "training", "rollout", "rollout-webhook", "test"},
    # only the operator calls the API and mounts its token
    "CKV_K8S_38": {"rollout"},
    # one-shot helm test pods have no probes
    "CKV_K8S_8": {"test"},
    "CKV_K8S_9": {"test"},
}


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_helm_lint_strict(name: str) -> None:
    path = VALUES_FILES[name]
    proc = subprocess.run(
        [str(tool("helm")), "lint", "--strict", str(CHART), *(["-f", str(path)] if path else [])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout, proc.stdout
    assert "[ERROR]" not in proc.stdout, proc.stdout


def test_every_values_file_renders_the_release(rendered: Rendered) -> None:
    assert rendered.docs, f"{rendered.name} renders nothing"
    for doc in rendered.docs:
        meta = doc["metadata"]
        assert meta["name"].startswith(RELEASE), meta["name"]
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert meta["namespace"] == NAMESPACE, f"{doc['kind']} {meta['name']} has no namespace"


def test_strict_validation_rejects_unknown_fields() -> None:
    """Canary: the validator really runs in strict mode, so the test below can fail."""
    doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targtPort": 8080}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)


@pytest.fixture(scope="module")
def cached_schemas() -> Iterator[None]:
    """kubernetes-validate reads its (MB-sized) schema files on every call: read each once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kv_utils, "schema_contents", functools.cache(kv_utils.schema_contents))
        yield


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.usefixtures("cached_schemas")
def test_manifests_validate_strictly(renders: dict[str, Rendered], version: str) -> None:
    """Every distinct rendered object of every values file, against the strict schemas."""
    seen: set[str] = set()
    errors, validated = [], 0
    for r in renders.values():
        for doc in r.docs:
            key = json.dumps(doc, sort_keys=True)
            if doc["kind"] in CRD_KINDS or key in seen:
                continue
            seen.add(key)
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                validated += 1
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(map(str, exc.path))
                errors.append(
                    f"{r.name}: {doc['kind']} {doc['metadata']['name']}: {path}: {exc.message}"
                )
    assert not errors, "\n".join(errors)
    assert validated > 50


def _skips(doc: dict[str, Any]) -> dict[str, str]:
    """checkov skip annotations of a rendered object: check id -> reason."""
    annotations = doc["metadata"].get("annotations") or {}
    return dict(
        value.split("=", 1)
        for key, value in annotations.items()
        if key.startswith("checkov.io/skip")
    )


def test_checkov_skips_are_few_and_annotated_with_a_reason(renders: dict[str, Rendered]) -> None:
    seen = set()
    for r in renders.values():
        for doc in r.docs:
            for check_id, reason in _skips(doc).items():
                where = f"{r.name}: {doc['kind']} {doc['metadata']['name']}"
                assert check_id in ALLOWED_SKIPS, f"{where} skips {check_id}"
                assert component(doc) in ALLOWED_SKIPS[check_id], f"{where} skips {check_id}"
                assert len(reason) > 30, f"{where} skips {check_id} without a reason"
                # checkov splits the annotation at "=": one in the reason breaks its run
                assert "=" not in reason, f"{where}: {reason}"
                seen.add(check_id)
    assert seen <= set(ALLOWED_SKIPS)
    # Values remove the skips they make unnecessary: digests and Always pulls need none.
    minimal = renders["minimal-values"].get("Deployment", f"{RELEASE}-serving")
    assert not {"CKV_K8S_15", "CKV_K8S_43"} & set(_skips(minimal))


def test_checkov_image_skips_give_the_reason_of_their_render(rendered: Rendered) -> None:
    """The pull-policy and digest skips say why for these values: the policy the containers
    really have, kind's node-only images only without a registry, a registry's immutable tags
    only with one, the Postgres fields for the Postgres image."""
    registry = rendered.values["image"]["registry"]
    for doc in rendered.docs:
        skips = _skips(doc)
        template = pod_template(doc)
        if template is None or not {"CKV_K8S_15", "CKV_K8S_43"} & set(skips):
            continue
        where = f"{rendered.name}: {doc['kind']} {doc['metadata']['name']}"
        postgres = component(doc) == "postgres"
        if "CKV_K8S_15" in skips:
            reason = skips["CKV_K8S_15"]
            (policy,) = {c["imagePullPolicy"] for c in containers(template)}
            assert reason.startswith(f"pullPolicy {policy} ("), f"{where}: {reason}"
            assert ("postgres.image.pullPolicy" in reason) is postgres, f"{where}: {reason}"
            assert ("kind" in reason) is (
                policy == "IfNotPresent" and not registry and not postgres
            )
            assert ("from image.registry" in reason) is bool(registry and not postgres)
        if "CKV_K8S_43" in skips:
            reason = skips["CKV_K8S_43"]
            assert ("postgres.image.tag" in reason) is postgres, f"{where}: {reason}"
            assert all("@sha256:" not in c["image"] for c in containers(template)), where


@pytest.mark.slow
def test_checkov_finds_no_failed_check(render_dir: Path) -> None:
    """One checkov run over every rendered values file (checkov is slow: keep it to one)."""
    proc = subprocess.run(
        [
            str(tool("checkov")),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--directory",
            str(render_dir),
            "--output",
            "json",
            "--quiet",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=render_dir,
    )
    assert proc.stdout.strip(), f"checkov printed nothing:\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    assert isinstance(report, dict), "expected the report of one framework"
    failed = [
        f"{c['check_id']} {c['resource']} ({Path(c['file_path']).name}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    summary = report["summary"]
    assert summary["failed"] == 0, summary
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 1000, f"checkov scanned (almost) nothing: {summary}"
    assert summary["resource_count"] >= len(list(render_dir.glob("*.yaml"))) * 10, summary


def test_dockerfiles_pass_hadolint() -> None:
    dockerfiles = sorted((REPO / "images").rglob("Dockerfile*"))
    assert dockerfiles, "no Dockerfile under images/"
    proc = subprocess.run(
        [str(tool("hadolint")), "--no-color", *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not proc.stdout.strip(), proc.stdout


def test_dockerfile_has_every_image_target() -> None:
    text = (REPO / "images" / "Dockerfile").read_text()
    for target in ("mlflow", "train", "serve", "rollout"):
        assert f" AS {target}\n" in text, f"images/Dockerfile has no `{target}` target"
    final_stages = text.split("FROM runtime AS mlflow", 1)[1]
    assert "USER 10001:10001" in final_stages
    assert "gcc" not in text
    assert "build-essential" not in text


def test_dockerfile_copies_each_image_only_what_it_runs() -> None:
    """The static half of tests/containers/test_contents.py, which runs without an engine: the
    code stage takes the core (not the mlkube command or the deploy shim beside it), each image
    the core and its own component, and the build context holds no deploy driver or local
    runner."""
    text = (REPO / "images" / "Dockerfile").read_text()
    code = text.split("FROM base AS code", 1)[1].split("\nFROM ", 1)[0]
    copied = re.findall(r"^COPY (\S+) ", code, re.M)
    assert copied == ["mlkube/__init__.py", "mlkube/core", "jobs", "service", "rollout"]
    for target, own in (("train", "jobs"), ("serve", "service"), ("rollout", "rollout")):
        stage = text.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        from_code = re.findall(r"^COPY --from=code /opt/mlkube/(\S+) ", stage, re.M)
        assert from_code == ["mlkube", own], f"the {target} image copies {from_code}"
    mlflow = text.split(" AS mlflow\n", 1)[1].split("\nFROM ", 1)[0]
    assert "--from=code" not in mlflow
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # nothing is in the build context unless let in
    assert not {"!deploy", "!embedded", "!bench", "!tests"} & set(ignore)
    assert {"mlkube/__main__.py", "mlkube/deploy"} <= set(ignore)


def test_pyhelm3_template_resources_matches_the_cli(renders: dict[str, Rendered]) -> None:
    """The deploy driver renders through pyhelm3: same chart, same values, same objects."""
    from pyhelm3 import Client

    values = yaml.safe_load((CHART / "values-kind.yaml").read_text())

    async def render() -> list[dict[str, Any]]:
        client = Client(executable=str(tool("helm")))
        chart = await client.get_chart(CHART)
        assert chart.metadata.name == "mlkube"
        resources = await client.template_resources(chart, RELEASE, values, namespace=NAMESPACE)
        return [r for r in resources if r]

    via_pyhelm3 = asyncio.run(render())
    ids = sorted((d["kind"], d["metadata"]["name"]) for d in via_pyhelm3)
    assert ids == sorted((d["kind"], d["metadata"]["name"]) for d in renders["kind"].docs)
    cronjob = next(d for d in via_pyhelm3 if d["kind"] == "CronJob")
    assert cronjob["metadata"]["name"] == f"{RELEASE}-training"
