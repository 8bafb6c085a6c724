"""The unit layer starts no process: what needs one (MLflow, uvicorn, helm, a fresh interpreter)
is an integration test. Any attempt fails the test that made it."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import pytest

# joblib counts physical cores with `cat /proc/cpuinfo` unless told the count.
os.environ.setdefault("LOKY_MAX_CPU_COUNT", str(os.cpu_count() or 1))


# platform.platform() runs `uname -p` once and caches it; MLflow's telemetry module calls it at
# import, which a test may be the first to do: done here, before any test refuses processes.
platform.platform()


@pytest.fixture(autouse=True)
def _no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any, args: Any, *_: Any, **__: Any) -> None:
        raise AssertionError(f"a unit test started a process: {args!r} (make it an integration "
                             "test, or give the code a fake runner)")  # fmt: skip

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
