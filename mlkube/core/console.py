"""Progress output a person can follow: one header per step, indented details, a clear verdict.
The one console of `make deploy` and friends and of `make up`."""

from __future__ import annotations

import sys
from typing import TextIO


class Console:
    """``==> [2/5] Building images``, then the step's details indented under it."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def _write(self, text: str) -> None:
        """A reader that went away (`make up | tee` after Ctrl-C, a closed terminal) must never
        stop what runs, least of all a shutdown: its errors are dropped."""
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except OSError:
            pass

    def header(self, index: int, total: int, title: str) -> None:
        self._write(f"==> [{index}/{total}] {title}")

    def info(self, message: str) -> None:
        for line in message.splitlines() or [""]:
            self._write(f"    {line}")

    def warn(self, message: str) -> None:
        for line in message.splitlines() or [""]:
            self._write(f"    ! {line}")

    def done(self, seconds: float) -> None:
        self._write(f"    ok ({seconds:.1f}s)")

    def failed(self, title: str, error: str, look: str) -> None:
        self._write(f"\nFAILED: {title}")
        for line in error.splitlines():
            self._write(f"  {line}")
        if look:
            self._write(f"Look with:\n  {look}")

    def text(self, message: str) -> None:
        self._write(message)
