"""Where the local cluster of hack/cluster keeps its kubeconfig, logs, cache and state, as
``hack/cluster/cluster.py env --json`` reports them (in the spirit of `kind get kubeconfig`):
the deploy driver, the cluster tests and the bench ask it, instead of copying its paths and
the ``MLKUBE_CLUSTER_*`` defaults behind them."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.shell import Commands, StepFailed

KEYS = ("kubeconfig", "context", "logs", "cache", "state")


@dataclass(frozen=True)
class LocalCluster:
    kubeconfig: Path  # the admin kubeconfig `up` writes
    context: str  # its kube-context
    logs: Path  # <component>.log of every process
    cache: Path  # the build cache of its Kubernetes version (bin/, images/, stamps/)
    state: Path  # everything `down` removes

    @classmethod
    def from_json(cls, text: str) -> LocalCluster:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"`cluster.py env --json` printed no JSON: {text[:200]!r}") from exc
        missing = [key for key in KEYS if not isinstance(data, dict) or key not in data]
        if missing:
            raise ValueError(f"`cluster.py env --json` lacks {', '.join(missing)}: {text[:200]!r}")
        return cls(
            kubeconfig=Path(data["kubeconfig"]),
            context=str(data["context"]),
            logs=Path(data["logs"]),
            cache=Path(data["cache"]),
            state=Path(data["state"]),
        )


def cluster_script(repo: Path) -> Path:
    return repo / "hack" / "cluster" / "cluster.py"


def read_local_cluster(cmds: Commands, script: Path, python: str = sys.executable) -> LocalCluster:
    """Ask ``cluster.py env --json`` (starts nothing, needs no root); StepFailed says why not."""
    result = cmds.run([python, str(script), "env", "--json"], check=False, timeout=60)
    if not result.ok:
        raise StepFailed(
            f"{script} env --json exited {result.returncode}: {result.stderr.strip()[-500:]}"
        )
    try:
        return LocalCluster.from_json(result.stdout)
    except ValueError as exc:
        raise StepFailed(str(exc)) from exc
