"""End-to-end smoke test of a deployed mlkube (``make e2e``, and the e2e-kind workflow).

Against the running release, through its Ingress:
1. a prediction answers;
2. a weak model is forced to production and every serving replica ends up on it;
3. a better model is trained and registered, then promoted by the same gate as the daily job
   (``python -m jobs.promote --run-id``);
4. while a small, bounded load runs through the Ingress, the operator rolls the pods to it;
5. ``/model`` reports the new version on every replica, and no request failed.
On failure it dumps ``kubectl get``/``describe`` of everything and every pod's logs."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkube.deploy import kube
from mlkube.deploy.options import Options
from mlkube.deploy.runner import CommandError, Process, Step, StepFailed
from mlkube.deploy.steps import (
    SAMPLE_REQUEST,
    SAMPLE_ROWS,
    Ctx,
    find_ingress_url,
    ingress_host_header,
    tools_step,
    use_context,
)
from mlkube.mlflow_server import free_port
from mlkube.names import DEFAULT_MODEL_NAME

TRAIN_LINE = re.compile(r"^run (?P<run>[0-9a-f]{8,}): (?P<model>\S+) v(?P<version>\d+)\b", re.M)
SERVING_PORT = 8080
MIN_REQUESTS = 10  # before and after the rollout, so the no-failure verdict means something


# --- pure pieces -------------------------------------------------------------------------------


def parse_train_output(text: str) -> tuple[str, str]:
    """``(run_id, version)`` from the last line ``python -m jobs.train`` prints."""
    matches = list(TRAIN_LINE.finditer(text))
    if not matches:
        raise StepFailed(f"cannot find 'run <id>: <model> v<N>' in the training output:\n{text}")
    return matches[-1]["run"], matches[-1]["version"]


def model_version_of(payload: dict[str, Any]) -> str | None:
    """The version a serving replica says it has loaded (``GET /model``)."""
    for key in ("version", "model_version"):
        if payload.get(key) is not None:
            return str(payload[key])
    model = payload.get("model")
    return model_version_of(model) if isinstance(model, dict) else None


@dataclass
class LoadReport:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.sent} requests, {self.failed} failed"


class Load:
    """A small background load: ``workers`` threads calling ``send`` (which returns the HTTP
    status) until stopped, ``max_requests`` is reached, or ``max_seconds`` pass. Every bound is
    enforced, so a stuck rollout cannot turn it into an endless loop."""

    def __init__(
        self,
        send: Callable[[], int],
        *,
        workers: int = 2,
        max_requests: int = 20_000,
        max_seconds: float = 900.0,
        pause: float = 0.02,
    ) -> None:
        self.send = send
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _worker(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self.report.sent >= self.max_requests:
                    return
                self.report.sent += 1
            try:
                status = self.send()
                error = None if status == 200 else f"HTTP {status}"
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                with self._lock:
                    self.report.failed += 1
                    if len(self.report.errors) < 20:
                        self.report.errors.append(f"{time.strftime('%H:%M:%S')} {error}")
            self._stop.wait(self.pause)

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_seconds
        self._threads = [
            threading.Thread(target=self._worker, args=(deadline,), daemon=True, name=f"load-{i}")
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.report

    def close(self) -> None:
        self.stop()

    def wait_sent(self, count: int, timeout: float = 60.0) -> bool:
        """Block (real time, bounded) until ``count`` requests went out; False if they did not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.report.sent >= count:
                    return True
            if not any(t.is_alive() for t in self._threads):
                return False
            time.sleep(0.05)
        return False


# --- talking to the cluster ------------------------------------------------------------------


def cleanups(ctx: Ctx) -> list[Callable[[], None]]:
    found = ctx.state.extra.setdefault("cleanups", [])
    assert isinstance(found, list)
    return found


def port_forward(ctx: Ctx, target: str, remote: int) -> tuple[Process, int]:
    """``kubectl port-forward <target>`` on a free loopback port; stopped at the end."""
    port = free_port()
    proc = ctx.cmds.spawn(
        [
            ctx.tool("kubectl"),
            "--context",
            ctx.context,
            "port-forward",
            "-n",
            ctx.opts.namespace,
            "--address",
            "127.0.0.1",
            target,
            f"{port}:{remote}",
        ]
    )
    cleanups(ctx).append(proc.stop)
    return proc, port


def get_json_http(ctx: Ctx, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, body = ctx.http("GET", url, None, headers or {})
    if status != 200:
        raise StepFailed(f"GET {url} answered {status}: {body[:300]!r}")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise StepFailed(f"GET {url} answered {type(data).__name__}, not a JSON object")
    return data


def wait_http(ctx: Ctx, proc: Process, url: str, what: str, timeout: float = 30) -> None:
    def answers() -> bool | None:
        if proc.poll() is not None:
            raise StepFailed(f"port-forward for {what} exited:\n{proc.output()[-2000:]}")
        try:
            status, _ = ctx.http("GET", url, None, {})
        except OSError:
            return None
        return True if status == 200 else None

    kube.wait_for(ctx, f"{what} through its port-forward", answers, timeout=timeout, interval=0.5)


def serving_pods(ctx: Ctx, dep: dict[str, Any]) -> list[dict[str, Any]]:
    """The Deployment's live pods (terminating ones are leaving and excluded)."""
    match = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    pods = kube.items(ctx, "pod", selector)
    return [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]


def replica_versions(ctx: Ctx, dep: dict[str, Any]) -> dict[str, str | None]:
    """What ``GET /model`` says on each replica, asked pod by pod through a port-forward."""
    versions: dict[str, str | None] = {}
    for pod in serving_pods(ctx, dep):
        name = kube.name_of(pod)
        proc, port = port_forward(ctx, f"pod/{name}", SERVING_PORT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(ctx, proc, f"{base}/healthz/live", f"pod/{name}")
            versions[name] = model_version_of(get_json_http(ctx, f"{base}/model"))
        finally:
            proc.stop()
    return versions


def wait_served(ctx: Ctx, version: str, timeout: float) -> dict[str, str | None]:
    """Wait until the operator pinned ``version`` and the rollout completed, then ask every
    replica what it serves."""

    def rolled_out() -> dict[str, Any] | None:
        dep = kube.serving_deployment(ctx)
        if kube.pinned_version(dep) == version and kube.deployment_available(dep):
            return dep
        return None

    dep = kube.wait_for(
        ctx,
        f"the serving Deployment to roll out model version {version}",
        rolled_out,
        timeout=timeout,
    )
    versions = replica_versions(ctx, dep)
    wrong = {pod: v for pod, v in versions.items() if v != version}
    want = int(dep.get("spec", {}).get("replicas", 1))
    if wrong or len(versions) < want:
        raise StepFailed(f"expected version {version} on {want} replicas, /model says {versions}")
    return versions


def python(ctx: Ctx, *args: str) -> str:
    result = ctx.cmds.run(
        [ctx.tool("python"), *args],
        check=False,
        env={"MLFLOW_TRACKING_URI": ctx.state.extra["tracking_uri"]},
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
    dep = kube.serving_deployment(ctx)
    labels = dep.get("metadata", {}).get("labels", {})
    model = labels.get("mlkube.io/model-name", DEFAULT_MODEL_NAME)
    ctx.state.extra["model"] = model
    url = find_ingress_url(ctx, timeout=300)
    ctx.state.extra["headers"] = ingress_host_header(ctx)
    ctx.console.info(
        f"serving deployment/{kube.name_of(dep)} (model {model}, "
        f"{dep.get('spec', {}).get('replicas', 1)} replicas); Ingress at {url}"
    )


def predict_through_ingress(ctx: Ctx) -> None:
    url = ctx.state.ingress_url
    headers = {"Content-Type": "application/json", **ctx.state.extra.get("headers", {})}

    def answered() -> tuple[int, bytes] | None:
        try:
            status, body = ctx.http(
                "POST", f"{url}/invocations", json.dumps(SAMPLE_REQUEST).encode(), headers
            )
        except OSError:
            return None
        return (status, body) if status == 200 else None

    status, body = kube.wait_for(
        ctx, f"POST {url}/invocations to answer 200", answered, timeout=120, interval=2
    )
    predictions = json.loads(body).get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(SAMPLE_ROWS):
        raise StepFailed(f"expected one prediction per row, got {body[:300]!r}")
    info = get_json_http(ctx, f"{url}/model", dict(ctx.state.extra.get("headers", {})))
    ctx.console.info(f"predictions {predictions}; /model says version {model_version_of(info)}")


def connect_mlflow(ctx: Ctx) -> None:
    service, remote = kube.mlflow_service(ctx)
    proc, port = port_forward(ctx, f"svc/{service}", remote)
    uri = f"http://127.0.0.1:{port}"
    wait_http(ctx, proc, f"{uri}/health", f"svc/{service}")
    ctx.state.extra["tracking_uri"] = uri
    ctx.console.info(f"MLflow at {uri} (port-forward to svc/{service})")


def _train(ctx: Ctx, classifier: str, promotion: str) -> tuple[str, str]:
    """``(run_id, version)`` of one ``jobs.train`` run; ``promotion`` is ``--force-promote`` or
    ``--no-promote``."""
    out = python(
        ctx,
        "-m",
        "jobs.train",
        "--model-name",
        ctx.state.extra["model"],
        "--classifier",
        classifier,
        promotion,
        "--trigger",
        "ci",
    )
    return parse_train_output(out)


def weak_champion(ctx: Ctx) -> None:
    """A champion worth beating: a dummy classifier, forced to production."""
    run_id, version = _train(ctx, "dummy", "--force-promote")
    ctx.state.extra["weak"] = version
    ctx.console.info(f"run {run_id} -> version {version}, forced to production")
    versions = wait_served(ctx, version, timeout=ctx.opts.timeout)
    ctx.console.info(f"every replica serves version {version}: {versions}")


def train_candidate(ctx: Ctx) -> None:
    run_id, version = _train(ctx, "logistic_regression", "--no-promote")
    ctx.state.extra["candidate"] = (run_id, version)
    ctx.console.info(f"run {run_id} -> version {version}, registered, not promoted yet")


def promote_under_load(ctx: Ctx) -> None:
    run_id, version = ctx.state.extra["candidate"]
    url = ctx.state.ingress_url
    headers = {"Content-Type": "application/json", **ctx.state.extra.get("headers", {})}
    body = json.dumps(SAMPLE_REQUEST).encode()

    def send() -> int:
        status, _ = ctx.http("POST", f"{url}/invocations", body, headers)
        return status

    load = Load(send, max_seconds=ctx.opts.timeout + 120).start()
    cleanups(ctx).append(load.close)
    try:
        if not load.wait_sent(MIN_REQUESTS):  # a baseline before the rollout starts
            raise StepFailed(f"the load did not get going: {load.report.line()}")
        out = python(
            ctx, "-m", "jobs.promote", "--run-id", run_id, "--model-name", ctx.state.extra["model"]
        )
        ctx.console.info(out.strip())
        if "PROMOTED" not in out:
            raise StepFailed(
                f"the gate did not promote run {run_id} over the weak champion:\n{out}"
            )
        versions = wait_served(ctx, version, timeout=ctx.opts.timeout)
        load.wait_sent(load.report.sent + MIN_REQUESTS)  # and some through the new pods only
    finally:
        report = load.stop()
    ctx.state.extra["load"] = report
    ctx.console.info(f"every replica serves version {version}: {versions}")
    ctx.console.info(f"load during the rollout: {report.line()}")
    if report.failed:
        raise StepFailed(
            f"{report.failed} of {report.sent} requests failed during the rollout:\n"
            + "\n".join(report.errors)
        )
    if report.sent < 2 * MIN_REQUESTS:
        raise StepFailed(f"only {report.sent} requests were sent: the load did not run")


def served_through_ingress(ctx: Ctx) -> None:
    _, version = ctx.state.extra["candidate"]
    info = get_json_http(
        ctx, f"{ctx.state.ingress_url}/model", dict(ctx.state.extra.get("headers", {}))
    )
    if model_version_of(info) != version:
        raise StepFailed(f"/model through the Ingress says {info}, expected version {version}")
    ctx.console.info(f"/model through the Ingress: version {version}")


# --- diagnostics on failure ------------------------------------------------------------------


def diagnostics_commands(ctx: Ctx, pods: list[str]) -> list[tuple[str, list[str]]]:
    ns = ctx.opts.namespace
    out: list[tuple[str, list[str]]] = [
        (
            "get",
            [
                "get",
                "all,ingress,cronjob,job,pvc,networkpolicy,gateway,httproute",
                "-n",
                ns,
                "-o",
                "wide",
            ],
        ),
        ("events", ["get", "events", "-n", ns, "--sort-by=.lastTimestamp"]),
        ("describe", ["describe", "all,ingress,cronjob,pvc,networkpolicy", "-n", ns]),
    ]
    for pod in pods:
        out.append(
            (
                f"logs-{pod}",
                ["logs", "-n", ns, f"pod/{pod}", "--all-containers", "--prefix", "--tail=400"],
            )
        )
        out.append(
            (
                f"logs-previous-{pod}",
                [
                    "logs",
                    "-n",
                    ns,
                    f"pod/{pod}",
                    "--all-containers",
                    "--prefix",
                    "--previous",
                    "--tail=200",
                ],
            )
        )
    return out


def dump_diagnostics(ctx: Ctx, step: Step) -> None:
    directory = artifacts_dir(ctx.opts)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        pods = ctx.kubectl(
            "get", "pods", "-n", ctx.opts.namespace, "-o", "name", check=False
        ).stdout.split()
    except StepFailed:
        pods = []
    ctx.console.text(f"\n---- diagnostics after the failed step '{step.title}' ----")
    for name, args in diagnostics_commands(ctx, [p.split("/", 1)[-1] for p in pods]):
        try:
            result = ctx.kubectl(*args, check=False)
        except (StepFailed, CommandError) as exc:
            text = str(exc)
        else:
            text = result.stdout + result.stderr
        if name.startswith("logs-previous-") and "previous terminated container" in text:
            continue  # the usual case: it never restarted
        (directory / f"{name}.txt").write_text(text)
        ctx.console.text(f"---- kubectl {' '.join(args)}\n{text.rstrip()}")
    report = ctx.state.extra.get("load")
    if isinstance(report, LoadReport):
        ctx.console.text(f"---- load: {report.line()}\n" + "\n".join(report.errors))
    ctx.console.text(f"---- written to {directory}")


def plan_e2e(opts: Options) -> list[Step]:
    kubectl = "kubectl --context {context} -n {ns}"
    return [
        tools_step(("kubectl", "python"), docker_daemon=False),
        Step("context", "kube-context", use_context, "kubectl config get-contexts"),
        Step("discover", "Finding the release", discover, f"{kubectl} get deploy,ingress"),
        Step(
            "predict",
            "A prediction through the Ingress",
            predict_through_ingress,
            f"{kubectl} describe ingress",
        ),
        Step("mlflow", "Connecting to MLflow", connect_mlflow, f"{kubectl} get svc,pods"),
        Step("weak", "A weak champion, rolled out", weak_champion, f"{kubectl} get deploy,pods"),
        Step("candidate", "Training a better model", train_candidate, f"{kubectl} get pods"),
        Step(
            "promote",
            "Promoting it through the gate under load",
            promote_under_load,
            f"{kubectl} get events; {kubectl} logs -l app.kubernetes.io/component=rollout",
        ),
        Step(
            "ingress-model",
            "/model through the Ingress",
            served_through_ingress,
            f"{kubectl} describe ingress",
        ),
    ]


def run_cleanups(ctx: Ctx) -> None:
    for stop in reversed(cleanups(ctx)):
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - cleanup must not mask the verdict
            sys.stderr.write(f"cleanup: {exc}\n")
    cleanups(ctx).clear()


def artifacts_dir(opts: Options) -> Path:
    return opts.artifacts or opts.repo / ".mlkube" / "e2e-artifacts"
