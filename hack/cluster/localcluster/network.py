"""The host around the cluster: sysctls (saved, set, restored), the pod bridge and the egress
guard, and what `down` sweeps up (shims, cgroups, mounts, links, iptables chains)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

from localcluster.config import EGRESS_CHAIN
from localcluster.host import Host

# Host sysctls the kubelet / networking need; the old values are restored by `down`.
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    # the kubelet sets these itself unless protectKernelDefaults; set here so
    # that `down` knows to restore them
    "vm.overcommit_memory": "1",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
}
# What a cluster without a real node (kwok, none) needs of them.
NETWORK_SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables")


def sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def save_and_set_sysctls(host: Host) -> None:
    saved = host.cfg.state / "sysctl.orig.json"
    orig = json.loads(saved.read_text()) if saved.exists() else {}
    for key, value in SYSCTLS.items():
        if host.cfg.node_mode != "real" and key not in NETWORK_SYSCTLS:
            continue
        p = sysctl_path(key)
        if not p.exists():
            host.say(f"sysctl {key}: not present on this kernel (skipped)")
            continue
        orig.setdefault(key, p.read_text().strip())
        if p.read_text().strip() != value:
            p.write_text(value)
    saved.write_text(json.dumps(orig, indent=1))


def restore_sysctls(host: Host) -> None:
    saved = host.cfg.state / "sysctl.orig.json"
    if not saved.exists():
        return
    values: dict[str, str] = json.loads(saved.read_text())
    for key, value in values.items():
        try:
            sysctl_path(key).write_text(value)
        except OSError as e:
            host.say(f"sysctl {key}: could not restore {value!r}: {e}")
    host.say("sysctls restored: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def setup_network(host: Host) -> None:
    """The pod bridge with NODE_IP on it (it exists before any pod, since the API
    server and DNS listen there), and the egress guard."""
    cfg, run = host.cfg, host.run
    bridge, pods = cfg.bridge, str(cfg.pod_cidr)
    if not link_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge"])
    prefix = cfg.pod_cidr.prefixlen
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", bridge]).stdout
    if f" {cfg.node_ip}/" not in addrs:
        run(["ip", "addr", "add", f"{cfg.node_ip}/{prefix}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    # pods may talk to each other and to this host, never off it
    if run(["iptables", "-w", "-n", "-L", EGRESS_CHAIN], check=False).returncode != 0:
        run(["iptables", "-w", "-N", EGRESS_CHAIN])
    run(["iptables", "-w", "-F", EGRESS_CHAIN])
    run(["iptables", "-w", "-A", EGRESS_CHAIN, "-s", pods, "-d", pods, "-j", "ACCEPT"])
    run(["iptables", "-w", "-A", EGRESS_CHAIN, "-s", pods, "-j", "REJECT"])
    if run(["iptables", "-w", "-C", "FORWARD", "-j", EGRESS_CHAIN], check=False).returncode != 0:
        run(["iptables", "-w", "-I", "FORWARD", "1", "-j", EGRESS_CHAIN])
    host.say(
        f"network: bridge {bridge} {cfg.node_ip}/{prefix}, pods {pods}, "
        f"services {cfg.service_cidr}, egress guard {EGRESS_CHAIN}"
    )


# --- teardown


def mounts_under(prefixes: list[str]) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if any(mp == p or mp.startswith(p.rstrip("/") + "/") for p in prefixes):
            out.append(mp)
    return sorted(set(out), key=len, reverse=True)


def our_shims(sock: Path) -> list[int]:
    """containerd-shim processes started by *our* containerd (their -address names our socket)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(sock).encode() in argv:
            pids.append(int(d.name))
    return pids


def kill_cgroup_tree(rel: str) -> int:
    """Kill every process in the cgroup `rel` (all v1 hierarchies + the v2 tree),
    then remove the cgroups, deepest first. Returns the number of processes killed."""
    killed = 0
    roots = [p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    for root in roots:
        top = root / rel
        if not top.is_dir():
            continue
        for _ in range(3):
            procs: list[int] = []
            for f in top.rglob("cgroup.procs"):
                try:
                    procs += [int(x) for x in f.read_text().split()]
                except OSError:
                    pass
            for pid in set(procs):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            if not procs:
                break
            time.sleep(0.5)
        for d in [
            *sorted(
                (p for p in top.rglob("*") if p.is_dir()),
                key=lambda p: len(p.parts),
                reverse=True,
            ),
            top,
        ]:
            try:
                d.rmdir()
            except OSError:
                pass
    return killed


def iptables_cleanup(host: Host) -> None:
    """Remove the chains kube-proxy, the kubelet and this harness made (only those)."""
    run = host.run
    kube_proxy = host.cfg.bin / "kube-proxy"
    if kube_proxy.exists():
        p = run([str(kube_proxy), "--cleanup", "--v=0"], check=False, timeout=60)
        if p.returncode != 0:
            host.say(f"kube-proxy --cleanup: exit {p.returncode}: {p.stderr.strip()[-300:]}")
    for ipt in ("iptables", "ip6tables"):
        if not shutil.which(ipt):
            continue
        for table in ("filter", "nat", "mangle"):
            rules = run([ipt, "-w", "-t", table, "-S"], check=False).stdout.splitlines()
            ours = [
                r.split()[1]
                for r in rules
                if r.startswith("-N ")
                and (r.split()[1].startswith("KUBE-") or r.split()[1] == EGRESS_CHAIN)
            ]
            if not ours:
                continue
            # drop the jumps into our chains from the built-in chains, then the chains
            for r in rules:
                parts = r.split()
                if (
                    parts[0] == "-A"
                    and "-j" in parts
                    and parts[parts.index("-j") + 1] in ours
                    and parts[1] not in ours
                ):
                    run([ipt, "-w", "-t", table, "-D", *parts[1:]], check=False)
            for c in ours:
                run([ipt, "-w", "-t", table, "-F", c], check=False)
            for c in ours:
                run([ipt, "-w", "-t", table, "-X", c], check=False)
            host.say(f"{ipt} -t {table}: removed chains {' '.join(ours)}")
