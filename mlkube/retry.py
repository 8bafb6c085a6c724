"""Bounded retry with exponential backoff, for services that may not be up yet."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Unreachable(RuntimeError):
    """A service did not answer within the time we were willing to wait."""


def with_backoff(
    fn: Callable[[], T],
    *,
    what: str,
    timeout: float,
    first_delay: float = 0.5,
    max_delay: float = 8.0,
    retry_on: tuple[type[BaseException], ...] = (OSError,),
) -> T:
    """Call ``fn`` until it succeeds, sleeping 0.5, 1, 2, ... s between tries, for at most
    ``timeout`` seconds in all. Raises :class:`Unreachable` naming ``what`` after that."""
    deadline = time.monotonic() + timeout
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except retry_on as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unreachable(
                    f"{what} did not answer after {attempt} attempts in {timeout:.0f}s: {exc}"
                ) from exc
            log.warning("%s not reachable yet (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(min(delay, left))
            delay = min(delay * 2, max_delay)
