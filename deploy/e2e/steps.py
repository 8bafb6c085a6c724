"""End-to-end smoke test of a deployed mlkube (``make e2e``, and the e2e-kind workflow).

Against the running release, through its Ingress:
1. a prediction answers;
2. a weak model is forced to production and every serving replica ends up on it;
3. a better model is trained and registered, then promoted by the same gate as the daily job
   (``python -m jobs.promote --run-id``);
4. while a small, bounded load runs through the Ingress, the operator rolls the pods to it;
5. ``/model`` reports the new version on every replica, and no request failed.
On failure it dumps ``kubectl get``/``describe`` of everything and every pod's logs (see
:mod:`deploy.e2e.diagnostics`); the steps are listed in :func:`deploy.plans.plan_e2e`."""

from __future__ import annotations

import json
import re
import sys

from deploy import objects
from deploy.context import Ctx, wait_for
from deploy.e2e import podload
from deploy.e2e.load import Load
from deploy.e2e.replicas import (
    get_json_http,
    model_version_of,
    port_forward,
    wait_http,
    wait_served,
)
from deploy.ingress import SAMPLE_REQUEST, SAMPLE_ROWS, find_ingress_url, ingress_host_header
from deploy.shell import StepFailed
from deploy.state import Candidate
from mlkube.core.names import DEFAULT_MODEL_NAME

TRAIN_LINE = re.compile(r"^run (?P<run>[0-9a-f]{8,}): (?P<model>\S+) v(?P<version>\d+)\b", re.M)
MIN_REQUESTS = 10  # before and after the rollout, so the no-failure verdict means something


def parse_train_output(text: str) -> tuple[str, str]:
    """``(run_id, version)`` from the last line ``python -m jobs.train`` prints."""
    matches = list(TRAIN_LINE.finditer(text))
    if not matches:
        raise StepFailed(f"cannot find 'run <id>: <model> v<N>' in the training output:\n{text}")
    return matches[-1]["run"], matches[-1]["version"]


def python(ctx: Ctx, *args: str) -> str:
    result = ctx.cmds.run(
        [ctx.tool("python"), *args],
        check=False,
        env={"MLFLOW_TRACKING_URI": ctx.state.e2e.tracking_uri},
        timeout=ctx.opts.timeout,
    )
    output = result.stdout + result.stderr
    if not result.ok:
        raise StepFailed(
            f"`python {' '.join(args)}` exited with {result.returncode}:\n{output[-3000:]}"
        )
    return result.stdout


# --- steps -----------------------------------------------------------------------------------


def discover(ctx: Ctx) -> None:
    dep = objects.serving_deployment(ctx)
    labels = dep.get("metadata", {}).get("labels", {})
    model = labels.get("mlkube.io/model-name", DEFAULT_MODEL_NAME)
    ctx.state.e2e.model = model
    url = find_ingress_url(ctx, timeout=300)
    ctx.state.ingress.headers = ingress_host_header(ctx)
    ctx.console.info(
        f"serving deployment/{objects.name_of(dep)} (model {model}, "
        f"{dep.get('spec', {}).get('replicas', 1)} replicas); Ingress at {url}"
    )


def predict_through_ingress(ctx: Ctx) -> None:
    url = ctx.state.ingress.url
    headers = {"Content-Type": "application/json", **ctx.state.ingress.headers}

    def answered() -> tuple[int, bytes] | None:
        try:
            status, body = ctx.http(
                "POST", f"{url}/invocations", json.dumps(SAMPLE_REQUEST).encode(), headers
            )
        except OSError:
            return None
        return (status, body) if status == 200 else None

    status, body = wait_for(
        ctx, f"POST {url}/invocations to answer 200", answered, timeout=120, interval=2
    )
    predictions = json.loads(body).get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(SAMPLE_ROWS):
        raise StepFailed(f"expected one prediction per row, got {body[:300]!r}")
    info = get_json_http(ctx, f"{url}/model", ctx.state.ingress.headers)
    ctx.console.info(f"predictions {predictions}; /model says version {model_version_of(info)}")


def connect_mlflow(ctx: Ctx) -> None:
    service, remote = objects.mlflow_service(ctx)
    forward = port_forward(ctx, f"svc/{service}", remote)
    uri = forward.url
    wait_http(ctx, forward.proc, f"{uri}/health", f"svc/{service}")
    ctx.state.e2e.tracking_uri = uri
    ctx.console.info(f"MLflow at {uri} (port-forward to svc/{service})")


def _train(ctx: Ctx, classifier: str, promotion: str) -> tuple[str, str]:
    """``(run_id, version)`` of one ``jobs.train`` run; ``promotion`` is ``--force-promote`` or
    ``--no-promote``."""
    out = python(
        ctx,
        "-m",
        "jobs.train",
        "--model-name",
        ctx.state.e2e.model,
        "--classifier",
        classifier,
        promotion,
        # Each step needs a version of its own, even when a rerun repeats the champion exactly.
        "--force-register",
        "--trigger",
        "ci",
    )
    return parse_train_output(out)


def weak_champion(ctx: Ctx) -> None:
    """A champion worth beating: a dummy classifier, forced to production."""
    run_id, version = _train(ctx, "dummy", "--force-promote")
    ctx.state.e2e.weak_version = version
    ctx.console.info(f"run {run_id} -> version {version}, forced to production")
    versions = wait_served(ctx, version, timeout=ctx.opts.timeout)
    ctx.console.info(f"every replica serves version {version}: {versions}")


def train_candidate(ctx: Ctx) -> None:
    run_id, version = _train(ctx, "logistic_regression", "--no-promote")
    ctx.state.e2e.candidate = Candidate(run_id, version)
    ctx.console.info(f"run {run_id} -> version {version}, registered, not promoted yet")


def candidate(ctx: Ctx) -> Candidate:
    if ctx.state.e2e.candidate is None:
        raise StepFailed("no candidate model: the candidate step did not run")
    return ctx.state.e2e.candidate


def promote_under_load(ctx: Ctx) -> None:
    """The gate promotes the candidate while two bounded loads run: one through the Ingress
    from here, one from a pod inside the cluster to the serving Service. Every replica must end
    up on the new version, and no request of either load may fail."""
    found = candidate(ctx)
    run_id, version = found.run_id, found.version
    url = ctx.state.ingress.url
    headers = {"Content-Type": "application/json", **ctx.state.ingress.headers}
    body = json.dumps(SAMPLE_REQUEST).encode()

    def send() -> int:
        status, _ = ctx.http("POST", f"{url}/invocations", body, headers)
        return status

    image = objects.container_image(objects.serving_deployment(ctx))
    podload.start(ctx, image, max_seconds=ctx.opts.timeout + 120)
    load = Load(send, max_seconds=ctx.opts.timeout + 120).start()
    ctx.state.e2e.cleanups.append(load.close)
    try:
        if not load.wait_sent(MIN_REQUESTS):  # a baseline before the rollout starts
            raise StepFailed(f"the load did not get going: {load.report.line()}")
        started = ctx.clock()
        out = python(
            ctx, "-m", "jobs.promote", "--run-id", run_id, "--model-name", ctx.state.e2e.model
        )
        ctx.console.info(out.strip())
        if "PROMOTED" not in out:
            raise StepFailed(
                f"the gate did not promote run {run_id} over the weak champion:\n{out}"
            )
        versions = wait_served(ctx, version, timeout=ctx.opts.timeout)
        rolled = ctx.clock() - started
        load.wait_sent(load.report.sent + MIN_REQUESTS)  # and some through the new pods only
    finally:
        report = load.stop()
    inside = podload.stop(ctx)
    ctx.state.e2e.load = report
    ctx.console.info(f"every replica serves version {version}: {versions}")
    ctx.console.info(f"rolled out in {rolled:.1f}s (from the promotion to every replica on it)")
    ctx.console.info(f"load during the rollout: {report.line()}")
    ctx.console.info(f"in-cluster load during the rollout: {inside.line()}")
    for name, got in (("through the Ingress", report), ("from inside the cluster", inside)):
        if got.failed:
            raise StepFailed(
                f"{got.failed} of {got.sent} requests {name} failed during the rollout:\n"
                + "\n".join(got.errors)
            )
        if got.sent < 2 * MIN_REQUESTS:
            raise StepFailed(f"only {got.sent} requests were sent {name}: the load did not run")


def served_through_ingress(ctx: Ctx) -> None:
    version = candidate(ctx).version
    info = get_json_http(ctx, f"{ctx.state.ingress.url}/model", ctx.state.ingress.headers)
    if model_version_of(info) != version:
        raise StepFailed(f"/model through the Ingress says {info}, expected version {version}")
    ctx.console.info(f"/model through the Ingress: version {version}")


def run_cleanups(ctx: Ctx) -> None:
    for stop in reversed(ctx.state.e2e.cleanups):
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - cleanup must not mask the verdict
            sys.stderr.write(f"cleanup: {exc}\n")
    ctx.state.e2e.cleanups.clear()
