"""The commands that act on a deployment (destroy, ui, predict, status, train) against fakes,
and the pure helpers under them. (The CLI's own tests: test_cli.py.)"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import objects
from deploy.context import urllib_http
from deploy.helm import Revision, merge_values
from deploy.options import Options
from deploy.plans import plan_destroy, plan_predict, plan_status, plan_train, plan_ui
from deploy.runner import run_steps
from deploy.shell import StepFailed
from deploy.training import mark_manual
from tests.unit.deploy.fakes import (
    ALL_TOOLS,
    INSTANCE,
    TRAINING_ENV,
    FakeCommands,
    FakeHelm,
    FakeHttp,
    deployment,
    fail,
    ingress,
    job_from_cronjob,
    kjson,
    make_ctx,
    obj,
    ok,
    service,
)


def with_kind_context(cmds: FakeCommands) -> FakeCommands:
    return cmds.on("kubectl", "config", "get-contexts", answer=ok("kind-mlkube\n"))


# --- helm values -------------------------------------------------------------------------------


def test_merge_values_follows_helm() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": "keep"}, "e": 1}
    over = {"a": {"b": 2, "c": [3], "d": None}, "f": {"g": 1}}
    assert merge_values(base, over) == {"a": {"b": 2, "c": [3]}, "e": 1, "f": {"g": 1}}
    assert base["a"]["c"] == [1, 2]  # inputs untouched


# --- pure cluster helpers ------------------------------------------------------------------


def test_ingress_address_and_published_port() -> None:
    assert objects.ingress_address(ingress(ip="10.0.0.1")) == "10.0.0.1"
    assert objects.ingress_address(
        {
            "status": {
                "loadBalancer": {
                    "ingress": [{"hostname": "k8s-mlkube-abc.eu-west-1.elb.amazonaws.com"}]
                }
            }
        }
    ) == ("k8s-mlkube-abc.eu-west-1.elb.amazonaws.com")
    assert objects.ingress_address(ingress(ip=None)) is None
    assert objects.published_port("0.0.0.0:42381->80/tcp, [::]:42381->80/tcp", 80) == 42381
    assert objects.published_port("0.0.0.0:5000->10000/tcp", 80) is None
    assert objects.published_port("", 80) is None


# --- destroy -----------------------------------------------------------------------------------


def test_destroy_kind_removes_the_provider_only_when_no_cluster_is_left(repo: Path) -> None:
    cmds = FakeCommands()
    cmds.on("kind", "get", "clusters", answer=[ok("mlkube\nother\n"), ok("other\n")])
    cmds.on("docker", "ps", "-a", answer=ok("mlkube-cloud-provider-kind\n"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds)
    assert run_steps(plan_destroy(ctx.opts), ctx) == 0
    assert cmds.ran("kind", "delete", "cluster", "--name", "mlkube")
    assert not cmds.ran("docker", "rm")
    assert "other kind clusters use it" in out.getvalue()

    cmds = FakeCommands()
    cmds.on("kind", "get", "clusters", answer=[ok("mlkube\n"), ok("")])
    cmds.on("docker", "ps", "-a", answer=ok("mlkube-cloud-provider-kind\n"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds)
    assert run_steps(plan_destroy(ctx.opts), ctx) == 0
    assert cmds.ran("docker", "rm") == [["docker", "rm", "-f", "mlkube-cloud-provider-kind"]]


def test_destroy_eks_needs_confirmation(repo: Path) -> None:
    cmds = FakeCommands().on("kubectl", "config", "current-context", answer=ok("prod\n"))
    helm = FakeHelm()
    ctx, out, _ = make_ctx(Options(repo=repo, env="eks"), cmds, helm)
    assert run_steps(plan_destroy(ctx.opts), ctx) == 1
    assert "make destroy ENV=eks YES=1" in out.getvalue()
    assert not helm.calls

    ctx, out, _ = make_ctx(Options(repo=repo, env="eks", yes=True), cmds, helm)
    assert run_steps(plan_destroy(ctx.opts), ctx) == 0
    assert helm.calls == [
        ("uninstall", {"release": "mlkube", "namespace": "mlkube", "context": "prod"})
    ]
    assert "the generated Secrets (database password, webhook keys)" in out.getvalue()


# --- ui, predict, status, train ------------------------------------------------------------------


def test_ui_port_forwards_to_the_mlflow_service(repo: Path) -> None:
    cmds = with_kind_context(FakeCommands())
    # mlflow.service.port=80: the Service listens on 80 (its pods on 5000).
    cmds.on("kubectl", "get", "service", answer=kjson(service("mlkube-mlflow", port=80)))
    ctx, out, _ = make_ctx(Options(repo=repo, port=5001), cmds)
    assert run_steps(plan_ui(ctx.opts), ctx) == 0
    assert cmds.ran("kubectl", "port-forward") == [
        [
            "kubectl",
            "port-forward",
            "-n",
            "mlkube",
            "--address",
            "127.0.0.1",
            "svc/mlkube-mlflow",
            "5001:80",
        ]
    ]
    assert "MLflow UI on http://127.0.0.1:5001" in out.getvalue()
    get = cmds.ran("kubectl", "get", "service")[0]
    assert get[get.index("-l") + 1] == f"{INSTANCE},app.kubernetes.io/component=mlflow"


def test_ui_names_the_ports_when_the_service_has_no_http_port(repo: Path) -> None:
    svc = service()
    svc["spec"]["ports"] = [{"name": "web", "port": 80}, {"name": "grpc", "port": 9000}]
    cmds = with_kind_context(FakeCommands()).on("kubectl", "get", "service", answer=kjson(svc))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds)
    assert run_steps(plan_ui(ctx.opts), ctx) == 1
    assert "service/mlkube-mlflow has no port named 'http' (ports: web:80, grpc:9000)" in (
        out.getvalue()
    )
    assert not cmds.ran("kubectl", "port-forward")


def test_ui_without_a_cluster_says_so(repo: Path) -> None:
    cmds = FakeCommands().on("kubectl", "config", "get-contexts", answer=ok("kind-other\n"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds)
    assert run_steps(plan_ui(ctx.opts), ctx) == 1
    assert "no kube-context kind-mlkube" in out.getvalue()
    assert "kind get clusters" in out.getvalue()  # kind is installed: worth asking it


def test_ui_without_kind_installed_does_not_suggest_it(repo: Path) -> None:
    cmds = FakeCommands().on("kubectl", "config", "get-contexts", answer=ok("kind-other\n"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, tools={**ALL_TOOLS, "kind": None})
    assert run_steps(plan_ui(ctx.opts), ctx) == 1
    assert "no kube-context kind-mlkube" in out.getvalue()
    assert "kind get clusters" not in out.getvalue()
    assert "kubectl config get-contexts" in out.getvalue()


def test_predict_through_the_ingress(repo: Path) -> None:
    cmds = with_kind_context(FakeCommands())
    cmds.on(
        "kubectl get ingress -n mlkube -l",
        INSTANCE,
        answer=kjson(ingress(host="mlkube.local")),
    )
    cmds.on("kubectl", "get", "ingress", "mlkube-serving", answer=obj(**ingress()))
    http = FakeHttp().on("POST", "/invocations", (200, {"predictions": ["setosa", "virginica"]}))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, http=http)

    assert run_steps(plan_predict(ctx.opts), ctx) == 0

    method, url, body, headers = http.requests[0]
    assert (method, url) == ("POST", "http://172.18.0.5/invocations")
    assert headers["Host"] == "mlkube.local"
    assert json.loads(body or b"")["dataframe_split"]["columns"][0] == "sepal_length"
    assert '"predictions": ["setosa", "virginica"]' in out.getvalue()
    assert "-H 'Host: mlkube.local'" in out.getvalue()


def test_predict_error_shows_the_answer(repo: Path) -> None:
    cmds = with_kind_context(FakeCommands())
    cmds.on("kubectl", "get", "ingress", "-n", "mlkube", "-l", INSTANCE, answer=kjson(ingress()))
    cmds.on("kubectl", "get", "ingress", "mlkube-serving", answer=obj(**ingress()))
    http = FakeHttp().on("POST", "/invocations", (503, {"detail": "model not loaded"}))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, http=http)
    assert run_steps(plan_predict(ctx.opts), ctx) == 1
    assert "answered 503" in out.getvalue()
    assert "model not loaded" in out.getvalue()
    assert "logs -l app.kubernetes.io/component=serving" in out.getvalue()


def test_status(repo: Path) -> None:
    cmds = with_kind_context(FakeCommands())
    cmds.on("kubectl", "get", "deployment", answer=kjson(deployment("mlkube-serving", version="7")))
    cmds.on("kubectl", "get", "ingress", answer=kjson(ingress()))
    helm = FakeHelm(installed=Revision("mlkube", "mlkube", 4, "deployed"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds, helm)
    assert run_steps(plan_status(ctx.opts), ctx) == 0
    text = out.getvalue()
    assert "release mlkube revision 4: deployed" in text
    assert "serving: model version 7, 2/2 ready" in text
    assert "ingress: 172.18.0.5" in text

    ctx, out, _ = make_ctx(Options(repo=repo), cmds, FakeHelm())
    assert run_steps(plan_status(ctx.opts), ctx) == 1
    assert "release mlkube is not installed in mlkube: make deploy" in out.getvalue()


def test_train_on_the_cluster_creates_a_job_from_the_cronjob(repo: Path) -> None:
    cmds = FakeCommands().on("kubectl", "config", "current-context", answer=ok("prod\n"))
    cmds.on("kubectl", "get", "cronjob", answer=kjson({"metadata": {"name": "mlkube-training"}}))
    cmds.on("kubectl", "create", "job", answer=job_from_cronjob)
    cmds.on("kubectl", "get", "job", answer=obj(status={"succeeded": 1}))
    cmds.on("kubectl get pods -n mlkube -l", answer=kjson({"status": {"phase": "Succeeded"}}))
    ctx, out, _ = make_ctx(Options(repo=repo, env="eks"), cmds)
    assert run_steps(plan_train(ctx.opts), ctx) == 0
    # kubectl builds the Job from the CronJob without creating it...
    build = cmds.ran("kubectl", "create", "job")[0]
    assert build[4] == "--from=cronjob/mlkube-training"
    assert build[-3:] == ["--dry-run=client", "-o", "json"]
    # ...then it is created with TRAIN_TRIGGER=manual (the CronJob's pod says cron), the rest
    # of what kubectl built kept as it was.
    created = json.loads(cmds.input_of("kubectl", "create", "-n", "mlkube", "-f", "-"))
    assert cmds.index("kubectl", "create", "job") < cmds.index("kubectl", "create", "-n")
    assert created["metadata"]["name"] == "mlkube-training-manual-20260101000000"
    assert created["metadata"]["ownerReferences"][0]["name"] == "mlkube-training"
    [train] = created["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in train["env"]}
    assert env == {
        **{e["name"]: e["value"] for e in TRAINING_ENV},
        "TRAIN_TRIGGER": "manual",
    }
    assert [e["name"] for e in train["env"]].count("TRAIN_TRIGGER") == 1
    assert "(TRAIN_TRIGGER=manual)" in out.getvalue()
    logs = cmds.ran("kubectl", "logs")[0]
    assert logs[:4] == ["kubectl", "logs", "-f", "job/mlkube-training-manual-20260101000000"]
    # Followed only once the pod's container ran (kubectl gives up on ContainerCreating).
    assert cmds.index("kubectl", "get", "pods") < cmds.index("kubectl", "logs", "-f")
    assert {c for c, w in zip(cmds.contexts, cmds.calls, strict=True) if w[1] != "config"} == {
        "prod"
    }


def test_mark_manual_finds_the_training_container() -> None:
    job = json.loads(job_from_cronjob(["kubectl", "create", "job", "j", "--from=cronjob/c"]).stdout)
    containers = job["spec"]["template"]["spec"]["containers"]
    containers[0]["env"] = [e for e in containers[0]["env"] if e["name"] != "TRAIN_TRIGGER"]
    sidecar = {"name": "sidecar", "image": "proxy", "env": [{"name": "A", "value": "1"}]}
    containers.insert(0, sidecar)
    marked = mark_manual(job)["spec"]["template"]["spec"]["containers"]
    assert marked[0]["env"] == [{"name": "A", "value": "1"}]  # the sidecar is left alone
    assert marked[1]["env"][-1] == {"name": "TRAIN_TRIGGER", "value": "manual"}  # by its command

    containers[:] = [containers[0]]
    with pytest.raises(StepFailed, match="no container that runs `python -m jobs.train`"):
        mark_manual(job)


def test_train_without_the_release(repo: Path) -> None:
    cmds = with_kind_context(FakeCommands()).on("kubectl", "get", "cronjob", answer=kjson())
    ctx, out, _ = make_ctx(Options(repo=repo), cmds)
    assert run_steps(plan_train(ctx.opts), ctx) == 1
    assert "no training CronJob found" in out.getvalue()
    assert "is the release installed? (make deploy)" in out.getvalue()


def test_kubectl_failure_shows_its_stderr(repo: Path) -> None:
    cmds = with_kind_context(FakeCommands())
    cmds.on("kubectl", "get", "cronjob", answer=fail("error: You must be logged in to the server"))
    ctx, out, _ = make_ctx(Options(repo=repo), cmds)
    assert run_steps(plan_train(ctx.opts), ctx) == 1
    assert "You must be logged in to the server" in out.getvalue()
    assert "kubectl --context kind-mlkube -n mlkube get cronjob,jobs" in out.getvalue()


# --- the real HTTP helper, against a local server ----------------------------------------------


@pytest.fixture
def local_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = 200 if json.loads(body).get("ok") else 422
            self.send_response(status)
            self.end_headers()
            self.wfile.write(json.dumps({"host": self.headers["Host"]}).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urllib_http_returns_errors_as_answers(local_server: str) -> None:
    status, body = urllib_http(
        "POST", f"{local_server}/x", b'{"ok": true}', {"Host": "mlkube.local"}
    )
    assert status == 200
    assert json.loads(body) == {"host": "mlkube.local"}
    status, _ = urllib_http("POST", f"{local_server}/x", b'{"ok": false}', {})
    assert status == 422
    with pytest.raises(OSError, match="refused"):
        urllib_http("GET", "http://127.0.0.1:9/", None, {}, timeout=2)
