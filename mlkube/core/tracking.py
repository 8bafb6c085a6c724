"""Talking to the MLflow tracking server: wait until it answers, with bounded backoff."""

from __future__ import annotations

import urllib.error
import urllib.request

from mlkube.core.backoff import with_backoff


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_health(uri: str, timeout: float = 2.0) -> None:
    """One probe of ``<uri>/health``. Raises OSError when the server does not answer 200."""
    with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as resp:
        if resp.status != 200:
            raise urllib.error.URLError(f"HTTP {resp.status}")


def wait_for_tracking_server(uri: str, timeout: float) -> None:
    """Block until the MLflow server at ``uri`` answers, or raise ``Unreachable`` naming it.
    Local stores (``sqlite:``, ``file:``, paths) need no server and return at once."""
    if is_http(uri):
        with_backoff(lambda: check_health(uri), what=f"MLflow at {uri}", timeout=timeout)
