"""``make bench-cluster``: how long the local cluster and mlkube on it take, and how a rollout
behaves, measured on this machine (figures, not pass/fail: the tests of `make test` assert).

    python -m bench.cluster [--markdown results.md]

In order: the cluster's binaries (`hack/cluster/build.sh`: cold when its cache is empty, else a
cache check), a start of the cluster (`cluster.py up`, warm: what a second `make test` pays),
`mlkube deploy --env local`, then `... e2e --env local`, whose rollout runs under
two bounded loads (through the Ingress and from a pod to the Service): its time from the
promotion to every replica on the new version (the operator hears of it by MLflow's webhook) and
the failed requests. Then the webhook is removed and the alias moved back, so that only the
operator's poll sees it: the time to every replica on that version. The cluster is stopped at
the end unless it was already running."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from deploy.kubectl import Kubectl, cluster_answers
from deploy.localenv import cluster_script, read_local_cluster
from deploy.shell import SubprocessCommands
from mlkube.core.deployment import Phase, pinned_version, rollout_phase

REPO = Path(__file__).resolve().parents[1]
CLUSTER = [sys.executable, str(cluster_script(REPO))]
NAMESPACE, RELEASE, MODEL = "mlkube-bench", "bench", "iris-classifier"
WORK = REPO / ".mlkube" / "bench-cluster"
# Its kubeconfig and build cache, as `cluster.py env --json` reports them (MLKUBE_CLUSTER_STATE
# and MLKUBE_CLUSTER_CACHE included).
LOCAL = read_local_cluster(SubprocessCommands(), cluster_script(REPO))
KUBE = Kubectl(SubprocessCommands(log_dir=WORK), "kubectl", kubeconfig=LOCAL.kubeconfig)


def timed(what: str, argv: list[str], log: Path) -> tuple[float, str]:
    sys.stdout.write(f"==> {what}: {' '.join(argv[:6])} ... (log {log})\n")
    sys.stdout.flush()
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False)
    took = time.monotonic() - started
    text = log.read_text(errors="replace")
    if code.returncode != 0:
        sys.stdout.write(text[-3000:])
        raise SystemExit(f"{what} failed (exit {code.returncode}) after {took:.0f}s")
    sys.stdout.write(f"    {took:.1f}s\n")
    return took, text


def poll_rollout(version: str, timeout: float = 900) -> float:
    """Seconds until the serving Deployment pins ``version`` and its rollout is complete."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        deps = KUBE.json("get", "deploy", "-n", NAMESPACE, "-l", "mlkube.io/model-name", timeout=60)
        dep = deps["items"][0]
        if pinned_version(dep) == version and rollout_phase(dep) is Phase.COMPLETE:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"version {version} was not rolled out within {timeout:.0f}s")


def poll_only_rollout() -> tuple[str, float]:
    """Remove MLflow's webhooks, move the alias back to the previous version; the operator
    sees it only by polling."""
    from mlflow import MlflowClient

    svc = KUBE.json(
        "get", "svc", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=mlflow", timeout=60
    )
    name = svc["items"][0]["metadata"]["name"]
    port = svc["items"][0]["spec"]["ports"][0]["port"]
    with KUBE.forwarding(NAMESPACE, f"svc/{name}", port) as forward:
        client = MlflowClient(forward.url)
        for hook in client.list_webhooks():
            client.delete_webhook(hook.webhook_id)
        current = client.get_model_version_by_alias(MODEL, "production").version
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
        target = str(max(v for v in versions if str(v) != str(current)))
        client.set_registered_model_alias(MODEL, "production", target)
        return target, poll_rollout(target)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description="Figures of the local cluster and of mlkube on it (make bench-cluster).",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    cold = not any((LOCAL.cache / "stamps").glob("kube-*"))
    took, _ = timed("binaries", [*CLUSTER, "build"], WORK / "build.log")
    rows.append((f"binaries ({'cold build' if cold else 'cached'})", f"{took:.0f} s"))
    was_up = cluster_answers(KUBE, LOCAL.kubeconfig)
    if was_up:
        timed("stopping the running cluster", [*CLUSTER, "down"], WORK / "down.log")
    took, _ = timed("cluster start", [*CLUSTER, "up", "--no-images"], WORK / "up.log")
    rows.append(("cluster start, warm (`cluster.py up`)", f"{took:.1f} s"))
    try:
        deploy = [sys.executable, "-m", "mlkube"]
        target = ["--env", "local", "--namespace", NAMESPACE, "--release", RELEASE]
        took, _ = timed("deploy", [*deploy, "deploy", *target], WORK / "deploy.log")
        rows.append(("deploy (images built, imported, chart, first training)", f"{took:.0f} s"))
        took, out = timed("e2e", [*deploy, "e2e", *target], WORK / "e2e.log")
        rows.append(("e2e (`make e2e ENV=local`)", f"{took:.0f} s"))
        rolled = re.search(r"rolled out in ([\d.]+)s", out)
        rows.append(
            ("promotion -> every replica on it (webhook)", f"{rolled[1]} s" if rolled else "?")
        )
        for name in ("load", "in-cluster load"):
            found = re.search(rf"^ +{name} during the rollout: (.*)$", out, re.M)
            rows.append((f"{name} during that rollout", found[1] if found else "?"))
        version, took = poll_only_rollout()
        rows.append((f"alias move -> every replica on v{version} (poll only)", f"{took:.1f} s"))
    finally:
        if not was_up:
            timed("cluster stop", [*CLUSTER, "down"], WORK / "down.log")
    load = Path("/proc/loadavg").read_text().split()[0]
    title = f"mlkube on the local cluster, {date.today()}, 1-minute load {load}"
    table = [title, "", "| what | figure |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)]
    sys.stdout.write("\n" + "\n".join(table) + "\n")
    if args.markdown:
        args.markdown.write_text("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
