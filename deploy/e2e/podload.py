"""A bounded load from inside the cluster: during the e2e rollout, a pod running the serving
image's Python sends requests to the serving Service (pod to Service, as other workloads in the
cluster reach the model) and reports how many failed.

The pod stops when told (a file it looks for), after ``max_seconds`` or after 100,000 requests,
whichever comes first, prints one JSON line, and exits. :class:`LoadPod` needs no ``Ctx``: the
cluster tests run the same pod (they wait for it in their own way)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from deploy import objects
from deploy.context import Ctx, wait_for
from deploy.e2e.load import LoadReport
from deploy.ingress import SAMPLE_REQUEST
from deploy.kubectl import Kubectl
from deploy.shell import StepFailed

POD = "mlkube-e2e-load"
STOP_FILE = "/tmp/stop"
SCRIPT = """
import json, os, sys, time, urllib.request as u
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
body = sys.argv[3].encode()
sent = failed = 0
errors = []
while time.monotonic() < deadline and sent < 100000 and not os.path.exists(STOP_FILE):
    sent += 1
    try:
        req = u.Request(url, data=body, headers={'Content-Type': 'application/json'})
        error = None if u.urlopen(req, timeout=10).status == 200 else 'not 200'
    except Exception as exc:
        error = type(exc).__name__ + ': ' + str(exc)
    if error:
        failed += 1
        errors.append(time.strftime('%H:%M:%S ') + error[:200])
    time.sleep(0.02)
print(json.dumps({'sent': sent, 'failed': failed, 'errors': errors[:20]}), flush=True)
""".replace("STOP_FILE", repr(STOP_FILE))


def report_in(logs: str) -> dict[str, object] | None:
    """The JSON report the load pod prints last, from its logs; None until it printed it."""
    lines = [line for line in logs.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


@dataclass(frozen=True)
class LoadPod:
    """The load pod ``name`` in ``namespace``: created, waited for, told to stop, read, deleted."""

    kube: Kubectl
    namespace: str
    name: str = POD

    def create(
        self,
        image: str,
        url: str,
        max_seconds: float,
        *,
        pull: str = "IfNotPresent",
        label: str = "mlkube-e2e-load",
    ) -> None:
        """Sending to ``url`` (on the serving image, whose Python runs the script)."""
        self.kube.run(
            "run",
            self.name,
            "-n",
            self.namespace,
            "--restart=Never",
            f"--image={image}",
            f"--image-pull-policy={pull}",
            f"--labels=app.kubernetes.io/name={label}",
            "--command",
            "--",
            "python",
            "-c",
            SCRIPT,
            url,
            str(int(max_seconds)),
            json.dumps(SAMPLE_REQUEST),
        )

    def wait_ready(self) -> None:
        self.kube.run(
            "wait",
            "-n",
            self.namespace,
            f"pod/{self.name}",
            "--for=condition=Ready",
            "--timeout=180s",
            timeout=200,
        )

    def stop(self) -> None:
        # It may have stopped by itself (its own deadline): then there is nothing to tell.
        self.kube.run(
            "exec", "-n", self.namespace, self.name, "--", "touch", STOP_FILE, check=False
        )

    def report(self) -> dict[str, object] | None:
        """Its report, once it printed it (after :meth:`stop`); None until then."""
        return report_in(self.kube.run("logs", "-n", self.namespace, self.name, check=False).stdout)

    def delete(self, *, wait: bool = False, check: bool = False) -> None:
        """Delete the pod; ``wait``: one perhaps left by an earlier run, until it is gone, so a
        new one can take its name."""
        how = ("--ignore-not-found", "--wait=true") if wait else ("--wait=false",)
        self.kube.run("delete", "pod", self.name, "-n", self.namespace, *how, check=check)


def serving_url(ctx: Ctx) -> str:
    service = objects.find_one(
        ctx, "service", objects.release_selector(ctx.opts.release, "serving"), "serving Service"
    )
    return f"http://{objects.name_of(service)}:{objects.service_port(service)}/invocations"


def start(ctx: Ctx, image: str, max_seconds: float) -> None:
    """The load pod, Ready and sending; deleted by the e2e's cleanups whatever happens."""
    pod = LoadPod(ctx.kube, ctx.opts.namespace)
    pod.delete(wait=True, check=True)  # a pod left by an earlier run
    pod.create(image, serving_url(ctx), max_seconds)
    ctx.state.e2e.cleanups.append(pod.delete)
    pod.wait_ready()


def stop(ctx: Ctx) -> LoadReport:
    pod = LoadPod(ctx.kube, ctx.opts.namespace)
    pod.stop()
    data = wait_for(ctx, f"the report of pod/{POD}", pod.report, timeout=60, interval=1)
    try:
        return LoadReport(
            sent=int(str(data["sent"])),
            failed=int(str(data["failed"])),
            errors=[str(e) for e in data.get("errors") or []],  # type: ignore[attr-defined]
        )
    except (KeyError, ValueError) as exc:
        raise StepFailed(f"pod/{POD} reported {data!r}") from exc
