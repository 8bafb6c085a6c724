"""``make up``: the platform on one machine, no Kubernetes.

MLflow (sqlite + proxied local artifacts under ``.mlkube/``), one training run, and the model
server following the ``production`` alias. Ctrl-C stops every process; the state is kept, so the
next ``make up`` trains a challenger against today's champion."""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from embedded.mlflow_server import MlflowServer
from mlkube.core.backoff import Unreachable
from mlkube.core.console import Console
from mlkube.core.names import DEFAULT_ALIAS, DEFAULT_MODEL_NAME
from mlkube.core.processes import port_is_free, stop_process_group

EXAMPLE_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


class Steps:
    """Numbers `make up`'s steps on the console: ``==> [2/4] Training ...``."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.index = 0

    def begin(self, title: str) -> float:
        self.index += 1
        self.console.header(self.index, self.total, title)
        return time.monotonic()

    def done(self, started: float, verdict: str = "ok") -> None:
        self.console.info(f"{verdict} ({time.monotonic() - started:.1f}s)")


class StateInUse(RuntimeError):
    """Another `make up` runs on this state directory."""


def lock_state(state: Path) -> int:
    """Hold ``<state>/up.lock`` for the life of this process (the OS drops it when we exit, even
    on SIGKILL): two stacks on one sqlite database would corrupt each other. Returns the file
    descriptor; raises StateInUse naming the holder's pid."""
    state.mkdir(parents=True, exist_ok=True)
    path = state / "up.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateInUse(
            f"the state directory {state} is in use by another `make up` (pid {holder}): stop "
            "it first (Ctrl-C in its terminal), or give this one its own STATE_DIR"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def serving_available() -> bool:
    return importlib.util.find_spec("service") is not None and (
        importlib.util.find_spec("service.app") is not None
    )


def example_curl(port: int) -> str:
    body = json.dumps({"instances": EXAMPLE_ROWS})
    return (
        f"curl -s -X POST http://127.0.0.1:{port}/predict "
        f"-H 'content-type: application/json' -d '{body}'"
    )


def post_json(url: str, payload: object, timeout: float = 10.0) -> str:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return str(resp.read().decode())


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unreachable(f"the process exited with code {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise Unreachable(f"{url} did not answer 200 within {timeout:.0f}s; see {log}")


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything cleanly."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    state: Path = args.state_dir.resolve()
    shown = args.state_dir  # as the user wrote it: .mlkube, not /home/.../.mlkube
    with_serving = serving_available() and not args.no_serve
    console = Console()
    steps = Steps(console, 4)
    try:
        lock_state(state)  # held until this process exits
    except StateInUse as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    for port, who in ((args.mlflow_port, "MLflow"), (args.serve_port, "the model server")):
        if (who == "MLflow" or with_serving) and not port_is_free(port):
            sys.stderr.write(
                f"error: port {port} for {who} is already in use; stop what runs there or pick "
                f"another (make up MLFLOW_PORT=... SERVE_PORT=...)\n"
            )
            return 1

    # SIGTERM, and SIGHUP (the terminal closed): stop the children, as Ctrl-C does. They run in
    # sessions of their own, so no signal of the terminal's reaches them.
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    mlflow = MlflowServer(state_dir=state, port=args.mlflow_port)
    training: subprocess.Popen[bytes] | None = None
    serving: subprocess.Popen[bytes] | None = None
    try:
        t = steps.begin(
            f"Starting MLflow on {mlflow.uri} (sqlite {shown / 'mlflow.db'}, "
            f"artifacts {shown / 'artifacts'})"
        )
        try:
            mlflow.launch()
            training = start_training(args, mlflow.uri)  # imports while MLflow starts
            mlflow.wait_ready(args.timeout)
        except (OSError, Unreachable) as exc:
            sys.stderr.write(
                f"error: MLflow did not start: {exc} (a slow machine? make up UP_TIMEOUT=600)\n"
            )
            return 1
        steps.done(t, "ready")

        t = steps.begin(f"Training {args.model_name} (python -m jobs.train)")
        code = finish_training(training)
        training = None
        if code != 0:
            sys.stderr.write(f"error: training failed with exit code {code}\n")
            return code
        steps.done(t)

        serve_url = f"http://127.0.0.1:{args.serve_port}"
        if with_serving:
            log = shown / "serve.log"
            t = steps.begin(
                f"Starting the model server on {serve_url} (python -m service, following "
                f"@{DEFAULT_ALIAS}; log {log})"
            )
            serving = start_serving(args, mlflow.uri, log)
            try:
                wait_http_ok(f"{serve_url}/healthz/ready", serving, args.timeout, log)
            except Unreachable as exc:
                sys.stderr.write(
                    f"error: the model server did not become ready: {exc} "
                    "(a slow machine? make up UP_TIMEOUT=600)\n"
                )
                return 1
            steps.done(t, "ready")
        else:
            steps.begin(
                f"Model server not started (--no-serve or no service package); it would run: "
                f"MODEL_NAME={args.model_name} MLFLOW_TRACKING_URI={mlflow.uri} python -m service"
            )

        steps.begin(f"Up. Ctrl-C stops everything (state stays in {shown})")
        console.info(f"MLflow UI:       {mlflow.uri}")
        console.info(f"Model registry:  {mlflow.uri}/#/models/{args.model_name}")
        if with_serving:
            console.info(f"Model server:    {serve_url}/docs")
            console.info(f"Try:             {example_curl(args.serve_port)}")
            try:
                answer = post_json(f"{serve_url}/predict", {"instances": EXAMPLE_ROWS})
                console.info(f"It answers:      {answer}")
            except (OSError, urllib.error.URLError) as exc:
                console.info(f"(example request failed: {exc})")
        return wait_until_stopped(mlflow, serving, args.run_for)
    except (KeyboardInterrupt, Stop):
        return 0
    finally:
        # Children first, words after: a second Ctrl-C or a reader gone must not orphan them.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for child in (training, serving):
            if child is not None:
                stop_process_group(child)
        mlflow.stop()
        console.text("Stopped.")
        signal.signal(signal.SIGINT, signal.default_int_handler)


# `python -m jobs.train`, its imports (scikit-learn, pandas, MLflow's client: seconds of CPU)
# done first, then a wait for one byte on stdin: make up sends it once MLflow answers, so the
# imports run while MLflow starts and the run itself never meets an MLflow that is not up yet.
TRAIN_WHEN_TOLD = """\
import sys
import jobs.train, jobs.training
if sys.stdin.buffer.read(1) != b"1":
    sys.exit(1)
sys.exit(jobs.train.main([]))
"""


def start_training(args: argparse.Namespace, uri: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MODEL_NAME": args.model_name,
        "TRAIN_TRIGGER": "manual",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN_WHEN_TOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # held until its step: the steps print in order
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def finish_training(proc: subprocess.Popen[bytes]) -> int:
    """Let the waiting training run, pass its output on as it comes, return its exit code."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        proc.stdin.write(b"1")
        proc.stdin.close()
    except OSError:  # it already exited: its output says why
        pass
    for line in proc.stdout:
        try:
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
        except OSError:  # a reader gone (`make up | tee`, Ctrl-C) must not stop the run
            pass
    return proc.wait()


def start_serving(args: argparse.Namespace, uri: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MODEL_NAME": args.model_name,
        "MODEL_ALIAS": DEFAULT_ALIAS,
        "MODEL_WATCH_SECONDS": str(args.watch_seconds),
        "SERVE_HOST": "127.0.0.1",
        "SERVE_PORT": str(args.serve_port),
    }
    env.pop("MODEL_VERSION", None)  # follow the alias in this mode
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def wait_until_stopped(
    mlflow: MlflowServer, serving: subprocess.Popen[bytes] | None, run_for: float | None
) -> int:
    """Sleep until Ctrl-C (or ``run_for`` seconds); a child that dies on its own is an error."""
    deadline = None if run_for is None else time.monotonic() + run_for
    while True:
        time.sleep(0.5)
        for name, proc in (("MLflow", mlflow.proc), ("the model server", serving)):
            if proc is not None and proc.poll() is not None:
                sys.stderr.write(f"error: {name} exited on its own (code {proc.returncode})\n")
                return 1
        if deadline is not None and time.monotonic() > deadline:
            return 0


def main(argv: list[str] | None = None) -> int:
    """``mlkube up [flags]``: ``argv`` is the command line after ``mlkube``, ``up`` included."""
    parser = argparse.ArgumentParser(prog="mlkube")
    add_parser(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    code: int = args.func(args)
    return code


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="MLflow + one training run + the model server, on this machine")
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.add_argument("--serve-port", type=int, default=8080)
    p.add_argument("--state-dir", type=Path, default=Path(".mlkube"))
    p.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    p.add_argument("--watch-seconds", type=float, default=5.0, help="alias poll of the server")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each server")
    p.add_argument("--no-serve", action="store_true", help="do not start the model server")
    p.add_argument("--run-for", type=float, help=argparse.SUPPRESS)  # tests: stop by itself
    p.set_defaults(func=run)
