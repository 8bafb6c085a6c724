"""`make up` and the test fixtures stop what they started in bounded time, even a process group
that ignores SIGTERM (MLflow's did for 15 s or more)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mlkube.core.processes import stop_process_group
from tests.procs import group_members

pytestmark = [pytest.mark.integration]

# A leader and its forked worker, both deaf to SIGTERM; the worker outlives a dead leader.
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    time.sleep(120)
    os._exit(0)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_group_deaf_to_sigterm_is_killed_after_the_grace() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    assert len(group_members(proc.pid)) == 2
    started = time.monotonic()
    stop_process_group(proc, grace=1.0)
    elapsed = time.monotonic() - started
    assert proc.returncode is not None
    assert not group_members(proc.pid), "a process of the group survived"
    assert 1.0 <= elapsed < 6.0, f"stopped in {elapsed:.1f}s: the grace, then SIGKILL"
