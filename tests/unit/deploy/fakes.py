"""Fakes for the deploy steps: a scripted command runner, a recording Helm, a manual clock."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.context import Ctx
from deploy.helm import Revision
from deploy.options import Options
from deploy.shell import CommandError, Result
from mlkube.core.console import Console

Answer = Result | Callable[[list[str]], Result]


def ok(stdout: str = "") -> Result:
    return Result((), 0, stdout, "")


def fail(stderr: str = "boom", code: int = 1) -> Result:
    return Result((), code, "", stderr)


def kjson(*items: dict[str, Any]) -> Result:
    """What ``kubectl get ... -o json`` prints for a list."""
    return ok(json.dumps({"items": list(items)}))


def obj(**data: Any) -> Result:
    return ok(json.dumps(data))


def normalize(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """Tool base name + arguments, without ``--context X`` (returned apart)."""
    words = [Path(argv[0]).name, *argv[1:]]
    context = None
    if "--context" in words:
        i = words.index("--context")
        context = words[i + 1]
        del words[i : i + 2]
    return words, context


def split(prefix: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(word for part in prefix for word in part.split(" "))


def option(call: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in a recorded command (``--name x`` or ``--name=x``), wherever it
    stands: tests check what a command asks for, not the order of its flags."""
    for i, word in enumerate(call):
        if word == flag and i + 1 < len(call):
            return call[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def steps_run(console: str) -> list[str]:
    """The titles of the steps the user saw start, in order."""
    return re.findall(r"^==> \[\d+/\d+\] (.*)$", console, re.M)


@dataclass
class FakeProcess:
    argv: list[str]
    stopped: bool = False
    code: int | None = None

    def poll(self) -> int | None:
        return self.code

    def stop(self) -> None:
        self.stopped = True

    def output(self) -> str:
        return "fake port-forward log"


@dataclass
class FakeCommands:
    """Answers each command from the last rule whose words are a prefix of it; a rule holding a
    list answers its items in turn (the last one repeats). Unmatched commands succeed silently."""

    rules: list[tuple[tuple[str, ...], list[Answer]]] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    contexts: list[str | None] = field(default_factory=list)
    envs: list[Mapping[str, str] | None] = field(default_factory=list)
    inputs: list[str | None] = field(default_factory=list)  # what each command got on stdin
    spawned: list[FakeProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        # What `helm version --template {{.Version}}` prints; a test's own rule wins (later rules
        # are matched first).
        self.rules.insert(0, (("helm", "version"), [ok("v4.1.4")]))

    def on(self, *prefix: str, answer: Answer | list[Answer] | None = None) -> FakeCommands:
        """``on("kubectl get job", answer=...)``: words may come space-separated."""
        answers = answer if isinstance(answer, list) else [answer or ok()]
        self.rules.append((split(prefix), answers))
        return self

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        capture: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        words, context = normalize(argv)
        self.calls.append(words)
        self.contexts.append(context)
        self.envs.append(env)
        self.inputs.append(input)
        result = ok()
        for prefix, answers in reversed(self.rules):
            if tuple(words[: len(prefix)]) == prefix:
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                result = answer(words) if callable(answer) else answer
                break
        result = Result(tuple(argv), result.returncode, result.stdout, result.stderr)
        if check and not result.ok:
            raise CommandError(result)
        return result

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> FakeProcess:
        words, _ = normalize(argv)
        proc = FakeProcess(words)
        self.spawned.append(proc)
        return proc

    def ran(self, *prefix: str) -> list[list[str]]:
        words = split(prefix)
        return [c for c in self.calls if tuple(c[: len(words)]) == words]

    def input_of(self, *prefix: str) -> str:
        """The stdin of the first command that starts with ``prefix``."""
        found = self.inputs[self.index(*prefix)]
        assert found is not None, f"{prefix} got nothing on stdin"
        return found

    def index(self, *prefix: str) -> int:
        prefix = split(prefix)
        for i, call in enumerate(self.calls):
            if tuple(call[: len(prefix)]) == prefix:
                return i
        raise AssertionError(f"{prefix} never ran; ran: {self.calls}")


@dataclass
class FakeHelm:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    installed: Revision | None = None
    fail_with: Exception | None = None

    def upgrade_install(
        self, release: str, chart: Path, values: dict[str, Any], **kw: Any
    ) -> Revision:
        self.calls.append(
            ("upgrade_install", {"release": release, "chart": chart, "values": values, **kw})
        )
        if self.fail_with:
            raise self.fail_with
        number = self.installed.revision + 1 if self.installed else 1
        self.installed = Revision(release, kw["namespace"], number, "deployed")
        return self.installed

    def uninstall(self, release: str, **kw: Any) -> None:
        self.calls.append(("uninstall", {"release": release, **kw}))

    def status(self, release: str, **kw: Any) -> Revision | None:
        self.calls.append(("status", {"release": release, **kw}))
        return self.installed

    def template(
        self, release: str, chart: Path, values: dict[str, Any], **kw: Any
    ) -> list[dict[str, Any]]:
        raise NotImplementedError


class Clock:
    """Time that moves only when the code sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@dataclass
class FakeHttp:
    """Answers by (method, path suffix); records every request."""

    routes: dict[tuple[str, str], list[tuple[int, bytes] | Exception]] = field(default_factory=dict)
    requests: list[tuple[str, str, bytes | None, dict[str, str]]] = field(default_factory=list)

    def on(self, method: str, suffix: str, *answers: tuple[int, Any] | Exception) -> FakeHttp:
        encoded: list[tuple[int, bytes] | Exception] = []
        for a in answers:
            if isinstance(a, Exception):
                encoded.append(a)
            else:
                status, body = a
                encoded.append(
                    (status, body if isinstance(body, bytes) else json.dumps(body).encode())
                )
        self.routes[(method, suffix)] = encoded
        return self

    def __call__(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        self.requests.append((method, url, body, dict(headers)))
        for (m, suffix), answers in self.routes.items():
            if m == method and url.endswith(suffix):
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if isinstance(answer, Exception):
                    raise answer
                return answer
        raise ConnectionRefusedError(f"no fake route for {method} {url}")


ALL_TOOLS = {
    "docker": "/usr/bin/docker",
    "kind": "/usr/local/bin/kind",
    "kubectl": "/usr/local/bin/kubectl",
    "helm": "/repo/bin/helm",
    "pgrep": "/usr/bin/pgrep",
    "python": "/venv/bin/python",
}


REAL_CHART = Path(__file__).resolve().parents[3] / "charts" / "mlkube"


def make_repo(root: Path, app_version: str = "0.1.0") -> Path:
    chart = root / "charts" / "mlkube"
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump(
            {"apiVersion": "v2", "name": "mlkube", "version": "0.1.0", "appVersion": app_version}
        )
    )
    (chart / "values-kind.yaml").write_text(
        yaml.safe_dump(
            {
                "image": {"pullPolicy": "IfNotPresent"},
                "serving": {"replicas": 2, "ingress": {"enabled": True, "hosts": ["a"]}},
            }
        )
    )
    (chart / "values-eks.yaml").write_text(
        yaml.safe_dump(
            {"serving": {"replicas": 3, "ingress": {"className": "alb", "hosts": ["x", "y"]}}}
        )
    )
    # The local cluster's values as they are: its test checks what they set.
    shutil.copy(REAL_CHART / "values-local.yaml", chart / "values-local.yaml")
    (root / "images").mkdir()
    (root / "images" / "Dockerfile").write_text("FROM scratch\n")
    (root / "deploy").mkdir(parents=True)
    (root / "deploy" / "kind-config.yaml").write_text("kind: Cluster\n")
    return root


def make_ctx(
    opts: Options,
    cmds: FakeCommands,
    helm: FakeHelm | None = None,
    *,
    http: FakeHttp | None = None,
    tools: Mapping[str, str | None] | None = None,
    host_os: str = "linux",
) -> tuple[Ctx, io.StringIO, Clock]:
    out = io.StringIO()
    clock = Clock()
    ctx = Ctx(
        opts=opts,
        cmds=cmds,
        helm=helm or FakeHelm(),
        tools=dict(ALL_TOOLS if tools is None else tools),
        console=Console(out),
        http=http or FakeHttp(),
        sleep=clock.sleep,
        clock=clock,
        now=lambda: 1_767_225_600.0,  # 2026-01-01T00:00:00Z
        host_os=host_os,
    )
    return ctx, out, clock


# --- cluster objects -------------------------------------------------------------------------

INSTANCE = "app.kubernetes.io/instance=mlkube"


def deployment(
    name: str,
    *,
    replicas: int = 2,
    available: int | None = None,
    updated: int | None = None,
    current: int | None = None,
    version: str | None = None,
    labels: dict[str, str] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    # Pinned as the operator pins: the serving container's MODEL_VERSION and the annotation.
    annotations = {"mlkube.io/model-version": version} if version else {}
    env = [{"name": "MODEL_NAME", "value": "iris-classifier"}]
    env += [{"name": "MODEL_VERSION", "value": version}] if version else []
    return {
        "metadata": {"name": name, "generation": generation, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/component": "serving",
                    "app.kubernetes.io/instance": "mlkube",
                }
            },
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "containers": [{"name": "serve", "image": "mlkube-serve:0.1.0", "env": env}]
                },
            },
        },
        "status": {
            "observedGeneration": generation,
            "replicas": replicas if current is None else current,
            "updatedReplicas": replicas if updated is None else updated,
            "availableReplicas": replicas if available is None else available,
            "readyReplicas": replicas if available is None else available,
        },
    }


def service(name: str = "mlkube-mlflow", port: int = 5000) -> dict[str, Any]:
    """A Service as `kubectl get -o json` lists it: its port `http` in front of the pods' 5000."""
    return {
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": port, "targetPort": 5000, "protocol": "TCP"}]},
    }


TRAINING_ENV = [
    {"name": "MLFLOW_TRACKING_URI", "value": "http://mlkube-mlflow.mlkube.svc:5000"},
    {"name": "MODEL_NAME", "value": "iris-classifier"},
    {"name": "TRAIN_TRIGGER", "value": "cron"},
    {"name": "TRAIN_CONNECT_TIMEOUT", "value": "120"},
]


def job_from_cronjob(words: list[str]) -> Result:
    """What ``kubectl create job NAME --from=cronjob/CRON --dry-run=client -o json`` prints: the
    CronJob's job template under the new name, owned by the CronJob, its pod as the chart's (a
    `train` container whose env says TRAIN_TRIGGER=cron)."""
    name = words[3]
    cronjob = next(w for w in words if w.startswith("--from=")).split("/", 1)[1]
    return obj(
        apiVersion="batch/v1",
        kind="Job",
        metadata={
            "name": name,
            "namespace": "mlkube",
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "labels": {"app.kubernetes.io/component": "training"},
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob, "uid": "u-1"}
            ],
        },
        spec={
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/component": "training"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "train",
                            "image": "mlkube-train:0.1.0",
                            "command": ["python", "-m", "jobs.train"],
                            "env": [dict(e) for e in TRAINING_ENV],
                        }
                    ],
                },
            },
        },
        status={},
    )


def ingress(
    name: str = "mlkube-serving", ip: str | None = "172.18.0.5", host: str | None = None
) -> dict[str, Any]:
    status = {"loadBalancer": {"ingress": [{"ip": ip}]}} if ip else {}
    rule: dict[str, Any] = {"http": {"paths": [{"path": "/"}]}}
    if host:
        rule["host"] = host
    return {"metadata": {"name": name}, "spec": {"rules": [rule]}, "status": status}
