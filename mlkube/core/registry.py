"""The MLflow model registry, as every component talks to it: one client, one classification of
its errors, one backoff policy.

MLflow's answers fall in three groups (:func:`classify`):

- *not found*: the model is not registered (``RESOURCE_DOES_NOT_EXIST``, 404), or it has no such
  alias (MLflow's stores answer ``INVALID_PARAMETER_VALUE`` "Registered model alias ... not
  found"). A normal state: nothing is registered yet. Any other ``INVALID_PARAMETER_VALUE`` is a
  refusal, never "not found": the gate must not promote over a champion it failed to read.
- *refused*: any other 4xx, e.g. 401/403 when credentials are missing or lack the permission,
  404 from something that is not MLflow's API. :class:`RegistryRefused`.
- *unavailable*: no answer, 5xx or 429. :class:`RegistryUnavailable`.

:class:`Registry` wraps ``MlflowClient`` with that classification and a backoff window shared by
all its callers: after a failure, calls fail at once until the window ends (N Deployments cost
one failed call, not N timeouts); the first success closes it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from mlkube.core.backoff import Backoff

if TYPE_CHECKING:  # importing mlflow takes a second: only when a Registry is made
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)
T = TypeVar("T")

Outcome = Literal["not-found", "refused", "unavailable"]

# Refusals that say something about every call (credentials, permissions, a wrong URI, rate
# limits), not about the one asked: they open the backoff window too.
REGISTRY_WIDE = frozenset({401, 403, 404, 407, 429})
ALIAS_NOT_FOUND = re.compile(r"\balias\b.*\bnot found\b", re.IGNORECASE)

# How long the shared window stays shut after the 1st, 2nd, ... failure in a row.
REGISTRY_BACKOFF = Backoff(first=1.0, cap=60.0)

# Defaults the long-running components (the model server, the operator) give MLflow's client;
# users may still override them. MLflow retries a failed call 7 times with exponential backoff
# (minutes against a dead server); those components back off themselves (the server's load loop,
# the operator's shared window), so each call is one quick try. The timeout is per read, not per
# download. The training job keeps MLflow's own retries: a blip must not lose a finished training.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def apply_client_defaults() -> None:
    """Set :data:`MLFLOW_CLIENT_DEFAULTS` in this process's environment where unset."""
    for key, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)


class RegistryError(RuntimeError):
    """MLflow gave no usable answer; the caller keeps its current state."""


class RegistryUnavailable(RegistryError):
    """MLflow did not answer (or answered 5xx/429), or is backed off after failures."""


class RegistryRefused(RegistryError):
    """MLflow answered with a 4xx that is not "not found" (e.g. 401/403: credentials)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def status_of(exc: MlflowException) -> int:
    status: int = exc.get_http_status_code()  # type: ignore[no-untyped-call]
    return status


def classify(exc: MlflowException) -> Outcome:
    """What an MLflow error means (see the module docstring)."""
    code = str(getattr(exc, "error_code", ""))
    if code == "RESOURCE_DOES_NOT_EXIST":
        return "not-found"
    if code == "INVALID_PARAMETER_VALUE" and ALIAS_NOT_FOUND.search(str(exc)):
        return "not-found"
    status = status_of(exc)
    if 400 <= status < 500 and status != 429:
        return "refused"
    return "unavailable"


def short(what: BaseException | str, limit: int = 300) -> str:
    """An exception (or a message) as one line of at most ``limit`` characters, for logs,
    reasons and annotations."""
    text = " ".join(str(what).split())
    if not text and isinstance(what, BaseException):
        text = type(what).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Registry:
    """``MlflowClient`` with one error classification and one shared backoff window.

    Every call returns its answer, returns None for *not found*, or raises
    :class:`RegistryRefused` / :class:`RegistryUnavailable`."""

    def __init__(
        self,
        tracking_uri: str,
        *,
        backoff: Backoff = REGISTRY_BACKOFF,
        on_error: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._backoff = backoff
        self._on_error = on_error
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""  # the failure that opened the window, said again while it is shut

    # -- calls -----------------------------------------------------------------------------

    def alias_version(self, model_name: str, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at; None when the model or the alias does not exist."""
        return self._call(
            lambda: self.client.get_model_version_by_alias(model_name, alias),
            f"alias {alias} of model {model_name}",
        )

    def version(self, model_name: str, version: str) -> ModelVersion | None:
        """One version of a model; None when it does not exist."""
        return self._call(
            lambda: self.client.get_model_version(model_name, version),
            f"model {model_name} version {version}",
        )

    def set_version_tag(self, model_name: str, version: str, key: str, value: str) -> bool:
        """Tag a version; False when the version no longer exists."""

        def tag() -> bool:
            self.client.set_model_version_tag(model_name, version, key, value)
            return True

        return bool(self._call(tag, f"tagging model {model_name} version {version}"))

    # -- the backoff window ------------------------------------------------------------------

    def reset_backoff(self) -> None:
        """MLflow just showed it is up (e.g. it called us): try it now."""
        with self._lock:
            self._retry_at = 0.0

    @property
    def backing_off(self) -> bool:
        with self._lock:
            return bool(self._failures) and self._retry_at > self._clock()

    def _call(self, fn: Callable[[], T], what: str) -> T | None:
        from mlflow.exceptions import MlflowException

        self._gate()
        try:
            answer = fn()
        except MlflowException as exc:
            outcome = classify(exc)
            if outcome == "not-found":  # MLflow itself is fine: the thing is not there (yet)
                self._succeeded()
                log.debug("%s: not found (%s)", what, short(exc))
                return None
            if outcome == "refused":
                raise self._refused(exc, what) from exc
            raise self._failed(exc) from exc
        except OSError as exc:  # requests' errors derive from OSError
            raise self._failed(exc) from exc
        self._succeeded()
        return answer

    def _gate(self) -> None:
        with self._lock:
            wait = self._retry_at - self._clock()
            if self._failures and wait > 0:
                raise RegistryUnavailable(
                    f"MLflow at {self.tracking_uri} is backed off for another {wait:.1f}s "
                    f"after {self._failures} failed call(s); last: {self._last_error}"
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

    def _back_off(self) -> tuple[int, float]:
        """Count a failure and open (or widen) the window: (failures so far, its length)."""
        with self._lock:
            self._failures += 1
            delay = self._backoff.delay(self._failures)
            self._retry_at = self._clock() + delay
            return self._failures, delay

    def _failed(self, exc: BaseException) -> RegistryUnavailable:
        failures, delay = self._back_off()
        log.log(
            logging.WARNING if failures == 1 else logging.DEBUG,
            "MLflow at %s unreachable (%s); next try in %.1fs",
            self.tracking_uri,
            short(exc, 200),
            delay,
        )
        if self._on_error is not None:
            self._on_error()
        error = RegistryUnavailable(f"MLflow at {self.tracking_uri} unreachable: {short(exc, 200)}")
        self._last_error = str(error)
        return error

    def _refused(self, exc: Any, what: str) -> RegistryRefused:
        """MLflow answered, but not with what was asked: loud every time, and counted; the
        refusals that concern every call open the backoff window too."""
        status = status_of(exc)
        wide = status in REGISTRY_WIDE
        delay = self._back_off()[1] if wide else 0.0
        hint = ""
        if status in (401, 403):
            hint = (
                "; check the MLflow credentials (MLFLOW_TRACKING_USERNAME/PASSWORD, or "
                "MLFLOW_TRACKING_TOKEN) and their permission on the model"
            )
        log.warning(
            "MLflow at %s refused %s: %d %s%s%s",
            self.tracking_uri,
            what,
            status,
            short(exc, 200),
            hint,
            f"; next try in {delay:.1f}s" if wide else "",
        )
        if self._on_error is not None:
            self._on_error()
        refused = RegistryRefused(
            f"MLflow at {self.tracking_uri} refused {what}: {status} {short(exc, 200)}", status
        )
        if wide:
            self._last_error = str(refused)
        return refused
