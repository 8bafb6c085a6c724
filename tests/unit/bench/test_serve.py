"""`make bench`'s report: the figures, the ratios and the target checks; and a clear message
when wrk is missing."""

from __future__ import annotations

import os

import pytest

from bench import serve as bench
from bench.serve import (
    SCENARIOS,
    Load,
    ServerResult,
    median_load,
    peak_rss_mb,
    report,
    summary,
)


def result(name: str, rps: float, p50: float, p99: float, cold: float, rss: float) -> ServerResult:
    r = ServerResult(name, cold_start_s=cold, peak_rss_mb=rss)
    r.loads = {s.key: Load(rps=rps / s.rows ** 0.5, p50_ms=p50 * s.rows ** 0.3, p99_ms=p99,
                           requests=1000, errors=0) for s in SCENARIOS}  # fmt: skip
    r.answers = {1: b'{"predictions": ["setosa"]}'}
    return r


def test_report_checks_every_target() -> None:
    results = {
        "mlkube": result("mlkube", 4000, 0.4, 12, 2.0, 250),
        "mlflow": result("mlflow", 370, 2.9, 210, 4.7, 570),
        "bare": result("bare", 11000, 0.2, 5, 1.0, 50),
    }
    table, checks = report(results, duration=5, rounds=3)
    assert "| req/s, 1 row, 32 conn | 4,000 | 370 | 11,000 | 10.81x | 0.36x |" in table
    assert "median of 3 round(s)" in table
    outcome = {text.split(":")[0]: ok for text, ok in checks}
    assert outcome == {
        "1-row req/s at 32 conns >= 20x mlflow": False,  # 10.8x
        "1-row req/s at 32 conns >= 40% of the ceiling": False,  # 36%
        "p99 at 32 conns <= 25 ms": True,
        "p50 at 1 conn <= 1 ms": True,
        "a 1,000-row request <= 10 ms": True,  # p50 0.4 * 1000**0.3 = 3.2 ms
        "cold start <= 50% of mlflow": True,  # 43%
        "peak RSS <= 60% of mlflow": True,
        "same response bodies as mlflow on every benchmark body": True,
    }


def test_summary_has_a_column_per_family_and_marks_misses() -> None:
    mlflow = result("mlflow", 370, 2.9, 210, 4.7, 570)
    sections = {}
    for family, cold in (("lr", 2.0), ("rf", 3.0)):
        results = {"mlkube": result("mlkube", 9000, 0.4, 12, cold, 250), "mlflow": mlflow}
        table, checks = report(results, duration=5)
        sections[family] = ("title", table, checks, results)
    text = summary(sections)
    assert text.splitlines()[0] == "| target | lr | rf |"
    assert "| cold start <= 50% of mlflow | yes 43% | **no** 64% |" in text


def test_different_answers_fail_the_report() -> None:
    ours = result("mlkube", 4000, 0.4, 12, 2.0, 250)
    ours.answers = {1: b'{"predictions": ["virginica"]}'}
    _, checks = report({"mlkube": ours, "mlflow": result("mlflow", 370, 2.9, 210, 4.7, 570)}, 5)
    assert ("same response bodies as mlflow on every benchmark body", False) in checks


def test_median_load() -> None:
    loads = [Load(100, 1.0, 9.0, 10, 0), Load(300, 3.0, 7.0, 10, 1), Load(200, 2.0, 8.0, 10, 0)]
    assert median_load(loads) == Load(200, 2.0, 8.0, 30, 1)


def test_peak_rss_of_this_process() -> None:
    assert 10 < peak_rss_mb(os.getpid()) < 10_000


def test_missing_wrk_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    assert bench.main([]) == 1
    assert "wrk is missing" in capsys.readouterr().err
