"""The processes of the local cluster on this host: start one with its log and pidfile, wait
for a readiness check naming it (its log's tail in the error), stop it by process group; and the
commands the harness runs (kubectl, ctr), all through one :class:`Host`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from localcluster import probes
from localcluster.config import Config

Check = Callable[[], bool]


class ClusterError(RuntimeError):
    pass


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


class Host:
    """One run of `cluster.py` on this host: its config and its clock (for the progress lines)."""

    def __init__(self, cfg: Config, out: IO[str] | None = None) -> None:
        self.cfg = cfg
        self.t0 = time.monotonic()
        self.out = out

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        print(f"[cluster {self.elapsed():6.1f}s] {msg}", file=self.out, flush=True)

    def run(
        self,
        cmd: Sequence[str | Path],
        check: bool = True,
        capture: bool = True,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(c) for c in cmd]
        p = subprocess.run(argv, text=True, capture_output=capture, timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv)} exited {p.returncode}: {(p.stderr or '').strip()[-2000:]}"
            )
        return p

    # --- processes

    def log_path(self, name: str) -> Path:
        return self.cfg.logs / f"{name}.log"

    def log_tail(self, name: str, n: int = 25) -> str:
        path = self.log_path(name)
        if not path.exists():
            return f"    (no log at {path})"
        lines = path.read_text(errors="replace").splitlines()[-n:]
        return "\n".join("    " + line for line in lines)

    def pidfile(self, name: str) -> Path:
        return self.cfg.run / f"{name}.pid"

    def read_pid(self, name: str) -> int | None:
        try:
            return int(self.pidfile(name).read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, name: str, cmd: Sequence[str | Path], env: dict[str, str] | None = None) -> int:
        pid = self.read_pid(name)
        if pid and alive(pid):
            self.say(f"{name}: already running (pid {pid})")
            return pid
        if not Path(cmd[0]).exists():
            raise ClusterError(
                f"{name}: {cmd[0]} is missing: run hack/cluster/build.sh "
                "(or make cluster-up without --no-build)"
            )
        self.cfg.logs.mkdir(parents=True, exist_ok=True)
        argv = [str(c) for c in cmd]
        with self.log_path(name).open("ab") as log:
            log.write(f"\n==== {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
            log.flush()
            full_env = dict(os.environ)
            full_env["PATH"] = (
                f"{self.cfg.bin}:{self.cfg.cni_bin}:"
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            )
            full_env.pop("KUBECONFIG", None)
            full_env.update(env or {})
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
                cwd=str(self.cfg.state),
            )
        self.pidfile(name).write_text(f"{p.pid}\n")
        self.say(f"{name}: started (pid {p.pid}, log {self.log_path(name)})")
        return p.pid

    def wait_for(self, name: str, check: Check, timeout: float, what: str) -> None:
        """Poll check() until it returns true; fail naming the component, with its log."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            pid = self.read_pid(name)
            if pid is not None and not alive(pid):
                raise ClusterError(
                    f"{name} exited while waiting for {what}; last lines of its log:\n"
                    f"{self.log_tail(name)}"
                )
            try:
                if check():
                    self.say(f"{name}: {what} (after {self.elapsed():.1f}s total)")
                    return
            except Exception as e:  # noqa: BLE001 - any failure just means "not yet"
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.5)
        raise ClusterError(
            f"{name} did not become ready ({what}) within {timeout:.0f}s"
            + (f"; last probe error: {last}" if last else "")
            + f"\nlast lines of {self.log_path(name)}:\n{self.log_tail(name)}"
        )

    def stop(self, name: str, timeout: float = 20) -> None:
        pid = self.read_pid(name)
        if pid is None:
            return
        if alive(pid):
            self.say(f"{name}: stopping (pid {pid})")
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
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
        self.pidfile(name).unlink(missing_ok=True)

    # --- the cluster's API and tools

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        path = f"{self.cfg.repo / 'bin'}:{os.environ.get('PATH', '')}"
        exe = shutil.which("kubectl", path=path) or "kubectl"
        return self.run(
            [exe, f"--kubeconfig={self.cfg.kubeconfig}", *args],
            check=check,
            input=input,
            timeout=timeout,
        )

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", input=manifest)

    def api_json(self, path: str) -> Any:
        code, text = probes.http_get(self.cfg.api_url + path, probes.ssl_ctx(self.cfg.pki))
        if code != 200:
            raise ClusterError(f"GET {path}: {code} {text[:200]}")
        return json.loads(text)

    def ctr(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            [
                str(self.cfg.bin / "ctr"),
                f"--address={self.cfg.containerd_sock}",
                "--namespace=k8s.io",
                *args,
            ],
            timeout=timeout,
            check=check,
        )

    def crictl(self) -> list[str]:
        return [
            str(self.cfg.bin / "crictl"),
            f"--runtime-endpoint=unix://{self.cfg.containerd_sock}",
        ]

    def node_ready(self) -> bool:
        node = self.api_json(f"/api/v1/nodes/{self.cfg.node_name}")
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node["status"].get("conditions", [])
        )
