"""``make bench``: this server against ``mlflow models serve`` and a bare uvicorn ceiling.

    python -m bench.serve [--model lr|rf|hgb ...] [--duration 10] [--quick] [--markdown out.md]

For each model family (all three by default: ``lr`` logistic regression, ``rf`` random forest,
``hgb`` histogram gradient boosting, each trained by the real training job into a throwaway
MLflow server; or the one registered model ``--tracking-uri`` and ``--model-name`` name) it
starts, one after the other: (a) this service, (a') this
service with batching off, (b) ``mlflow models serve --env-manager local``, (c) a FastAPI
endpoint returning a constant (the ceiling). Each is driven by ``wrk`` (a C load generator: a
Python client cannot saturate a server) on loopback with the same POST bodies to
``/invocations``: 1 and 100 rows at 1 and 32 connections, and 1,000 rows at 1 connection. It
prints requests/s, p50, p99, peak RSS (VmHWM summed over the server's processes), cold start
(process start to ready), each figure's ratio to (b) and (c), and whether each target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import median_high
from typing import Any

from embedded.mlflow_server import MlflowServer
from mlkube.core.processes import free_port, stop_process_group

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
WRK_MISSING = (
    "wrk is missing: install it (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk) "
    "and run make bench again"
)
_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("MLKUBE_RESULT %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Scenario:
    key: str
    rows: int
    connections: int


SCENARIOS = (
    Scenario("1row-1c", 1, 1),
    Scenario("1row-32c", 1, 32),
    Scenario("100rows-1c", 100, 1),
    Scenario("100rows-32c", 100, 32),
    Scenario("1000rows-1c", 1000, 1),
)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class ServerResult:
    name: str
    cold_start_s: float
    peak_rss_mb: float = 0.0
    cold_starts: list[float] = field(default_factory=list)  # every start; cold_start_s: median
    loads: dict[str, Load] = field(default_factory=dict)
    answers: dict[int, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str


# -- the model --------------------------------------------------------------------------------


def iris_rows(n: int) -> list[list[float]]:
    from sklearn.datasets import load_iris

    data = load_iris().data.tolist()
    return [data[i % len(data)] for i in range(n)]


def body_for(rows: int) -> bytes:
    return json.dumps({"dataframe_split": {"columns": FEATURES, "data": iris_rows(rows)}}).encode()


# --model: the training job's classifier for each family, and what the table calls it.
FAMILIES = {
    "lr": ("logistic_regression", "StandardScaler + LogisticRegression"),
    "rf": ("random_forest", "StandardScaler + RandomForestClassifier, 100 trees"),
    "hgb": ("hist_gradient_boosting", "StandardScaler + HistGradientBoostingClassifier"),
}


def register_model(tracking_uri: str, name: str, classifier: str = "logistic_regression") -> str:
    """Train and register an Iris pipeline through the real training job; returns the
    version."""
    from mlflow import MlflowClient

    from jobs.train import main as train

    code = train(
        [
            "--tracking-uri",
            tracking_uri,
            "--model-name",
            name,
            "--seed",
            "1",
            "--trigger",
            "manual",
            "--force-promote",
            "--classifier",
            classifier,
        ]
    )
    if code != 0:
        raise RuntimeError(f"the training job failed with exit code {code}")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return str(client.get_model_version_by_alias(name, "production").version)


# -- processes ----------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def peak_rss_mb(root: int) -> float:
    """Sum of VmHWM (each process's peak resident set) over ``root`` and its descendants."""
    total_kb = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> float:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic()
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s; see {log}")


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def run_wrk(url: str, body_file: Path, connections: int, duration: int, workdir: Path) -> Load:
    script = workdir / f"{body_file.stem}.lua"
    script.write_text(_LUA.replace("{body}", str(body_file)))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("MLKUBE_RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    requests, duration_us, *errs, p50_us, p99_us = (int(x) for x in line.split()[1:])
    return Load(
        rps=requests / (duration_us / 1e6),
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        requests=requests,
        errors=sum(errs),
    )


def start_server(
    server: Server, port: int, bodies: dict[int, Path], workdir: Path, say: Callable[[str], None]
) -> tuple[subprocess.Popen[bytes], ServerResult]:
    """Start ``server``, time it to ready, warm it up and keep its answers for comparison."""
    log = workdir / f"{server.name}.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            server.command,
            env=server.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        ready = wait_ready(base + server.ready_path, proc, 300, log)
        result = ServerResult(server.name, cold_start_s=ready - started)
        say(f"  {server.name}: ready in {result.cold_start_s:.2f}s")
        for rows, path in bodies.items():  # warm up; the answers are compared in the report
            status, answer = post(base + "/invocations", path.read_bytes())
            if status != 200:
                raise RuntimeError(f"{server.name} answered {status} to {rows} rows: {answer!r}")
            result.answers[rows] = answer
    except BaseException:
        stop_process_group(proc)
        raise
    return proc, result


def median_load(loads: list[Load]) -> Load:
    return Load(
        rps=median_high([x.rps for x in loads]),
        p50_ms=median_high([x.p50_ms for x in loads]),
        p99_ms=median_high([x.p99_ms for x in loads]),
        requests=sum(x.requests for x in loads),
        errors=sum(x.errors for x in loads),
    )


# -- the report ---------------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    if unit == "rps":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:.0f}"


def _figure(key: str, name: str) -> Callable[[ServerResult], float]:
    def get(result: ServerResult) -> float:
        value: float = getattr(result.loads[key], name)
        return value

    return get


def report(
    results: dict[str, ServerResult], duration: int, rounds: int = 1
) -> tuple[str, list[tuple[str, bool]]]:
    ours, mlflow, bare = results["mlkube"], results.get("mlflow"), results.get("bare")
    rows: list[tuple[str, str, Callable[[ServerResult], float]]] = []
    for s in SCENARIOS:
        label = f"{s.rows} row{'s' if s.rows > 1 else ''}, {s.connections} conn"
        rows.append((f"req/s, {label}", "rps", _figure(s.key, "rps")))
        rows.append((f"p50 ms, {label}", "ms", _figure(s.key, "p50_ms")))
        rows.append((f"p99 ms, {label}", "ms", _figure(s.key, "p99_ms")))
    starts = max((len(r.cold_starts) for r in results.values()), default=1)
    label = (
        f"cold start s (start to ready, median of {starts})"
        if starts > 1
        else ("cold start s (start to ready)")
    )
    rows.append((label, "s", lambda r: r.cold_start_s))
    rows.append(("peak RSS MB (all processes)", "mb", lambda r: r.peak_rss_mb))

    names = [n for n in ("mlkube", "mlkube-nobatch", "mlflow", "bare") if n in results]
    titles = {
        "mlkube": "mlkube",
        "mlkube-nobatch": "mlkube, batching off",
        "mlflow": "mlflow models serve",
        "bare": "bare uvicorn (ceiling)",
    }
    header = ["metric", *(titles[n] for n in names), "mlkube / mlflow", "mlkube / ceiling"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, unit, get in rows:
        cells = [label]
        for n in names:
            try:
                cells.append(_fmt(get(results[n]), unit))
            except KeyError:
                cells.append("-")
        for other in (mlflow, bare):
            try:
                base = get(other) if other is not None else 0.0
                cells.append(f"{get(ours) / base:.2f}x" if base else "-")
            except KeyError:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    errors = {n: sum(load.errors for load in r.loads.values()) for n, r in results.items()}
    lines.append("")
    counts = ", ".join(f"{n} {e}" for n, e in errors.items())
    lines.append(
        f"wrk: {duration} s per run, 1 thread, loopback; median of {rounds} round(s); failed "
        f"requests (non-2xx, timeouts, socket errors): {counts}"
    )

    checks: list[tuple[str, bool]] = []
    single = ours.loads["1row-32c"]
    if mlflow is not None:
        ratio = single.rps / mlflow.loads["1row-32c"].rps
        checks.append((f"1-row req/s at 32 conns >= 20x mlflow: {ratio:.1f}x", ratio >= 20))
    if bare is not None:
        ratio = single.rps / bare.loads["1row-32c"].rps
        checks.append((f"1-row req/s at 32 conns >= 40% of the ceiling: {ratio:.0%}", ratio >= 0.4))
    checks.append((f"p99 at 32 conns <= 25 ms: {single.p99_ms:.2f} ms", single.p99_ms <= 25))
    p50 = ours.loads["1row-1c"].p50_ms
    checks.append((f"p50 at 1 conn <= 1 ms: {p50:.2f} ms", p50 <= 1))
    big = ours.loads["1000rows-1c"]
    text = f"a 1,000-row request <= 10 ms: p50 {big.p50_ms:.2f} ms, p99 {big.p99_ms:.2f} ms"
    checks.append((text, big.p50_ms <= 10))
    if mlflow is not None:
        ratio = ours.cold_start_s / mlflow.cold_start_s
        checks.append((f"cold start <= 50% of mlflow: {ratio:.0%}", ratio <= 0.5))
        ratio = ours.peak_rss_mb / mlflow.peak_rss_mb
        checks.append((f"peak RSS <= 60% of mlflow: {ratio:.0%}", ratio <= 0.6))
    if mlflow is not None:
        same = all(ours.answers[n] == mlflow.answers[n] for n in mlflow.answers)
        checks.append(("same response bodies as mlflow on every benchmark body", same))
    if errors.get("mlkube"):
        checks.append((f"no failed requests: {errors['mlkube']}", False))
    lines.append("")
    lines.extend(f"- [{'x' if ok else ' '}] {text}" for text, ok in checks)
    return "\n".join(lines), checks


# -- main ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serve", description=__doc__.split("\n\n")[1] if __doc__ else None
    )
    parser.add_argument(
        "--model",
        action="append",
        choices=sorted(FAMILIES),
        dest="models",
        help="model family, repeatable: lr, rf, hgb (default: all three)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat every run this many times; report medians"
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the batching-off variant of this server"
    )
    parser.add_argument(
        "--cold-starts",
        type=int,
        default=3,
        help="start each server this many times; the cold start reported is the median (3)",
    )
    parser.add_argument("--skip-mlflow", action="store_true", help="do not run mlflow models serve")
    parser.add_argument("--tracking-uri", help="use this MLflow server instead of a throwaway one")
    parser.add_argument("--model-name", help="with --tracking-uri: the registered model")
    parser.add_argument("--model-version", help="with --tracking-uri: the version (default: alias)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    if shutil.which("wrk") is None:
        sys.stderr.write(WRK_MISSING + "\n")
        return 1
    if args.duration < 1 or args.rounds < 1 or args.cold_starts < 1:
        sys.stderr.write("error: --duration, --rounds and --cold-starts must be at least 1\n")
        return 2
    if bool(args.tracking_uri) != bool(args.model_name):
        sys.stderr.write("error: --tracking-uri and --model-name go together\n")
        return 2

    families = args.models or list(FAMILIES)
    load_before = os.getloadavg()[0]
    started = datetime.now()
    sections: dict[str, tuple[str, str, list[tuple[str, bool]], dict[str, ServerResult]]] = {}
    with tempfile.TemporaryDirectory(prefix="mlkube-bench-") as tmp:
        workdir = Path(tmp)
        mlflow_server: MlflowServer | None = None
        try:
            models: list[tuple[str, str, str, str]] = []  # (family, title, name, version)
            if args.tracking_uri:
                uri, name = args.tracking_uri, args.model_name
                version = args.model_version or _alias_version(uri, name)
                models.append((name, f"models:/{name}/{version}", name, version))
            else:
                say("starting a throwaway MLflow server and training the models...")
                mlflow_server = MlflowServer(state_dir=workdir / "mlflow", port=free_port())
                uri = mlflow_server.start()
                for family in families:
                    classifier, title = FAMILIES[family]
                    name = f"bench-{family}"
                    models.append((family, title, name, register_model(uri, name, classifier)))
            for family, title, name, version in models:
                say(f"\n{family}: models:/{name}/{version} on {uri} ({title})")
                load = os.getloadavg()[0]
                results = run_all(args, uri, name, version, workdir / family, say)
                load = max(load, os.getloadavg()[0])
                table, checks = report(results, args.duration, args.rounds)
                body = f"{name} v{version}; 1-minute load average up to {load:.1f} during its runs"
                sections[family] = (title, body + "\n\n" + table, checks, results)
        finally:
            if mlflow_server is not None:
                mlflow_server.stop()

    load_after = os.getloadavg()[0]
    header = (
        f"{started.date().isoformat()}, {os.cpu_count()} cores, 1 worker each, "
        f"POST /invocations dataframe_split bodies; 1-minute load average "
        f"{load_before:.1f} at the start, {load_after:.1f} at the end"
    )
    text = [header]
    for family, (title, body, _, _) in sections.items():
        text += ["", f"### {family}: {title}", "", body]
    text += ["", summary(sections)]
    say("")
    say("\n".join(text))
    if args.markdown:
        args.markdown.write_text("\n".join(text) + "\n")
    if args.json:
        raw = {f: {n: _asdict(r) for n, r in sec[3].items()} for f, sec in sections.items()}
        args.json.write_text(json.dumps(raw, indent=2))
    missed = [(f, t) for f, sec in sections.items() for t, ok in sec[2] if not ok]
    if missed:
        say(f"\n{len(missed)} target(s) missed on this run (a busy machine shifts the figures)")
    return 3 if missed and args.strict else 0


def summary(
    sections: dict[str, tuple[str, str, list[tuple[str, bool]], dict[str, ServerResult]]],
) -> str:
    """One line per target, one column per family: met or not, with the figure."""
    families = list(sections)
    targets: dict[str, dict[str, str]] = {}
    for family, (_, _, checks, _) in sections.items():
        for text, ok in checks:
            target, _, figure = text.partition(": ")
            targets.setdefault(target, {})[family] = f"{'yes' if ok else '**no**'} {figure}".strip()
    lines = ["| target | " + " | ".join(families) + " |", "|---|" + "---|" * len(families)]
    for target, cells in targets.items():
        lines.append(f"| {target} | " + " | ".join(cells.get(f, "-") for f in families) + " |")
    return "\n".join(lines)


def run_all(
    args: argparse.Namespace,
    uri: str,
    name: str,
    version: str,
    workdir: Path,
    say: Callable[[str], None],
) -> dict[str, ServerResult]:
    workdir.mkdir(parents=True, exist_ok=True)
    bodies: dict[int, Path] = {}
    for rows in sorted({s.rows for s in SCENARIOS}):
        path = workdir / f"body-{rows}.json"
        path.write_bytes(body_for(rows))
        bodies[rows] = path
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PYTHONUNBUFFERED": "1",
        # `mlflow models serve` execs `uvicorn` from PATH: this interpreter's environment first
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    python = sys.executable

    def ours(batching: bool, port: int) -> Server:
        return Server(
            "mlkube" if batching else "mlkube-nobatch",
            [python, "-m", "service"],
            {
                **env,
                "MODEL_NAME": name,
                "MODEL_VERSION": version,
                "SERVE_HOST": "127.0.0.1",
                "SERVE_PORT": str(port),
                "LOG_LEVEL": "warning",
                "SERVE_BATCHING": "true" if batching else "false",
            },
            "/healthz/ready",
        )

    plan: list[tuple[Server, int]] = []
    port = free_port()
    plan.append((ours(True, port), port))
    if not args.quick:
        port = free_port()
        plan.append((ours(False, port), port))
    if not args.skip_mlflow:
        port = free_port()
        plan.append(
            (
                Server(
                    "mlflow",
                    [
                        python,
                        "-m",
                        "mlflow",
                        "models",
                        "serve",
                        "-m",
                        f"models:/{name}/{version}",
                        "--env-manager",
                        "local",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-w",
                        "1",
                    ],
                    env,
                    "/ping",
                ),
                port,
            )
        )
    port = free_port()
    plan.append(
        (
            Server(
                "bare",
                [
                    python,
                    "-m",
                    "uvicorn",
                    "bench.ceiling:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env,
                "/ping",
            ),
            port,
        )
    )

    # Start every server first (one at a time: cold starts do not overlap), then drive them in
    # turn, scenario by scenario, so that each comparison is made minutes apart at most on
    # this shared machine. An idle server costs the others nothing.
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, ServerResult] = {}
    urls: dict[str, str] = {}
    try:
        for server, port in plan:
            say(f"starting {server.name}...")
            proc, results[server.name] = start_server(server, port, bodies, workdir, say)
            procs.append(proc)
            urls[server.name] = f"http://127.0.0.1:{port}/invocations"
        runs: dict[tuple[str, str], list[Load]] = {}
        for round_ in range(args.rounds):
            for scenario in SCENARIOS:
                for name, url in urls.items():
                    load = run_wrk(
                        url, bodies[scenario.rows], scenario.connections, args.duration, workdir
                    )
                    runs.setdefault((name, scenario.key), []).append(load)
                    say(
                        f"  round {round_ + 1} {scenario.key} {name}: {load.rps:,.0f} req/s, "
                        f"p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms"
                        + (f", {load.errors} failed" if load.errors else "")
                    )
        for (name, key), loads in runs.items():
            results[name].loads[key] = median_load(loads)
        for proc, name in zip(procs, urls, strict=True):
            results[name].peak_rss_mb = peak_rss_mb(proc.pid)
    finally:
        for proc in procs:
            stop_process_group(proc)
    # Cold start again, each server in turn (one process at a time, so starts never overlap):
    # a single start on this shared machine varies by tens of percent.
    for result in results.values():
        result.cold_starts.append(result.cold_start_s)
    for _ in range(args.cold_starts - 1):
        for server, port in plan:
            proc, again = start_server(server, port, {}, workdir, say)
            stop_process_group(proc)
            results[server.name].cold_starts.append(again.cold_start_s)
    for result in results.values():
        result.cold_start_s = median_high(result.cold_starts)
    return results


def _alias_version(uri: str, name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return str(client.get_model_version_by_alias(name, "production").version)


def _asdict(result: ServerResult) -> dict[str, Any]:
    from dataclasses import asdict

    figures = asdict(result)
    figures.pop("answers")
    return figures


if __name__ == "__main__":
    sys.exit(main())
