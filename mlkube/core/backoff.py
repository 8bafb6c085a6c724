"""One backoff policy (exponential, capped), which each caller configures, and bounded retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Waits of ``first``, ``first * factor``, ... seconds, never more than ``cap``."""

    first: float = 0.5
    cap: float = 8.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1 for the first)."""
        return min(self.first * self.factor ** max(failures - 1, 0), max(self.cap, self.first))


DEFAULT = Backoff()


class Unreachable(RuntimeError):
    """A service did not answer within the time we were willing to wait."""


def with_backoff(
    fn: Callable[[], T],
    *,
    what: str,
    timeout: float,
    policy: Backoff = DEFAULT,
    retry_on: tuple[type[BaseException], ...] = (OSError,),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` until it succeeds, waiting as ``policy`` says between tries, for at most
    ``timeout`` seconds in all. Raises :class:`Unreachable` naming ``what`` after that."""
    deadline = clock() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except retry_on as exc:
            left = deadline - clock()
            if left <= 0:
                raise Unreachable(
                    f"{what} did not answer after {attempt} attempts in {timeout:.0f}s: {exc}"
                ) from exc
            delay = policy.delay(attempt)
            log.warning("%s not reachable yet (%s); retrying in %.1fs", what, exc, delay)
            sleep(min(delay, left))
