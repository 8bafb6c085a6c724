"""A single-node Kubernetes cluster made of host processes, for tests.

    python3 hack/cluster/cluster.py up        # build (once), start, wait for the node Ready
    python3 hack/cluster/cluster.py images    # import the mlkube images into the node
    python3 hack/cluster/cluster.py status
    python3 hack/cluster/cluster.py env --json   # kubeconfig, context, logs, cache, state
    python3 hack/cluster/cluster.py down      # stop everything, leave nothing behind

Binaries come from hack/cluster/build.sh (a cache outside the repository, keyed
by the Kubernetes version). Everything runs as root on this host:

    etcd            127.0.0.1:23790 (plain HTTP, loopback only)
    kube-apiserver  NODE_IP:6443 (RBAC + Node authorizer, ServiceAccount tokens)
    controller-manager, scheduler   127.0.0.1 (secure ports 10257, 10259)
    containerd + runc, kubelet (cgroupfs, cgroup v1 allowed), CNI bridge
    kube-proxy (iptables mode), CoreDNS (host process on NODE_IP:53),
    local-path-provisioner, Traefik (NODE_IP:80)

NODE_IP is the gateway address of the pod bridge the harness creates
(MLKUBE_CLUSTER_NODE_IP, default 10.244.0.1): pods reach the API server and DNS
through it, and nothing listens on the host's real interfaces. Pods cannot send
traffic off the host (a REJECT rule for pod traffic leaving the pod network).

MLKUBE_CLUSTER_NODE selects the node: "real" (default: containerd + kubelet),
"kwok" (a fake node run by kwok: the control plane only) or "none".

State, logs, certificates and the kubeconfig live under
${MLKUBE_CLUSTER_STATE:-/var/tmp/mlkube-cluster}; `down` removes all of it.
`env` prints where they are, for other tools (as `kind get kubeconfig` does).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

from localcluster import commands
from localcluster.config import Config, ConfigError
from localcluster.host import ClusterError, Host
from localcluster.images import image_refs, import_images

ENV_KEYS = ("kubeconfig", "context", "logs", "cache", "state")


def env_text(cfg: Config, key: str | None = None, as_json: bool = False) -> str:
    """What `env` prints: one value (``env kubeconfig``), every one as JSON (``--json``), or
    ``key=value`` lines."""
    values = cfg.env()
    if key:
        return values[key]
    if as_json:
        return json.dumps(values, indent=1)
    return "\n".join(f"{k}={v}" for k, v in values.items())


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cluster.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument(
        "--images",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="import the mlkube images into the node (default on)",
    )
    up.add_argument(
        "--build",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run hack/cluster/build.sh first (a no-op when the cache is complete)",
    )
    down = sub.add_parser("down")
    down.add_argument(
        "--purge", action="store_true", help="also remove the image store (containerd root)"
    )
    sub.add_parser("status")
    im = sub.add_parser("images")
    im.add_argument("refs", nargs="*", help="image refs (default: the four mlkube images)")
    im.add_argument(
        "--engine",
        choices=("podman", "docker"),
        default="podman",
        help="the engine whose images are imported (default podman)",
    )
    sub.add_parser("build")
    env = sub.add_parser(
        "env", help="where this cluster's kubeconfig, logs, cache and state are (nothing started)"
    )
    env.add_argument("key", nargs="?", choices=ENV_KEYS, help="print this one value only")
    env.add_argument("--json", action="store_true", help="all of them as one JSON object")
    return ap


def run(args: argparse.Namespace, cfg: Config, out: IO[str] | None = None) -> None:
    host = Host(cfg, out)
    if args.cmd == "up":
        commands.up(host, images=args.images, build_first=args.build)
    elif args.cmd == "down":
        commands.down(host, purge=args.purge)
    elif args.cmd == "status":
        commands.status(host)
    elif args.cmd == "images":
        import_images(host, args.refs or image_refs(host), engine=args.engine)
    elif args.cmd == "build":
        commands.build(host)
    elif args.cmd == "env":
        print(env_text(cfg, args.key, args.json), file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = Config.from_env()
    except ConfigError as e:
        print(f"[cluster] FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    try:
        run(args, cfg)
    except ClusterError as e:
        print(f"\n[cluster] FAILED: {e}", file=sys.stderr, flush=True)
        if args.cmd == "up":
            print(
                f"[cluster] logs: {cfg.logs}; stop what did start with `make cluster-down`",
                file=sys.stderr,
            )
        return 1
    return 0
