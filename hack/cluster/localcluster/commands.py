"""What `cluster.py up`, `down`, `status`, `images` and `build` do, each over the one ordered
component list (:data:`localcluster.components.COMPONENTS`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from localcluster import network, pki
from localcluster.components import down_order, status_order, up_order
from localcluster.components.base import Component
from localcluster.host import ClusterError, Host, alive
from localcluster.images import image_refs, import_images


def need_root(why: str) -> None:
    if os.geteuid() != 0:
        raise ClusterError(why)


def build(host: Host) -> None:
    """hack/cluster/build.sh, told which optional components this node mode needs."""
    cfg = host.cfg
    host.say(f"binaries: {cfg.bin} (hack/cluster/build.sh)")
    env = dict(os.environ)
    if cfg.node_mode != "kwok":
        env.setdefault("MLKUBE_CLUSTER_KWOK", "0")
    if cfg.node_mode != "real":
        env.setdefault("MLKUBE_CLUSTER_INGRESS", "0")
    t = host.elapsed()
    p = subprocess.run(["bash", str(cfg.here / "build.sh")], env=env, check=False)
    if p.returncode != 0:
        raise ClusterError("hack/cluster/build.sh failed (see above)")
    host.say(f"binaries ready ({host.elapsed() - t:.1f}s)")


def start_component(host: Host, c: Component) -> None:
    reason = c.skip(host.cfg)
    if reason:
        host.say(f"{c.name}: {reason}")
        return
    c.prepare(host)
    host.start(c.name, c.command(host.cfg))
    c.started(host)
    for r in c.ready(host):
        host.wait_for(c.name, r.check, r.timeout, r.what)
    c.after_ready(host)


def default_service_account(host: Host) -> bool:
    items = host.api_json("/api/v1/namespaces/default/serviceaccounts")["items"]
    return any(s["metadata"]["name"] == "default" for s in items)


def up(host: Host, images: bool = True, build_first: bool = True) -> None:
    cfg = host.cfg
    need_root("the local cluster needs root (it runs containerd, the kubelet and iptables)")
    if build_first:
        build(host)
    host.say(f"up: Kubernetes {cfg.k8s_version}, node mode {cfg.node_mode}, state {cfg.state}")
    for d in (cfg.state, cfg.run, cfg.logs):
        d.mkdir(parents=True, exist_ok=True)
    pki.make_pki(host)
    pki.write_kubeconfig(cfg, cfg.kubeconfig, "admin")
    network.save_and_set_sysctls(host)
    network.setup_network(host)
    for c in up_order(cfg.node_mode):
        start_component(host, c)
    host.wait_for(
        "kube-controller-manager",
        lambda: default_service_account(host),
        60,
        "default ServiceAccount created",
    )
    if images and cfg.node_mode == "real":
        import_images(host, image_refs(host))
    host.say(f"cluster up in {host.elapsed():.1f}s; export KUBECONFIG={cfg.kubeconfig}")


def down(host: Host, purge: bool = False) -> None:
    cfg = host.cfg
    need_root("needs root")
    host.say(f"down: state {cfg.state}")
    # 1. the components, last started first (the kubelet before containerd, which removes the
    # pods through the CRI before it stops, so that CNI DEL frees their addresses and veths)
    for c in down_order():
        c.before_stop(host)
        host.stop(c.name)
    # 2. leftovers: shims of our containerd, processes in the kubelet's cgroups
    for pid in network.our_shims(cfg.containerd_sock):
        host.say(f"killing leftover shim {pid}")
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    n = network.kill_cgroup_tree("kubepods")
    if n:
        host.say(f"killed {n} leftover container processes (cgroup kubepods)")
    # 3. mounts under the state dir (volumes, rootfs, shm, netns)
    prefixes = [str(cfg.state), str(cfg.image_store)]
    for _attempt in range(3):
        mps = network.mounts_under(prefixes)
        if not mps:
            break
        for mp in mps:
            if host.run(["umount", mp], check=False).returncode != 0:
                host.run(["umount", "-l", mp], check=False)
        host.say(f"unmounted {len(mps)} mounts under {cfg.state}")
    left = network.mounts_under(prefixes)
    if left:
        raise ClusterError(f"mounts left under {cfg.state}: {left[:5]}")
    # 4. interfaces: veths on our bridge, then the bridge
    if network.link_exists(cfg.bridge):
        for brif in Path(f"/sys/class/net/{cfg.bridge}/brif").iterdir():
            host.run(["ip", "link", "del", brif.name], check=False)
        host.run(["ip", "link", "del", cfg.bridge], check=False)
        host.say(f"network: deleted bridge {cfg.bridge}")
    # 5. iptables, sysctls
    network.iptables_cleanup(host)
    network.restore_sysctls(host)
    if cfg.state.exists():
        shutil.rmtree(cfg.state, ignore_errors=False)
        host.say(f"removed {cfg.state}")
    if purge and cfg.image_store.exists():
        shutil.rmtree(cfg.image_store)
        host.say(f"removed the image store {cfg.image_store}")
    elif cfg.image_store.exists():
        host.say(f"kept the image store {cfg.image_store} (down --purge removes it)")
    host.say(f"cluster down in {host.elapsed():.1f}s")


def status_lines(host: Host) -> list[str]:
    """One line per component that has a pidfile, in the components' order."""
    lines = []
    for c in status_order():
        pid = host.read_pid(c.name)
        if pid:
            lines.append(f"{c.name:24} pid {pid:<7} {'running' if alive(pid) else 'DEAD'}")
    return lines


def status(host: Host) -> None:
    lines = status_lines(host)
    if lines:
        print("\n".join(lines), file=host.out)
        print(host.kubectl("get", "nodes", "-o", "wide", check=False).stdout, file=host.out)
        print(f"export KUBECONFIG={host.cfg.kubeconfig}", file=host.out)
    else:
        print(f"no cluster (state {host.cfg.state})", file=host.out)
