"""What the operator's unit tests build on: one serving Deployment builder, a fake API server
(JSON patches applied, ``metadata.generation`` bumped as Kubernetes does), a fake Deployment
controller, the pods the operator would read, and the constants the tests share.

No test module builds a Deployment body of its own: each takes :func:`deployment` with the
parameters its case needs."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any

import jsonpatch

from rollout import diagnosis, plan
from rollout.plan import AliasTarget

MODEL = "iris-classifier"
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
KEY_TAG = "mlkube.rollout/mlkube/serving"  # the default Deployment's verdict tag
MODEL_ERROR = "ModuleNotFoundError: No module named 'xgboost'"
UNPICKLING_ERROR = "UnpicklingError: invalid load key, 'x'."

Body = dict[str, Any]


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the Deployment ------------------------------------------------------------------------------


def deployment(
    version: str | None = "1",
    *,
    status: str | None = "succeeded",
    previous: str | None = None,
    failed: str | None = None,
    alias: str | None = None,
    annotations: Mapping[str, str] | None = None,
    rollout: str = "complete",
    replicas: int = 3,
    deadline: int | None = 300,
    sidecar: bool = False,
    name: str = "serving",
    namespace: str = "mlkube",
    model: str = MODEL,
    resource_version: str = "41",
    generation: int = 4,
    uid: str | None = None,
) -> Body:
    """A serving Deployment labelled for the operator; by default one whose last rollout (of
    ``version``) succeeded and is complete.

    ``version``: the pin (``MODEL_VERSION`` and the template annotation), None for unpinned.
    ``status``: the record's ``rollout-status`` (None: no record); ``previous`` (operator v1's
    template annotation), ``failed`` and ``alias`` set those annotations, ``annotations`` adds
    any others. ``rollout``: what the controller reports, ``complete``, ``progressing`` (a surge
    pod not yet available) or ``failed`` (ProgressDeadlineExceeded, no timestamps).
    ``deadline``: ``progressDeadlineSeconds`` (None: absent, Kubernetes' 600 s).
    ``sidecar``: a second container without the model env, after the serving one."""
    env = [{"name": "MODEL_NAME", "value": model}, {"name": "LOG_LEVEL", "value": "INFO"}]
    template_annotations = {"prometheus.io/scrape": "true"}
    if version is not None:
        env.insert(1, {"name": "MODEL_VERSION", "value": version})
        template_annotations["mlkube.io/model-version"] = version
    if previous is not None:
        template_annotations["mlkube.io/previous-model-version"] = previous
    metadata_annotations = {"meta.helm.sh/release-name": "mlkube"}
    for key, value in (
        ("mlkube.io/rollout-status", status),
        ("mlkube.io/failed-model-version", failed),
        ("mlkube.io/model-alias", alias),
    ):
        if value is not None:
            metadata_annotations[key] = value
    metadata_annotations.update(annotations or {})
    containers: list[dict[str, Any]] = [{"name": "serving", "image": "serve:1", "env": env}]
    if sidecar:
        containers.append({"name": "sidecar", "image": "envoy:1"})
    spec: dict[str, Any] = {"replicas": replicas}
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    spec["selector"] = {"matchLabels": {"app": "serving"}}
    spec["template"] = {
        "metadata": {"labels": {"app": "serving"}, "annotations": template_annotations},
        "spec": {"containers": containers},
    }
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "resourceVersion": resource_version,
        "generation": generation,
        "labels": {"mlkube.io/model-name": model, "app": "serving"},
        "annotations": metadata_annotations,
    }
    if uid is not None:
        metadata["uid"] = uid
    body: Body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": spec,
        "status": {"observedGeneration": generation},
    }
    if rollout == "complete":
        body["status"].update(replicas=replicas, updatedReplicas=replicas,
                              readyReplicas=replicas, availableReplicas=replicas)  # fmt: skip
    elif rollout in ("progressing", "failed"):
        body["status"].update(replicas=replicas + 1, updatedReplicas=1, availableReplicas=replicas)
        if rollout == "failed":
            body["status"]["conditions"] = [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ]
    else:
        raise ValueError(f"rollout: complete, progressing or failed, not {rollout!r}")
    return body


def rolling(version: str = "2") -> Body:
    """The default Deployment (on version 1) that the operator just rolled to ``version`` at T0,
    the controller having seen it: a surge pod not available yet."""
    return controller_progressing(
        apply(deployment("1"), plan.decide(deployment("1"), AliasTarget(version), now=T0))
    )


# -- the API server ------------------------------------------------------------------------------


def bump(old: Body, new: Body) -> Body:
    """The API server's generation rule for Deployments: a change of the spec or of the
    annotations bumps it (pkg/registry/apps/deployment/strategy.go: "annotation updates bump
    the generation because annotations are copied from deployments to their replica sets")."""
    old_meta, new_meta = old["metadata"], new["metadata"]
    if new["spec"] != old["spec"] or new_meta.get("annotations") != old_meta.get("annotations"):
        new_meta["generation"] = old_meta["generation"] + 1
    return new


def patched(body: Body, action: plan.Action) -> Body:
    """The operator's JSON patch applied, nothing else (the generation stays)."""
    result: Body = jsonpatch.apply_patch(body, action.patch, in_place=False)
    return result


def apply(body: Body, action: plan.Action) -> Body:
    """The API server: apply the operator's patch, and bump the generation as Kubernetes does."""
    return bump(body, patched(body, action))


# -- someone else's changes (the n-th one) ----------------------------------------------------


def annotate(body: Body, n: int) -> None:
    body["metadata"]["annotations"][f"example.com/ticket-{n}"] = f"INC-{n}"


def label(body: Body, n: int) -> None:
    body["metadata"]["labels"]["team"] = f"team-{n}"


def scale(body: Body, n: int) -> None:
    body["spec"]["replicas"] = 2 + n % 3


def upgrade(body: Body, n: int) -> None:  # helm upgrade with a changed value
    body["spec"]["template"]["spec"]["containers"][0]["image"] = f"serve:{n + 2}"


def restart(body: Body, n: int) -> None:  # kubectl rollout restart
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    annotations["kubectl.kubernetes.io/restartedAt"] = f"2026-03-01T12:00:{n:02d}Z"


# -- the Deployment controller -------------------------------------------------------------------


def controller_progressing(body: Body) -> Body:
    """The controller saw the new spec; a surge pod is not available yet."""
    body = copy.deepcopy(body)
    replicas = body["spec"]["replicas"]
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        "replicas": replicas + 1,
        "updatedReplicas": 1,
        "availableReplicas": replicas,
    }
    return body


def controller_complete(body: Body) -> Body:
    body = copy.deepcopy(body)
    replicas = body["spec"]["replicas"]
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    return body


def controller_deadline(body: Body, at: dt.datetime) -> Body:
    body = controller_progressing(body)
    body["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "lastUpdateTime": stamp(at),
            "lastTransitionTime": stamp(at),
        }
    ]
    return body


# -- what the operator reads ---------------------------------------------------------------------


def record(body: Body) -> dict[str, str]:
    """The record's annotations, ``mlkube.io/`` left out."""
    return {
        k.removeprefix("mlkube.io/"): v
        for k, v in body["metadata"]["annotations"].items()
        if k.startswith("mlkube.io/")
    }


def tagged(version: str, verdict: str | None) -> AliasTarget:
    """The alias on ``version``, with this Deployment's verdict tag (None: untagged)."""
    return AliasTarget(version, {} if verdict is None else {KEY_TAG: verdict})


def failing_pods(version: str, error: str) -> list[diagnosis.PodView]:
    """The new pod runs, its readiness says the model did not load with this error."""
    return [
        diagnosis.PodView(name="serving-new", version=version, ready=False,
                          ready_detail={"status": "loading", "last_error": error}),
        diagnosis.PodView(name="serving-old", version="1", ready=True,
                          ready_detail={"status": "ready", "model_version": "1"}),
    ]  # fmt: skip


def new_pod_cannot_load(version: str, error: str = UNPICKLING_ERROR) -> list[diagnosis.PodView]:
    """Only the new pod, whose readiness reports ``error`` (no status)."""
    return [diagnosis.PodView("serving-new", version, ready_detail={"last_error": error})]
