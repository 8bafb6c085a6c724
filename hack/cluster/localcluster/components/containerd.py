"""containerd (with Debian's runc) on a socket under the state dir; its root, the image store,
lives in the cache and outlives `down`. The CNI config (bridge + host-local) is written here,
since the CRI plugin reads it."""

from __future__ import annotations

import shutil
import time

from localcluster import templates
from localcluster.components.base import Argv, Component, Readiness
from localcluster.config import Config
from localcluster.host import Host, alive


def config_file(cfg: Config) -> str:
    return str(cfg.state / "containerd" / "config.toml")


def cni_conf_dir(cfg: Config) -> str:
    return str(cfg.state / "cni" / "net.d")


def config_toml(cfg: Config) -> str:
    return templates.config(
        "containerd.toml",
        root=cfg.image_store,
        state=cfg.state / "containerd" / "state",
        sock=cfg.containerd_sock,
        pause_image=cfg.pause_image,
        runc=shutil.which("runc") or "/usr/sbin/runc",
        cni_bin=cfg.cni_bin,
        cni_conf_dir=cni_conf_dir(cfg),
    )


def cni_conflist(cfg: Config) -> str:
    return templates.config(
        "10-mlkube.conflist",
        bridge=cfg.bridge,
        pod_cidr=cfg.pod_cidr,
        node_ip=cfg.node_ip,
        ipam_dir=cfg.state / "cni" / "ipam",
    )


def command(cfg: Config) -> Argv:
    return [cfg.bin / "containerd", f"--config={config_file(cfg)}", "--log-level=warn"]


def prepare(host: Host) -> None:
    cfg = host.cfg
    net_d = cfg.state / "cni" / "net.d"
    net_d.mkdir(parents=True, exist_ok=True)
    (net_d / "10-mlkube.conflist").write_text(cni_conflist(cfg))
    cfg.containerd_sock.parent.mkdir(parents=True, exist_ok=True)
    (cfg.state / "containerd").mkdir(parents=True, exist_ok=True)
    (cfg.state / "containerd" / "config.toml").write_text(config_toml(cfg))


def ready(host: Host) -> list[Readiness]:
    return [
        Readiness(
            lambda: host.ctr("version", timeout=10).returncode == 0,
            60,
            f"serving on {host.cfg.containerd_sock}",
        )
    ]


def import_node_images(host: Host) -> None:
    """The pod sandbox and the volume helper: built by build.sh, no registry serves them."""
    cfg = host.cfg
    have = host.ctr("images", "ls", "-q").stdout.split()
    node_images = {
        cfg.pause_image: "pause.tar",
        cfg.local_path_helper_image: "local-path-helper.tar",
    }
    for image, tar in node_images.items():
        if image not in have:
            t = time.monotonic()
            host.ctr("images", "import", str(cfg.cache / "images" / tar))
            host.say(f"containerd: imported {image} ({time.monotonic() - t:.1f}s)")


def remove_pods(host: Host) -> None:
    """Let the runtime stop the pods (the kubelet is stopped already), so that CNI DEL frees
    their addresses and veths."""
    pid = host.read_pid("containerd")
    if not (pid and alive(pid) and (host.cfg.bin / "crictl").exists()):
        return
    crictl = [*host.crictl(), "--timeout=20s"]
    pods = host.run([*crictl, "pods", "-q"], check=False, timeout=30).stdout.split()
    if pods:
        host.say(f"containerd: stopping and removing {len(pods)} pod sandboxes")
        host.run([*crictl, "stopp", *pods], check=False, timeout=120)
        host.run([*crictl, "rmp", "-f", *pods], check=False, timeout=120)


COMPONENT = Component(
    "containerd",
    command,
    ready,
    nodes=("real",),
    prepare=prepare,
    after_ready=import_node_images,
    before_stop=remove_pods,
)
