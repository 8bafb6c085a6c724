"""A bounded load from inside the cluster: during the e2e rollout, a pod running the serving
image's Python sends requests to the serving Service (pod to Service, as other workloads in the
cluster reach the model) and reports how many failed.

The pod stops when told (a file it looks for), after ``max_seconds`` or after 100,000 requests,
whichever comes first, prints one JSON line, and exits."""

from __future__ import annotations

import json

from mlkube.deploy import objects
from mlkube.deploy.context import Ctx, wait_for
from mlkube.deploy.ingress import SAMPLE_REQUEST
from mlkube.deploy.load import LoadReport
from mlkube.deploy.shell import StepFailed

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


def serving_url(ctx: Ctx) -> str:
    service = objects.find_one(
        ctx, "service", objects.release_selector(ctx.opts.release, "serving"), "serving Service"
    )
    return f"http://{objects.name_of(service)}:{objects.service_port(service)}/invocations"


def start(ctx: Ctx, image: str, max_seconds: float) -> None:
    """The load pod, Ready and sending; deleted by the e2e's cleanups whatever happens."""
    ns = ctx.opts.namespace
    ctx.kubectl("delete", "pod", POD, "-n", ns, "--ignore-not-found", "--wait=true")
    ctx.kubectl(
        "run", POD, "-n", ns, "--restart=Never", f"--image={image}",
        "--image-pull-policy=IfNotPresent", "--labels=app.kubernetes.io/name=mlkube-e2e-load",
        "--command", "--", "python", "-c", SCRIPT,
        serving_url(ctx), str(int(max_seconds)), json.dumps(SAMPLE_REQUEST),
    )  # fmt: skip

    def delete() -> None:
        ctx.kubectl("delete", "pod", POD, "-n", ns, "--wait=false", check=False)

    ctx.state.e2e.cleanups.append(delete)
    ctx.kubectl("wait", "-n", ns, f"pod/{POD}", "--for=condition=Ready", "--timeout=180s",
                timeout=200)  # fmt: skip


def stop(ctx: Ctx) -> LoadReport:
    ns = ctx.opts.namespace
    # It may have stopped by itself (its own deadline): then there is nothing to tell.
    ctx.kubectl("exec", "-n", ns, POD, "--", "touch", STOP_FILE, check=False)

    def reported() -> dict[str, object] | None:
        return report_in(ctx.kubectl("logs", "-n", ns, POD, check=False).stdout)

    data = wait_for(ctx, f"the report of pod/{POD}", reported, timeout=60, interval=1)
    try:
        return LoadReport(
            sent=int(str(data["sent"])),
            failed=int(str(data["failed"])),
            errors=[str(e) for e in data.get("errors") or []],  # type: ignore[attr-defined]
        )
    except (KeyError, ValueError) as exc:
        raise StepFailed(f"pod/{POD} reported {data!r}") from exc
