"""The operator's view of the MLflow model registry: resolve an alias, tag a version.

MLflow unreachable must not stall the operator: every failure opens a backoff window (shared by
all callers, so N Deployments cost one failed call, not N timeouts) during which calls fail at
once with :class:`RegistryUnavailable`; the first success closes it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rollout.plan import TAG_ROLLOUT, AliasTarget

log = logging.getLogger(__name__)


class RegistryUnavailable(RuntimeError):
    """MLflow did not answer (or answered 5xx); the caller keeps the current state."""


class Registry:
    def __init__(
        self,
        tracking_uri: str,
        *,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        on_error: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._base_delay = base_delay
        self._max_delay = max(max_delay, base_delay)
        self._on_error = on_error
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._retry_at = 0.0

    # -- backoff ---------------------------------------------------------------------------

    def _gate(self) -> None:
        with self._lock:
            wait = self._retry_at - self._clock()
            if self._failures and wait > 0:
                raise RegistryUnavailable(
                    f"MLflow at {self.tracking_uri} is backed off for another {wait:.1f}s "
                    f"after {self._failures} failed call(s)"
                )

    def _succeeded(self) -> None:
        with self._lock:
            if self._failures:
                log.info(
                    "MLflow at %s answers again (after %d failed call(s))",
                    self.tracking_uri,
                    self._failures,
                )
            self._failures = 0
            self._retry_at = 0.0

    def _failed(self, exc: BaseException) -> RegistryUnavailable:
        with self._lock:
            self._failures += 1
            delay = min(self._base_delay * 2 ** (self._failures - 1), self._max_delay)
            self._retry_at = self._clock() + delay
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(
                level,
                "MLflow at %s unreachable (%s); no rollout until it answers, next try in %.1fs",
                self.tracking_uri,
                _short(exc),
                delay,
            )
        if self._on_error is not None:
            self._on_error()
        return RegistryUnavailable(f"MLflow at {self.tracking_uri} unreachable: {_short(exc)}")

    def reset_backoff(self) -> None:
        """MLflow just called us (a webhook): it is up, so try it now."""
        with self._lock:
            self._retry_at = 0.0

    @property
    def backing_off(self) -> bool:
        with self._lock:
            return bool(self._failures) and self._retry_at > self._clock()

    # -- calls -----------------------------------------------------------------------------

    def resolve(self, model_name: str, alias: str) -> AliasTarget | None:
        """The version ``alias`` points at, or None when the model or alias does not exist.
        Raises RegistryUnavailable when MLflow does not answer."""
        self._gate()
        try:
            version = self._client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            if _is_client_error(exc):  # 4xx: no such model/alias; MLflow itself is fine
                self._succeeded()
                log.debug("alias %s of model %s not found: %s", alias, model_name, exc)
                return None
            raise self._failed(exc) from exc
        except OSError as exc:  # requests' errors derive from OSError
            raise self._failed(exc) from exc
        self._succeeded()
        tags = dict(version.tags or {})
        return AliasTarget(version=str(version.version), rollout_tag=tags.get(TAG_ROLLOUT))

    def tag(self, model_name: str, version: str, value: str) -> None:
        """Set ``mlkube.rollout=<value>`` on the model version."""
        self._gate()
        try:
            self._client.set_model_version_tag(model_name, version, TAG_ROLLOUT, value)
        except MlflowException as exc:
            if _is_client_error(exc):
                self._succeeded()
                log.warning("cannot tag model %s version %s: %s", model_name, version, exc)
                return
            raise self._failed(exc) from exc
        except OSError as exc:
            raise self._failed(exc) from exc
        self._succeeded()


def _is_client_error(exc: MlflowException) -> bool:
    status: int = exc.get_http_status_code()  # type: ignore[no-untyped-call]
    return 400 <= status < 500


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
