#!/usr/bin/env python3
"""A single-node Kubernetes cluster made of host processes, for tests.

    python3 hack/cluster/cluster.py up        # build (once), start, wait for the node Ready
    python3 hack/cluster/cluster.py images    # import the mlkube images into the node
    python3 hack/cluster/cluster.py status
    python3 hack/cluster/cluster.py down      # stop everything, leave nothing behind

Binaries come from hack/cluster/build.sh (a cache outside the repository, keyed
by the Kubernetes version). Everything runs as root on this host:

    etcd            127.0.0.1:23790 (plain HTTP, loopback only)
    kube-apiserver  NODE_IP:6443 (RBAC + Node authorizer, ServiceAccount tokens)
    controller-manager, scheduler   127.0.0.1 (secure ports 10257, 10259)
    containerd + runc, kubelet (cgroupfs, cgroup v1 allowed), CNI bridge
    kube-proxy (iptables mode), CoreDNS (host process on NODE_IP:53)

NODE_IP is the gateway address of the pod bridge the harness creates
(MLKUBE_CLUSTER_NODE_IP, default 10.244.0.1): pods reach the API server and DNS
through it, and nothing listens on the host's real interfaces. Pods cannot send
traffic off the host (a REJECT rule for pod traffic leaving the pod network).

MLKUBE_CLUSTER_NODE selects the node: "real" (default: containerd + kubelet),
"kwok" (a fake node run by kwok: the control plane only) or "none".

State, logs, certificates and the kubeconfig live under
${MLKUBE_CLUSTER_STATE:-/var/tmp/mlkube-cluster}; `down` removes all of it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _versions() -> dict[str, str]:
    out = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


V = _versions()
K8S_VERSION = V["K8S_VERSION"]
PAUSE_IMAGE = V["PAUSE_IMAGE"]
LOCAL_PATH_HELPER_IMAGE = V["LOCAL_PATH_HELPER_IMAGE"]
CACHE = Path(os.environ.get("MLKUBE_CLUSTER_CACHE", "/var/cache/mlkube-cluster")) / K8S_VERSION
BIN = CACHE / "bin"
CNI_BIN = CACHE / "cni"
STATE = Path(os.environ.get("MLKUBE_CLUSTER_STATE", "/var/tmp/mlkube-cluster"))
RUN = STATE / "run"
LOGS = STATE / "logs"
PKI = STATE / "pki"
KUBECONFIG = STATE / "kubeconfig"
CONTEXT = "mlkube-local"  # the kube-context of every kubeconfig written here
# Where local-path-provisioner keeps the PersistentVolumes' data (removed by `down`).
VOLUMES = STATE / "volumes"
NODE_MODE = os.environ.get("MLKUBE_CLUSTER_NODE", "real")
NODE_NAME = os.environ.get("MLKUBE_CLUSTER_NODE_NAME", "mlkube-node")
POD_CIDR = ipaddress.ip_network(os.environ.get("MLKUBE_CLUSTER_POD_CIDR", "10.244.0.0/24"))
NODE_IP = os.environ.get("MLKUBE_CLUSTER_NODE_IP", str(POD_CIDR.network_address + 1))
SERVICE_CIDR = ipaddress.ip_network(os.environ.get("MLKUBE_CLUSTER_SERVICE_CIDR", "10.96.0.0/16"))
API_SERVICE_IP = str(SERVICE_CIDR.network_address + 1)
DNS_SERVICE_IP = str(SERVICE_CIDR.network_address + 10)
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = os.environ.get("MLKUBE_CLUSTER_BRIDGE", "mlkbr0")
API_PORT = int(os.environ.get("MLKUBE_CLUSTER_API_PORT", "6443"))
ETCD_PORT = int(os.environ.get("MLKUBE_CLUSTER_ETCD_PORT", "23790"))
API_URL = f"https://{NODE_IP}:{API_PORT}"
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
# containerd's root (content store, snapshots: the imported images) outlives
# `down`, so the next `up` has the images already; `down --purge` removes it.
CONTAINERD_ROOT = Path(os.environ.get("MLKUBE_CLUSTER_IMAGE_STORE", str(CACHE / "containerd-root")))
EGRESS_CHAIN = "MLKUBE-CLUSTER-EGRESS"
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

T0 = time.monotonic()


class ClusterError(RuntimeError):
    pass


def say(msg: str) -> None:
    print(f"[cluster {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def run(
    cmd: list[str], check: bool = True, capture: bool = True, timeout: float = 120, **kw
) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, text=True, capture_output=capture, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise ClusterError(
            f"{' '.join(map(str, cmd))} exited {p.returncode}: {(p.stderr or '').strip()[-2000:]}"
        )
    return p


def log_tail(name: str, n: int = 25) -> str:
    path = LOGS / f"{name}.log"
    if not path.exists():
        return f"    (no log at {path})"
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return "\n".join("    " + line for line in lines)


# ----------------------------------------------------------------------------
# processes


def pidfile(name: str) -> Path:
    return RUN / f"{name}.pid"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(name: str) -> int | None:
    try:
        return int(pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None


def start(name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    pid = read_pid(name)
    if pid and alive(pid):
        say(f"{name}: already running (pid {pid})")
        return pid
    if not Path(cmd[0]).exists():
        raise ClusterError(
            f"{name}: {cmd[0]} is missing: run hack/cluster/build.sh "
            "(or make cluster-up without --no-build)"
        )
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")
    log.write(f"\n==== {time.strftime('%F %T')} {' '.join(map(str, cmd))}\n".encode())
    log.flush()
    full_env = dict(os.environ)
    full_env["PATH"] = (
        f"{BIN}:{CNI_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    full_env.pop("KUBECONFIG", None)
    full_env.update(env or {})
    p = subprocess.Popen(
        [str(c) for c in cmd],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=full_env,
        start_new_session=True,
        cwd=str(STATE),
    )
    pidfile(name).write_text(f"{p.pid}\n")
    say(f"{name}: started (pid {p.pid}, log {LOGS / (name + '.log')})")
    return p.pid


def wait_for(name: str, check, timeout: float, what: str) -> None:
    """Poll check() until it returns truthy; fail naming the component, with its log."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        pid = read_pid(name)
        if pid is not None and not alive(pid):
            raise ClusterError(
                f"{name} exited while waiting for {what}; last lines of its log:\n{log_tail(name)}"
            )
        try:
            if check():
                say(f"{name}: {what} (after {time.monotonic() - T0:.1f}s total)")
                return
        except Exception as e:  # noqa: BLE001 - any failure just means "not yet"
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.5)
    raise ClusterError(
        f"{name} did not become ready ({what}) within {timeout:.0f}s"
        + (f"; last probe error: {last}" if last else "")
        + f"\nlast lines of {LOGS / (name + '.log')}:\n{log_tail(name)}"
    )


def stop(name: str, timeout: float = 20) -> None:
    pid = read_pid(name)
    if pid is None:
        return
    if alive(pid):
        say(f"{name}: stopping (pid {pid})")
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            except PermissionError:
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.2)
            if not alive(pid):
                break
        if alive(pid):
            raise ClusterError(f"{name} (pid {pid}) survived SIGKILL")
    # anything left in its process group
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    pidfile(name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------
# HTTP probes


def _ssl_ctx(client: str | None = "admin", verify: bool = True) -> ssl.SSLContext:
    ctx = (
        ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        if verify
        else ssl._create_unverified_context()
    )  # noqa: S323
    if client:
        ctx.load_cert_chain(str(PKI / f"{client}.crt"), str(PKI / f"{client}.key"))
    return ctx


def http_get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 3) -> tuple[int, str]:
    # never through an HTTP proxy from the environment: every address here is local
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def ok_200(url: str, ctx=None, body: str | None = None):
    def check():
        code, text = http_get(url, ctx)
        return code == 200 and (body is None or body in text)

    return check


def kubectl(
    *args: str, check: bool = True, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    exe = shutil.which("kubectl", path=f"{REPO / 'bin'}:{os.environ.get('PATH', '')}") or "kubectl"
    return run(
        [exe, f"--kubeconfig={KUBECONFIG}", *args], check=check, input=input, timeout=timeout
    )


def apply(manifest: str) -> None:
    kubectl("apply", "-f", "-", input=manifest)


def api_json(path: str) -> dict:
    code, text = http_get(API_URL + path, _ssl_ctx())
    if code != 200:
        raise ClusterError(f"GET {path}: {code} {text[:200]}")
    return json.loads(text)


# ----------------------------------------------------------------------------
# certificates (openssl; EC P-256 keys are fast)


def _openssl(*args: str) -> None:
    run(["openssl", *args])


def make_cert(
    name: str, cn: str, org: str | None = None, sans: list[str] | None = None, server: bool = False
) -> None:
    key, crt = PKI / f"{name}.key", PKI / f"{name}.crt"
    if crt.exists():
        return
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={'serverAuth,clientAuth' if server else 'clientAuth'}",
    ]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    with tempfile.NamedTemporaryFile("w", suffix=".ext", delete=False) as f:
        f.write("\n".join(ext) + "\n")
        extfile = f.name
    try:
        csr = PKI / f"{name}.csr"
        _openssl("req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr))
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(PKI / "ca.crt"),
            "-CAkey",
            str(PKI / "ca.key"),
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            extfile,
            "-out",
            str(crt),
        )
        csr.unlink()
    finally:
        os.unlink(extfile)


def make_pki() -> None:
    PKI.mkdir(parents=True, exist_ok=True)
    os.chmod(PKI, 0o700)
    if not (PKI / "ca.crt").exists():
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(PKI / "ca.key"))
        _openssl(
            "req",
            "-x509",
            "-new",
            "-key",
            str(PKI / "ca.key"),
            "-subj",
            "/CN=mlkube-cluster-ca",
            "-days",
            "365",
            "-sha256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-out",
            str(PKI / "ca.crt"),
        )
    if not (PKI / "sa.key").exists():
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(PKI / "sa.key"))
        _openssl("pkey", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub"))
    api_sans = [
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}",
        "IP:127.0.0.1",
        f"IP:{NODE_IP}",
        f"IP:{API_SERVICE_IP}",
    ]
    make_cert("apiserver", "kube-apiserver", sans=api_sans, server=True)
    make_cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
    make_cert("admin", "mlkube-admin", "system:masters")
    make_cert("controller-manager", "system:kube-controller-manager")
    make_cert("scheduler", "system:kube-scheduler")
    make_cert("kubelet", f"system:node:{NODE_NAME}", "system:nodes")
    make_cert(
        "kubelet-serving",
        NODE_NAME,
        sans=[f"DNS:{NODE_NAME}", f"IP:{NODE_IP}", "IP:127.0.0.1"],
        server=True,
    )
    make_cert("kube-proxy", "system:kube-proxy")
    make_cert("coredns", "mlkube:coredns")
    make_cert("kwok", "mlkube:kwok", "system:masters")
    make_cert("local-path", "mlkube:local-path")


def write_kubeconfig(path: Path, user: str) -> None:
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {API_URL}
    certificate-authority: {PKI / "ca.crt"}
users:
- name: {user}
  user:
    client-certificate: {PKI / (user + ".crt")}
    client-key: {PKI / (user + ".key")}
contexts:
- name: {CONTEXT}
  context: {{cluster: {CONTEXT}, user: {user}}}
current-context: {CONTEXT}
""")
    os.chmod(path, 0o600)


# ----------------------------------------------------------------------------
# host networking and sysctls


def sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def save_and_set_sysctls() -> None:
    saved = STATE / "sysctl.orig.json"
    orig = json.loads(saved.read_text()) if saved.exists() else {}
    for key, value in SYSCTLS.items():
        if NODE_MODE != "real" and key not in (
            "net.ipv4.ip_forward",
            "net.bridge.bridge-nf-call-iptables",
        ):
            continue
        p = sysctl_path(key)
        if not p.exists():
            say(f"sysctl {key}: not present on this kernel (skipped)")
            continue
        orig.setdefault(key, p.read_text().strip())
        if p.read_text().strip() != value:
            p.write_text(value)
    saved.write_text(json.dumps(orig, indent=1))


def restore_sysctls() -> None:
    saved = STATE / "sysctl.orig.json"
    if not saved.exists():
        return
    for key, value in json.loads(saved.read_text()).items():
        try:
            sysctl_path(key).write_text(value)
        except OSError as e:
            say(f"sysctl {key}: could not restore {value!r}: {e}")
    say(
        "sysctls restored: "
        + ", ".join(f"{k}={v}" for k, v in json.loads(saved.read_text()).items())
    )


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def setup_network() -> None:
    """The pod bridge with NODE_IP on it (it exists before any pod, since the API
    server and DNS listen there), and the egress guard."""
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    prefix = POD_CIDR.prefixlen
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE]).stdout
    if f" {NODE_IP}/" not in addrs:
        run(["ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    # pods may talk to each other and to this host, never off it
    if run(["iptables", "-w", "-n", "-L", EGRESS_CHAIN], check=False).returncode != 0:
        run(["iptables", "-w", "-N", EGRESS_CHAIN])
    run(["iptables", "-w", "-F", EGRESS_CHAIN])
    run(
        [
            "iptables",
            "-w",
            "-A",
            EGRESS_CHAIN,
            "-s",
            str(POD_CIDR),
            "-d",
            str(POD_CIDR),
            "-j",
            "ACCEPT",
        ]
    )
    run(["iptables", "-w", "-A", EGRESS_CHAIN, "-s", str(POD_CIDR), "-j", "REJECT"])
    if run(["iptables", "-w", "-C", "FORWARD", "-j", EGRESS_CHAIN], check=False).returncode != 0:
        run(["iptables", "-w", "-I", "FORWARD", "1", "-j", EGRESS_CHAIN])
    say(
        f"network: bridge {BRIDGE} {NODE_IP}/{prefix}, pods {POD_CIDR}, "
        f"services {SERVICE_CIDR}, egress guard {EGRESS_CHAIN}"
    )


# ----------------------------------------------------------------------------
# components


def start_etcd() -> None:
    (STATE / "etcd").mkdir(parents=True, exist_ok=True)
    start(
        "etcd",
        [
            BIN / "etcd",
            "--name=mlkube",
            f"--data-dir={STATE / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PORT + 10}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PORT + 10}",
            f"--initial-cluster=mlkube=http://127.0.0.1:{ETCD_PORT + 10}",
            "--listen-metrics-urls=",
            "--quota-backend-bytes=2147483648",
            "--snapshot-count=10000",
            "--log-level=warn",
            "--unsafe-no-fsync=true",  # a throwaway test cluster: speed over durability
        ],
    )
    wait_for(
        "etcd",
        ok_200(f"http://127.0.0.1:{ETCD_PORT}/health", body='"health":"true"'),
        60,
        "healthy",
    )


def start_apiserver() -> None:
    start(
        "kube-apiserver",
        [
            BIN / "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            f"--bind-address={NODE_IP}",
            f"--advertise-address={NODE_IP}",
            f"--secure-port={API_PORT}",
            f"--tls-cert-file={PKI / 'apiserver.crt'}",
            f"--tls-private-key-file={PKI / 'apiserver.key'}",
            f"--client-ca-file={PKI / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # /healthz /readyz /livez only (RBAC: system:public-info-viewer)
            "--anonymous-auth=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={PKI / 'sa.pub'}",
            f"--service-account-signing-key-file={PKI / 'sa.key'}",
            f"--kubelet-client-certificate={PKI / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={PKI / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={PKI / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--allow-privileged=true",
            "--profiling=false",
            "--enable-priority-and-fairness=false",
            "--event-ttl=30m",
            "--v=1",
        ],
    )
    wait_for("kube-apiserver", ok_200(f"{API_URL}/readyz", _ssl_ctx()), 120, f"ready at {API_URL}")


def _component_kubeconfig(user: str) -> Path:
    p = STATE / f"{user}.kubeconfig"
    write_kubeconfig(p, user)
    return p


def start_controller_manager() -> None:
    kc = _component_kubeconfig("controller-manager")
    start(
        "kube-controller-manager",
        [
            BIN / "kube-controller-manager",
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            "--leader-elect=false",
            f"--service-account-private-key-file={PKI / 'sa.key'}",
            f"--root-ca-file={PKI / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={PKI / 'ca.crt'}",
            f"--cluster-signing-key-file={PKI / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allocate-node-cidrs=false",
            "--profiling=false",
            "--v=1",
        ],
    )
    wait_for(
        "kube-controller-manager",
        ok_200("https://127.0.0.1:10257/healthz", _ssl_ctx(None, verify=False)),
        60,
        "healthy",
    )


def start_scheduler() -> None:
    kc = _component_kubeconfig("scheduler")
    start(
        "kube-scheduler",
        [
            BIN / "kube-scheduler",
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--secure-port=10259",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
    )
    wait_for(
        "kube-scheduler",
        ok_200("https://127.0.0.1:10259/healthz", _ssl_ctx(None, verify=False)),
        60,
        "healthy",
    )


def containerd_config() -> str:
    root, state = CONTAINERD_ROOT, STATE / "containerd" / "state"
    return f"""version = 3
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{CONTAINERD_SOCK}"
[ttrpc]
  address = "{CONTAINERD_SOCK}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # the kubelet asks for negative oom_score_adj (sandboxes -998); this host
  # refuses lowering it even to root, and runc's init then dies ("can't get
  # final child's PID from pipe: EOF"): clamp to containerd's own score
  restrict_oom_score_adj = true
  # pod network namespaces are pinned under the state dir, so `down` finds them
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{STATE / "cni" / "net.d"}"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def cni_config() -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "mlkube",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(POD_CIDR), "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(STATE / "cni" / "ipam"),
                    },
                }
            ],
        },
        indent=1,
    )


def ctr(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    return run(
        [str(BIN / "ctr"), f"--address={CONTAINERD_SOCK}", "--namespace=k8s.io", *args],
        timeout=timeout,
        check=check,
    )


def start_containerd() -> None:
    (STATE / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    (STATE / "cni" / "net.d" / "10-mlkube.conflist").write_text(cni_config())
    CONTAINERD_SOCK.parent.mkdir(parents=True, exist_ok=True)
    cfg = STATE / "containerd" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(containerd_config())
    start("containerd", [BIN / "containerd", f"--config={cfg}", "--log-level=warn"])
    wait_for(
        "containerd",
        lambda: ctr("version", timeout=10).returncode == 0,
        60,
        f"serving on {CONTAINERD_SOCK}",
    )
    have = ctr("images", "ls", "-q").stdout.split()
    node_images = {PAUSE_IMAGE: "pause.tar", LOCAL_PATH_HELPER_IMAGE: "local-path-helper.tar"}
    for image, tar in node_images.items():
        if image not in have:
            t = time.monotonic()
            ctr("images", "import", str(CACHE / "images" / tar))
            say(f"containerd: imported {image} ({time.monotonic() - t:.1f}s)")


def kubelet_config() -> str:
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: {PKI / "kubelet-serving.crt"}
tlsPrivateKeyFile: {PKI / "kubelet-serving.key"}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {PKI / "ca.crt"}}}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
# this host has cgroup v1 controllers (a cgroup2 tree is only mounted beside
# them); Kubernetes 1.35 refuses cgroup v1 unless this is false
failCgroupV1: false
failSwapOn: false
memorySwap: {{}}
containerRuntimeEndpoint: unix://{CONTAINERD_SOCK}
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{DNS_SERVICE_IP}]
resolvConf: /etc/resolv.conf
podCIDR: {POD_CIDR}
maxPods: 60
podPidsLimit: 4096
serializeImagePulls: false
# a shared machine: do not evict for its disk, do not GC the imported images
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 10000h
protectKernelDefaults: false
makeIPTablesUtilChains: true
localStorageCapacityIsolation: true
enableDebuggingHandlers: true
staticPodPath: ""
shutdownGracePeriod: 0s
rotateCertificates: false
serverTLSBootstrap: false
"""


def node_ready() -> bool:
    node = api_json(f"/api/v1/nodes/{NODE_NAME}")
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])
    )


def start_kubelet() -> None:
    kc = _component_kubeconfig("kubelet")
    cfg = STATE / "kubelet" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(kubelet_config())
    start(
        "kubelet",
        [
            BIN / "kubelet",
            f"--config={cfg}",
            f"--kubeconfig={kc}",
            f"--root-dir={STATE / 'kubelet' / 'root'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ],
    )
    wait_for("kubelet", ok_200("http://127.0.0.1:10248/healthz"), 90, "healthy")


def start_kube_proxy() -> None:
    kc = _component_kubeconfig("kube-proxy")
    cfg = STATE / "kube-proxy.yaml"
    cfg.write_text(f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {kc}}}
hostnameOverride: {NODE_NAME}
mode: iptables
clusterCIDR: {POD_CIDR}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["{NODE_IP}/32"]
# leave the host's conntrack sysctls alone
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
iptables: {{masqueradeAll: false, localhostNodePorts: false}}
""")
    start("kube-proxy", [BIN / "kube-proxy", f"--config={cfg}", "--v=1"])
    wait_for("kube-proxy", ok_200("http://127.0.0.1:10256/healthz"), 60, "healthy")


COREDNS_RBAC = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mlkube:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mlkube:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mlkube:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "mlkube:coredns"}
"""


def kube_dns_service() -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {{k8s-app: kube-dns, kubernetes.io/name: CoreDNS}}
spec:
  clusterIP: {DNS_SERVICE_IP}
  ports:
  - {{name: dns, port: 53, protocol: UDP, targetPort: 53}}
  - {{name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}}
---
# CoreDNS runs on the host (NODE_IP:53), so the Service has no selector and
# this slice is the harness's, not the EndpointSlice controller's.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: mlkube-cluster
addressType: IPv4
endpoints:
- addresses: ["{NODE_IP}"]
  conditions: {{ready: true}}
ports:
- {{name: dns, port: 53, protocol: UDP}}
- {{name: dns-tcp, port: 53, protocol: TCP}}
"""


def dns_query(name: str, server: str, port: int = 53, timeout: float = 2) -> list[str]:
    """A records for name from server (a minimal stub resolver)."""
    qid = os.getpid() & 0xFFFF
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        data, _ = s.recvfrom(4096)
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    if flags & 0xF:
        raise ClusterError(f"DNS rcode {flags & 0xF} for {name}")
    i = 12
    for _ in range(qd):
        while data[i]:
            i += data[i] + 1
        i += 5
    out = []
    for _ in range(an):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i]:
                i += data[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[i : i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(data[i : i + 4]))
        i += rdlen
    return out


def start_coredns() -> None:
    kc = _component_kubeconfig("coredns")
    apply(COREDNS_RBAC)
    apply(kube_dns_service())
    corefile = STATE / "Corefile"
    # no `forward`: names outside the cluster get no answer, nothing leaves the host
    corefile.write_text(f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kc} {CONTEXT}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
""")
    start("coredns", [BIN / "coredns", "-conf", corefile])
    want = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
    wait_for("coredns", lambda: API_SERVICE_IP in dns_query(want, NODE_IP), 60, f"resolves {want}")
    wait_for(
        "coredns",
        lambda: API_SERVICE_IP in dns_query(want, DNS_SERVICE_IP),
        60,
        f"answers on the kube-dns Service {DNS_SERVICE_IP}",
    )


TRAEFIK_RBAC = """apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mlkube:traefik"}
rules:
- apiGroups: [""]
  resources: [services, secrets, nodes]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mlkube:traefik"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mlkube:traefik"}
subjects:
- {kind: ServiceAccount, name: traefik, namespace: kube-system}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: traefik
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec:
  controller: traefik.io/ingress-controller
"""

INGRESS_PING = "127.0.0.1:18080"


def start_traefik() -> None:
    """The Ingress controller: Traefik as a host process on NODE_IP:80, the
    cluster's default IngressClass `traefik`; it proxies to pod IPs over the bridge."""
    apply(TRAEFIK_RBAC)
    token = STATE / "traefik.token"
    token.write_text(
        kubectl("create", "token", "traefik", "-n", "kube-system", "--duration=24h").stdout.strip()
    )
    os.chmod(token, 0o600)
    start(
        "traefik",
        [
            BIN / "traefik",
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
            f"--entrypoints.web.address={NODE_IP}:80",
            f"--entrypoints.traefik.address={INGRESS_PING}",
            "--ping=true",
            "--ping.entrypoint=traefik",
            "--log.level=INFO",
            "--providers.kubernetesingress=true",
            f"--providers.kubernetesingress.endpoint={API_URL}",
            f"--providers.kubernetesingress.token={token}",
            f"--providers.kubernetesingress.certauthfilepath={PKI / 'ca.crt'}",
            f"--providers.kubernetesingress.ingressendpoint.ip={NODE_IP}",
        ],
    )
    wait_for(
        "traefik",
        ok_200(f"http://{INGRESS_PING}/ping"),
        60,
        f"serving Ingresses on http://{NODE_IP}:80",
    )


# local-path-provisioner, as kind runs it: dynamic hostPath volumes under VOLUMES for
# the default StorageClass "standard" (the name kind gives it, so the same values
# files work on both). Its RBAC is upstream's deploy/local-path-storage.yaml, bound
# to the provisioner's client certificate; the helper pods it starts to create and
# delete a volume's directory run under the namespace's ServiceAccount.
LOCAL_PATH_MANIFEST = """apiVersion: v1
kind: Namespace
metadata: {name: local-path-storage}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner-service-account, namespace: local-path-storage}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "mlkube:local-path"}
rules:
- apiGroups: [""]
  resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "mlkube:local-path"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mlkube:local-path"}
subjects:
- {kind: User, name: "mlkube:local-path", apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "mlkube:local-path", namespace: local-path-storage}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, patch, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "mlkube:local-path", namespace: local-path-storage}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "mlkube:local-path"}
subjects:
- {kind: User, name: "mlkube:local-path", apiGroup: rbac.authorization.k8s.io}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
"""


def start_local_path() -> None:
    apply(LOCAL_PATH_MANIFEST)
    VOLUMES.mkdir(parents=True, exist_ok=True)
    config = STATE / "local-path.json"
    config.write_text(
        json.dumps(
            {
                "nodePathMap": [
                    {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(VOLUMES)]}
                ],
                # the binary of src/local-path-helper (its Containerfile puts it there)
                "setupCommand": "/local-path-helper",
                "teardownCommand": "/local-path-helper",
            }
        )
    )
    pod = STATE / "local-path-helper-pod.yaml"
    pod.write_text(f"""apiVersion: v1
kind: Pod
metadata: {{name: helper-pod}}
spec:
  containers:
  - name: helper-pod
    image: {LOCAL_PATH_HELPER_IMAGE}
    imagePullPolicy: Never
""")
    # Out of the cluster it logs "failed to save helper-pod-... logs: unable to load in-cluster
    # configuration" after each volume: only copying the helper pod's log into its own fails.
    start(
        "local-path-provisioner",
        [
            BIN / "local-path-provisioner",
            "start",
            f"--kubeconfig={_component_kubeconfig('local-path')}",
            f"--config={config}",
            f"--helper-pod-file={pod}",
            "--namespace=local-path-storage",
            "--provisioner-name=rancher.io/local-path",
            "--service-account-name=local-path-provisioner-service-account",
        ],
    )
    wait_for(
        "local-path-provisioner",
        lambda: (
            "Starting provisioner controller" in log_tail("local-path-provisioner", 200)
            or "Started provisioner controller" in log_tail("local-path-provisioner", 200)
        ),
        60,
        'provisioning volumes of StorageClass "standard"',
    )


def start_kwok() -> None:
    kc = _component_kubeconfig("kwok")
    start(
        "kwok",
        [
            BIN / "kwok",
            f"--kubeconfig={kc}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--manage-nodes-with-label-selector=",
            "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
            "--node-ip=" + NODE_IP,
            "--node-port=0",
            "--server-address=127.0.0.1:10247",
        ],
    )
    apply(f"""apiVersion: v1
kind: Node
metadata:
  name: {NODE_NAME}
  annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}}
  labels:
    kubernetes.io/hostname: {NODE_NAME}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110"}}
""")


# ----------------------------------------------------------------------------
# commands


def ensure_built() -> None:
    say(f"binaries: {BIN} (hack/cluster/build.sh)")
    t = time.monotonic()
    env = dict(os.environ)
    if NODE_MODE != "kwok":
        env.setdefault("MLKUBE_CLUSTER_KWOK", "0")
    if NODE_MODE != "real":
        env.setdefault("MLKUBE_CLUSTER_INGRESS", "0")
    p = subprocess.run(["bash", str(HERE / "build.sh")], env=env)
    if p.returncode != 0:
        raise ClusterError("hack/cluster/build.sh failed (see above)")
    say(f"binaries ready ({time.monotonic() - t:.1f}s)")


def cmd_up(args) -> None:
    if os.geteuid() != 0:
        raise ClusterError(
            "the local cluster needs root (it runs containerd, the kubelet and iptables)"
        )
    if NODE_MODE not in ("real", "kwok", "none"):
        raise ClusterError(f"MLKUBE_CLUSTER_NODE={NODE_MODE!r}: use real, kwok or none")
    if args.build:
        ensure_built()
    say(f"up: Kubernetes {K8S_VERSION}, node mode {NODE_MODE}, state {STATE}")
    for d in (STATE, RUN, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    make_pki()
    write_kubeconfig(KUBECONFIG, "admin")
    save_and_set_sysctls()
    setup_network()
    start_etcd()
    start_apiserver()
    start_controller_manager()
    start_scheduler()
    if NODE_MODE == "real":
        start_containerd()
        start_kubelet()
        start_kube_proxy()
        wait_for("kubelet", node_ready, 120, f"node {NODE_NAME} Ready")
        start_coredns()
        start_local_path()
        if (BIN / "traefik").exists():
            start_traefik()
        else:
            say(
                "traefik: not built (MLKUBE_CLUSTER_INGRESS=1 hack/cluster/build.sh): "
                "no Ingress controller"
            )
    elif NODE_MODE == "kwok":
        start_kwok()
        wait_for("kwok", node_ready, 60, f"fake node {NODE_NAME} Ready")
    wait_for(
        "kube-controller-manager",
        lambda: any(
            s["metadata"]["name"] == "default"
            for s in api_json("/api/v1/namespaces/default/serviceaccounts")["items"]
        ),
        60,
        "default ServiceAccount created",
    )
    if args.images and NODE_MODE == "real":
        cmd_images(args)
    say(f"cluster up in {time.monotonic() - T0:.1f}s; export KUBECONFIG={KUBECONFIG}")


def image_refs() -> list[str]:
    """The mlkube images `make images` built: localhost/mlkube-<name>:<tag>, newest per name."""
    names = os.environ.get("MLKUBE_CLUSTER_IMAGES", "mlflow train serve rollout").split()
    tag = os.environ.get("MLKUBE_CLUSTER_IMAGE_TAG", "")
    refs = []
    for n in names:
        ref = f"localhost/mlkube-{n}:{tag}" if tag else None
        if ref is None:
            out = run(
                [
                    "podman",
                    "images",
                    "--format",
                    "{{.Repository}}:{{.Tag}}",
                    f"localhost/mlkube-{n}",
                ]
            ).stdout.split()
            if not out:
                raise ClusterError(f"no podman image localhost/mlkube-{n}: run `make images` first")
            plain = [r for r in out if r.split(":")[-1].count("-") == 0 and r.endswith(":0.1.0")]
            ref = plain[0] if plain else out[0]
        refs.append(ref)
    return refs


def cmd_images(args) -> None:
    """Import the mlkube images into the node's containerd (namespace k8s.io).
    Archives are cached by image ID, so an unchanged image is not re-saved."""
    engine = getattr(args, "engine", "podman")
    refs = getattr(args, "refs", None) or image_refs()
    cache = CACHE / "images" / "mlkube"
    cache.mkdir(parents=True, exist_ok=True)
    crictl = run(
        [
            str(BIN / "crictl"),
            f"--runtime-endpoint=unix://{CONTAINERD_SOCK}",
            "images",
            "-o",
            "json",
        ]
    ).stdout
    have = {
        tag: img["id"] for img in json.loads(crictl)["images"] for tag in img.get("repoTags") or []
    }
    for ref in refs:
        t = time.monotonic()
        image_id = run([engine, "image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()
        if not image_id:
            raise ClusterError(f"{engine} has no image {ref}")
        tar = cache / f"{image_id[:20]}.tar"
        if not tar.exists():
            tmp = tar.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            fmt = ["--format", "docker-archive"] if engine == "podman" else []
            run([engine, "save", *fmt, "-o", str(tmp), ref], timeout=900)
            tmp.rename(tar)
            for old in cache.glob("*.tar"):
                if old != tar and old.stat().st_mtime < tar.stat().st_mtime - 7 * 86400:
                    old.unlink()
        if have.get(ref, "").removeprefix("sha256:") == image_id.removeprefix("sha256:"):
            say(f"images: {ref} already in the node ({image_id[:12]})")
            continue
        ctr("images", "import", str(tar), timeout=900)
        say(f"images: {ref} imported ({time.monotonic() - t:.1f}s)")
    crictl = run(
        [str(BIN / "crictl"), f"--runtime-endpoint=unix://{CONTAINERD_SOCK}", "images"], check=False
    ).stdout
    print(crictl, flush=True)


def mounts_under(prefixes: list[str]) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if any(mp == p or mp.startswith(p.rstrip("/") + "/") for p in prefixes):
            out.append(mp)
    return sorted(set(out), key=len, reverse=True)


def our_shims() -> list[int]:
    """containerd-shim processes started by *our* containerd (their -address names our socket)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"containerd-shim-runc-v2")
            and str(CONTAINERD_SOCK).encode() in argv
        ):
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
            procs = []
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
        for d in sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ) + [top]:
            try:
                d.rmdir()
            except OSError:
                pass
    return killed


def iptables_cleanup() -> None:
    """Remove the chains kube-proxy, the kubelet and this harness made (only those)."""
    if (BIN / "kube-proxy").exists():
        p = run([str(BIN / "kube-proxy"), "--cleanup", "--v=0"], check=False, timeout=60)
        if p.returncode != 0:
            say(f"kube-proxy --cleanup: exit {p.returncode}: {p.stderr.strip()[-300:]}")
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
            say(f"{ipt} -t {table}: removed chains {' '.join(ours)}")


def cmd_down(args) -> None:
    if os.geteuid() != 0:
        raise ClusterError("needs root")
    say(f"down: state {STATE}")
    # 1. pods: let the runtime stop them so that CNI DEL frees IPs and veths
    if read_pid("kubelet"):
        stop("kubelet")
    cpid = read_pid("containerd")
    if cpid and alive(cpid) and (BIN / "crictl").exists():
        crictl = [
            str(BIN / "crictl"),
            f"--runtime-endpoint=unix://{CONTAINERD_SOCK}",
            "--timeout=20s",
        ]
        pods = run([*crictl, "pods", "-q"], check=False, timeout=30).stdout.split()
        if pods:
            say(f"containerd: stopping and removing {len(pods)} pod sandboxes")
            run([*crictl, "stopp", *pods], check=False, timeout=120)
            run([*crictl, "rmp", "-f", *pods], check=False, timeout=120)
    for name in (
        "traefik",
        "local-path-provisioner",
        "coredns",
        "kube-proxy",
        "kwok",
        "kube-scheduler",
        "kube-controller-manager",
        "kube-apiserver",
        "containerd",
        "etcd",
    ):
        stop(name)
    # 2. leftovers: shims of our containerd, processes in the kubelet's cgroups
    for pid in our_shims():
        say(f"killing leftover shim {pid}")
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    n = kill_cgroup_tree("kubepods")
    if n:
        say(f"killed {n} leftover container processes (cgroup kubepods)")
    # 3. mounts under the state dir (volumes, rootfs, shm, netns)
    for _attempt in range(3):
        mps = mounts_under([str(STATE), str(CONTAINERD_ROOT)])
        if not mps:
            break
        for mp in mps:
            if run(["umount", mp], check=False).returncode != 0:
                run(["umount", "-l", mp], check=False)
        say(f"unmounted {len(mps)} mounts under {STATE}")
    left = mounts_under([str(STATE), str(CONTAINERD_ROOT)])
    if left:
        raise ClusterError(f"mounts left under {STATE}: {left[:5]}")
    # 4. interfaces: veths on our bridge, then the bridge
    if link_exists(BRIDGE):
        for brif in Path(f"/sys/class/net/{BRIDGE}/brif").iterdir():
            run(["ip", "link", "del", brif.name], check=False)
        run(["ip", "link", "del", BRIDGE], check=False)
        say(f"network: deleted bridge {BRIDGE}")
    # 5. iptables, sysctls
    iptables_cleanup()
    restore_sysctls()
    if STATE.exists():
        shutil.rmtree(STATE, ignore_errors=False)
        say(f"removed {STATE}")
    if getattr(args, "purge", False) and CONTAINERD_ROOT.exists():
        shutil.rmtree(CONTAINERD_ROOT)
        say(f"removed the image store {CONTAINERD_ROOT}")
    elif CONTAINERD_ROOT.exists():
        say(f"kept the image store {CONTAINERD_ROOT} (down --purge removes it)")
    say(f"cluster down in {time.monotonic() - T0:.1f}s")


def cmd_status(args) -> None:
    any_up = False
    for name in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "containerd",
        "kubelet",
        "kube-proxy",
        "coredns",
        "traefik",
        "kwok",
    ):
        pid = read_pid(name)
        if pid:
            any_up = True
            print(f"{name:24} pid {pid:<7} {'running' if alive(pid) else 'DEAD'}")
    if any_up:
        print(kubectl("get", "nodes", "-o", "wide", check=False).stdout)
        print(f"export KUBECONFIG={KUBECONFIG}")
    else:
        print(f"no cluster (state {STATE})")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    up.set_defaults(fn=cmd_up)
    down = sub.add_parser("down")
    down.add_argument(
        "--purge", action="store_true", help="also remove the image store (containerd root)"
    )
    down.set_defaults(fn=cmd_down)
    sub.add_parser("status").set_defaults(fn=cmd_status)
    im = sub.add_parser("images")
    im.add_argument("refs", nargs="*", help="image refs (default: the four mlkube images)")
    im.add_argument(
        "--engine",
        choices=("podman", "docker"),
        default="podman",
        help="the engine whose images are imported (default podman)",
    )
    im.set_defaults(fn=cmd_images)
    sub.add_parser("build").set_defaults(fn=lambda a: ensure_built())
    args = ap.parse_args()
    try:
        args.fn(args)
    except ClusterError as e:
        print(f"\n[cluster] FAILED: {e}", file=sys.stderr, flush=True)
        if args.cmd == "up":
            print(
                f"[cluster] logs: {LOGS}; stop what did start with `make cluster-down`",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
