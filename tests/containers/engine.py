"""Running the images as the chart runs them, with Docker or Podman.

Each container's command, args, env, user, read-only root, capabilities, privilege escalation,
resource limits and mounts come from the chart rendered by ``helm template`` (never from a second
copy here): :func:`run_args` translates one rendered container into ``<engine> run`` flags the
way the kubelet would apply them. Services become network aliases on a container network, so
the URLs the chart writes (``http://mlkube-mlflow.mlkube.svc:5000``) resolve as in a cluster.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.charts.manifests import NAMESPACE, helm_template
from tests.timeouts import CONTAINER_START_S, CONTAINER_STOP_S

ENGINES = ("docker", "podman")
Doc = dict[str, Any]


def find_engine() -> tuple[str | None, str]:
    """The first engine that answers, and why none does."""
    reasons = []
    for name in ENGINES:
        path = shutil.which(name)
        if not path:
            reasons.append(f"{name} not installed")
            continue
        info = subprocess.run([path, "info"], capture_output=True, text=True, timeout=60)
        if info.returncode == 0:
            return name, ""
        tail = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        reasons.append(f"{name} does not answer ({tail})")
    return None, "; ".join(reasons)


class EngineError(AssertionError):
    pass


@dataclass
class Engine:
    """One engine, and every container, network and volume this test session made with it."""

    name: str
    prefix: str = field(default_factory=lambda: f"mlkube-ct-{uuid.uuid4().hex[:6]}")
    made: list[tuple[str, str]] = field(default_factory=list)  # (kind, name), in order
    mounts: dict[str, list[str]] = field(default_factory=dict)  # container -> mount targets

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run(
            [self.name, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise EngineError(
                f"`{self.name} {' '.join(args)}` exited {proc.returncode}:\n"
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.stdout

    def network(self) -> str:
        name = f"{self.prefix}-net-{uuid.uuid4().hex[:4]}"
        self("network", "create", name)
        self.made.append(("network", name))
        return name

    def volume(self, claim: str, *, fs_group: int | None, image: str) -> str:
        """A fresh volume for a PersistentVolumeClaim, owned as the kubelet leaves a volume for
        a pod with ``fsGroup``: group-owned by it, group-writable, setgid."""
        name = f"{self.prefix}-{claim}-{uuid.uuid4().hex[:4]}"
        self("volume", "create", name)
        self.made.append(("volume", name))
        if fs_group is not None:
            mount = f"type=volume,source={name},destination=/v"
            self("run", "--rm", "--user", "0", "--mount", mount, "--entrypoint", "sh", image,
                 "-c", f"chgrp {fs_group} /v && chmod 2775 /v")  # fmt: skip
        return name

    def track(self, container: str) -> str:
        self.made.append(("container", container))
        return container

    def logs(self, container: str) -> str:
        proc = subprocess.run(
            [self.name, "logs", container], capture_output=True, text=True, timeout=60
        )
        return proc.stdout + proc.stderr

    def wait(self, container: str, timeout: float) -> int:
        """The container's exit code once it has stopped."""
        out = self("wait", container, timeout=timeout)
        return int(out.strip().splitlines()[-1])

    def published_port(self, container: str, port: int) -> int:
        out = self("port", container, f"{port}/tcp").strip().splitlines()[0]
        return int(out.rsplit(":", 1)[1])

    def processes(self, container: str) -> list[dict[str, str]]:
        """Every process in the container: pid, real/effective uid, command line (from /proc)."""
        script = (
            "import os, json\n"
            "out = []\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            "        status = open(f'/proc/{pid}/status').read()\n"
            "        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ')\n"
            "    except OSError:\n"
            "        continue\n"
            "    uid = next(l.split()[1:3] for l in status.splitlines() if l.startswith('Uid:'))\n"
            "    out.append({'pid': pid, 'uid': uid[0], 'euid': uid[1], 'cmd': cmd.decode()})\n"
            "print(json.dumps(out))\n"
        )
        return list(json.loads(self("exec", container, "python", "-c", script)))

    def changed_paths(self, container: str) -> list[str]:
        """Paths the container changed in its image's filesystem, outside its mounts."""
        out = self("diff", container)
        paths = [line.split(None, 1)[1] for line in out.splitlines() if line.strip()]
        # The engine itself writes these (DNS, hostname, its own marker) and makes the mount
        # points: not the program.
        engine_made = {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run",
                       "/run/.containerenv", "/.dockerenv", "/dev", "/proc", "/sys"}  # fmt: skip
        targets = self.mounts.get(container, [])

        def mounted(path: str) -> bool:
            return any(t == path or t.startswith(path.rstrip("/") + "/")
                       or path.startswith(t.rstrip("/") + "/") for t in targets)  # fmt: skip

        return [p for p in paths if p not in engine_made and not mounted(p)]

    def cleanup(self) -> list[str]:
        """Removes everything made, newest first; returns what could not be removed."""
        left = []
        for kind, name in reversed(self.made):
            args = {
                "container": ("rm", "-f", "-v", name),
                "network": ("network", "rm", "-f", name),
                "volume": ("volume", "rm", "-f", name),
            }[kind]
            try:
                self(*args, timeout=CONTAINER_STOP_S)
            except (EngineError, subprocess.TimeoutExpired) as exc:
                left.append(f"{kind} {name}: {exc}")
        self.made.clear()
        return left

    def leftovers(self) -> list[str]:
        """Containers, networks and volumes still named with this session's prefix."""
        found = []
        for kind, args in (
            ("container", ("ps", "-a", "--format", "{{.Names}}")),
            ("network", ("network", "ls", "--format", "{{.Name}}")),
            ("volume", ("volume", "ls", "--format", "{{.Name}}")),
        ):
            found += [f"{kind} {n}" for n in self(*args).split() if n.startswith(self.prefix)]
        return found


# --- the rendered chart ----------------------------------------------------------------------


@dataclass
class Chart:
    """One render of the chart: its pod templates, Secrets and ConfigMaps by name."""

    docs: list[Doc]

    @classmethod
    def render(cls, *args: str) -> Chart:
        proc = helm_template(*args)
        assert proc.returncode == 0, proc.stderr
        return cls([d for d in yaml.safe_load_all(proc.stdout) if d])

    def find(self, kind: str, name: str) -> Doc:
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise AssertionError(f"the chart renders no {kind} {name}")

    def pod(self, kind: str, name: str) -> Doc:
        """The pod spec of a Deployment, Job or CronJob."""
        spec = self.find(kind, name)["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        return dict(spec["template"]["spec"])

    def data(self, kind: str, name: str) -> dict[str, str]:
        doc = self.find(kind, name)
        out = {k: str(v) for k, v in (doc.get("stringData") or {}).items()}
        for key, value in (doc.get("data") or {}).items():
            out[key] = base64.b64decode(value).decode() if kind == "Secret" else str(value)
        return out

    def service_aliases(self, service: str) -> list[str]:
        """The DNS names a pod behind ``service`` answers to in the release's namespace."""
        return [
            service,
            f"{service}.{NAMESPACE}",
            f"{service}.{NAMESPACE}.svc",
            f"{service}.{NAMESPACE}.svc.cluster.local",
        ]


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args (an unknown $(VAR) stays as written)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def container_env(chart: Chart, container: Doc) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
            continue
        ref = item["valueFrom"]
        kind, key = (
            ("Secret", ref["secretKeyRef"])
            if "secretKeyRef" in ref
            else ("ConfigMap", ref["configMapKeyRef"])
        )
        try:
            env[item["name"]] = chart.data(kind, key["name"])[key["key"]]
        except (AssertionError, KeyError):
            if not key.get("optional"):
                raise
    return env


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


def cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


@dataclass
class Pod:
    """What a container needs beyond its spec: where its volumes live on this host."""

    chart: Chart
    pod: Doc
    volumes: dict[str, str] = field(default_factory=dict)  # claimName -> engine volume
    files: Path | None = None  # where ConfigMap/Secret volumes are written

    def mount_args(self, mount: Doc) -> list[str]:
        volume = next(v for v in self.pod.get("volumes", []) if v["name"] == mount["name"])
        target = mount["mountPath"]
        read_only = ",ro" if mount.get("readOnly") else ""
        if "emptyDir" in volume:
            # An emptyDir is a writable directory owned by the pod's fsGroup: a tmpfs here.
            size = volume["emptyDir"].get("sizeLimit")
            opts = [f"destination={target}", "tmpfs-mode=1777"]
            if size:
                opts.append(f"tmpfs-size={memory_bytes(size)}")
            return ["--mount", "type=tmpfs," + ",".join(opts)]
        if "persistentVolumeClaim" in volume:
            engine_volume = self.volumes[volume["persistentVolumeClaim"]["claimName"]]
            return ["--mount", f"type=volume,source={engine_volume},destination={target}"
                    + read_only]  # fmt: skip
        for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
            if key in volume:
                assert self.files is not None, "a ConfigMap/Secret volume needs a files directory"
                name = volume[key].get("name") or volume[key].get("secretName")
                folder = self.files / f"{kind.lower()}-{name}"
                folder.mkdir(parents=True, exist_ok=True)
                for file, text in self.chart.data(kind, name).items():
                    (folder / file).write_text(text)
                    (folder / file).chmod(0o644)
                return ["--mount", f"type=bind,source={folder},destination={target},ro"]
        raise AssertionError(f"volume {volume} is not one this harness knows")


def run_args(pod: Pod, container_name: str, *, init: bool = False) -> list[str]:
    """``<engine> run`` flags for one rendered container, applied as the kubelet applies them."""
    spec = pod.pod
    pool = spec.get("initContainers", []) if init else spec["containers"]
    container = next(c for c in pool if c["name"] == container_name)
    pod_sc = spec.get("securityContext", {})
    sc = {**pod_sc, **container.get("securityContext", {})}
    args: list[str] = []
    user = sc.get("runAsUser")
    if user is not None:
        args += ["--user", f"{user}:{sc.get('runAsGroup', user)}"]
        if "fsGroup" in pod_sc:
            args += ["--group-add", str(pod_sc["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in sc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    for cap in sc.get("capabilities", {}).get("add", []):
        args += ["--cap-add", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    assert not sc.get("privileged"), f"{container_name} asks for a privileged container"
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        args += ["--memory", str(memory_bytes(limits["memory"]))]
    if "cpu" in limits:
        args += ["--cpus", cpus(str(limits["cpu"]))]
    env = container_env(pod.chart, container)
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    for mount in container.get("volumeMounts", []):
        args += pod.mount_args(mount)
    command = [expand(str(w), env) for w in container.get("command", [])]
    rest = [expand(str(w), env) for w in container.get("args", [])]
    if command:
        args += ["--entrypoint", command[0]]
        rest = command[1:] + rest
    return [*args, "{image}", *rest]


def image_ref(container: Doc) -> str:
    return str(container["image"])


@contextmanager
def running(
    engine: Engine,
    pod: Pod,
    container_name: str,
    *,
    network: str,
    aliases: list[str] = (),  # type: ignore[assignment]
    publish: int | None = None,
    init: bool = False,
    detach: bool = True,
    image: str | None = None,
) -> Iterator[str]:
    """Starts one rendered container; yields its name. Removed by the engine's cleanup."""
    pool = pod.pod.get("initContainers", []) if init else pod.pod["containers"]
    container = next(c for c in pool if c["name"] == container_name)
    name = engine.track(f"{engine.prefix}-{container_name}-{uuid.uuid4().hex[:4]}")
    flags = run_args(pod, container_name, init=init)
    engine.mounts[name] = [m["mountPath"] for m in container.get("volumeMounts", [])]
    at = flags.index("{image}")
    net = ["--network", network, *(f"--network-alias={a}" for a in aliases)]
    ports = ["--publish", f"127.0.0.1::{publish}"] if publish else []
    mode = ["--detach"] if detach else []
    engine("run", *mode, "--name", name, *net, *ports, *flags[:at],
           image or image_ref(container), *flags[at + 1 :],
           timeout=CONTAINER_START_S)  # fmt: skip
    yield name


def wait_http(url: str, timeout: float, what: str, logs: Any = None) -> None:
    """Polls ``url`` until it answers 2xx; on timeout fails with the container's log tail."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(1)
    tail = "\n".join((logs() if logs else "").splitlines()[-30:])
    raise AssertionError(f"{what} did not answer {url} within {timeout:.0f}s ({last}):\n{tail}")
