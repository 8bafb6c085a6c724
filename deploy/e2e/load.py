"""A small, bounded background load (the e2e test's requests through the Ingress during a
rollout), and its report."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadReport:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.sent} requests, {self.failed} failed"


class Load:
    """A small background load: ``workers`` threads calling ``send`` (which returns the HTTP
    status) until stopped, ``max_requests`` is reached, or ``max_seconds`` pass. Every bound is
    enforced, so a stuck rollout cannot turn it into an endless loop."""

    def __init__(
        self,
        send: Callable[[], int],
        *,
        workers: int = 2,
        max_requests: int = 20_000,
        max_seconds: float = 900.0,
        pause: float = 0.02,
    ) -> None:
        self.send = send
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _worker(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self.report.sent >= self.max_requests:
                    return
                self.report.sent += 1
            try:
                status = self.send()
                error = None if status == 200 else f"HTTP {status}"
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                with self._lock:
                    self.report.failed += 1
                    if len(self.report.errors) < 20:
                        self.report.errors.append(f"{time.strftime('%H:%M:%S')} {error}")
            self._stop.wait(self.pause)

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_seconds
        self._threads = [
            threading.Thread(target=self._worker, args=(deadline,), daemon=True, name=f"load-{i}")
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.report

    def close(self) -> None:
        self.stop()

    def wait_sent(self, count: int, timeout: float = 60.0) -> bool:
        """Block (real time, bounded) until ``count`` requests went out; False if they did not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.report.sent >= count:
                    return True
            if not any(t.is_alive() for t in self._threads):
                return False
            time.sleep(0.05)
        return False
