"""``make up``'s MLflow start, measured: a fresh sqlite each time, to the first 200 from /health.

    python -m bench.up [--repeats 5] [--make-up 0]

Starts MLflow the way ``make up`` does (``embedded.mlflow_server``: one process, one uvicorn
worker) and the way ``mlflow server`` does (its CLI creates the tables, then starts uvicorn in a
second Python that imports MLflow again), alternately, ``--repeats`` times each. Prints the wall
time to the first 200, the CPU seconds the start cost (user + sys of the whole process tree:
steadier than wall time on a shared machine) and the 1-minute load average around each start.
``--make-up N`` also runs N fresh ``make up`` (``python -m mlkube up`` on a new state directory,
stopped once it is up) and prints each step's time.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from embedded.mlflow_server import MlflowServer
from mlkube.core.processes import free_port


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_start(single_process: bool, workdir: Path) -> tuple[float, float, float]:
    """(seconds to the first 200, CPU seconds, load average) of one fresh start."""
    load = os.getloadavg()[0]
    server = MlflowServer(state_dir=workdir, port=free_port(), single_process=single_process)
    cpu = children_cpu()
    started = time.monotonic()
    try:
        server.start(timeout=600)
        wall = time.monotonic() - started
    finally:
        server.stop()  # waits for the process tree: its CPU is counted in RUSAGE_CHILDREN
    return wall, children_cpu() - cpu, max(load, os.getloadavg()[0])


def summary(name: str, runs: list[tuple[float, float, float]]) -> str:
    walls, cpus, loads = zip(*runs, strict=True)
    return (
        f"{name:<34} wall median {statistics.median(walls):5.1f}s "
        f"(min {min(walls):.1f}, max {max(walls):.1f})  "
        f"CPU median {statistics.median(cpus):5.1f}s  load {min(loads):.1f}-{max(loads):.1f}"
    )


STEP = re.compile(r"^\s+(ready|ok) \((\d+\.\d)s\)$", re.MULTILINE)


def one_make_up(workdir: Path) -> str:
    load = os.getloadavg()[0]
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlkube",
            "up",
            "--mlflow-port",
            str(free_port()),
            "--serve-port",
            str(free_port()),
            "--state-dir",
            str(workdir / "state"),
            "--run-for",
            "0.1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    total = time.monotonic() - started
    steps = ", ".join(f"{s}s" for _, s in STEP.findall(out.stdout)) or "no step finished"
    load = max(load, os.getloadavg()[0])
    return f"make up (exit {out.returncode}): steps {steps}; total {total:.1f}s; load {load:.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.up", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="starts of each launcher")
    p.add_argument("--make-up", type=int, default=0, help="fresh `make up` runs as well")
    args = p.parse_args(argv)
    say(f"{os.cpu_count()} cores, 1-minute load average {os.getloadavg()[0]:.1f} at the start")
    runs: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="mlkube-bench-up-") as tmp:
        for i in range(args.repeats):
            for single in (False, True):  # alternately, so both see the same load
                wall, cpu, load = one_start(single, Path(tmp) / f"{i}-{single}")
                runs[single].append((wall, cpu, load))
                name = "embedded.mlflow_server" if single else "mlflow server"
                say(f"  {name:<22} {wall:5.1f}s to 200, {cpu:5.1f}s CPU, load {load:.1f}")
        say(summary("mlflow server (CLI, 2 processes)", runs[False]))
        say(summary("embedded.mlflow_server (1 process)", runs[True]))
        for i in range(args.make_up):
            say(one_make_up(Path(tmp) / f"up-{i}"))
    say(f"1-minute load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
