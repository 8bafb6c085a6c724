"""The operator's view of the MLflow model registry: resolve an alias, tag a version.

MLflow's answers fall in three groups:

- *not found*: the model is not registered (RESOURCE_DOES_NOT_EXIST, 404), or it has no such
  alias (MLflow's stores answer INVALID_PARAMETER_VALUE "Registered model alias ... not found").
  A normal state: the alias is not set yet. ``resolve`` returns None.
- *refused*: any other 4xx, e.g. 401/403 when the operator's credentials are missing or lack the
  permission, 404 from something that is not MLflow's API. :class:`RegistryRefused`, logged as a
  WARNING naming the tracking URI and the status, counted as a registry error.
- *unavailable*: no answer, 5xx or 429. :class:`RegistryUnavailable`.

MLflow unreachable (or refusing every call) must not stall the operator: such a failure opens a
backoff window (shared by all callers, so N Deployments cost one failed call, not N timeouts)
during which calls fail at once; the first success closes it again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Literal

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rollout.plan import TAG_ROLLOUT, AliasTarget

log = logging.getLogger(__name__)

# Refusals that say something about every call (credentials, permissions, a wrong URI, rate
# limits), not about the one asked: they open the backoff window too.
REGISTRY_WIDE = frozenset({401, 403, 404, 407, 429})
ALIAS_NOT_FOUND = re.compile(r"\balias\b.*\bnot found\b", re.IGNORECASE)
Outcome = Literal["not-found", "refused", "unavailable"]


class RegistryError(RuntimeError):
    """MLflow gave no usable answer; the caller keeps the current state."""


class RegistryUnavailable(RegistryError):
    """MLflow did not answer (or answered 5xx), or is backed off after failures."""


class RegistryRefused(RegistryError):
    """MLflow answered with a 4xx that is not "not found" (e.g. 401/403: credentials)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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

    def _back_off(self) -> tuple[int, float]:
        """Count a failure and open (or widen) the window: (failures so far, its length)."""
        with self._lock:
            self._failures += 1
            delay = min(self._base_delay * 2 ** (self._failures - 1), self._max_delay)
            self._retry_at = self._clock() + delay
            return self._failures, delay

    def _failed(self, exc: BaseException) -> RegistryUnavailable:
        failures, delay = self._back_off()
        log.log(
            logging.WARNING if failures == 1 else logging.DEBUG,
            "MLflow at %s unreachable (%s); no rollout until it answers, next try in %.1fs",
            self.tracking_uri,
            _short(exc),
            delay,
        )
        if self._on_error is not None:
            self._on_error()
        return RegistryUnavailable(f"MLflow at {self.tracking_uri} unreachable: {_short(exc)}")

    def _refused(self, exc: MlflowException, what: str) -> RegistryRefused:
        """MLflow answered, but not with what we asked: loud every time (at most once per
        backoff window for the refusals that concern every call), and counted."""
        status = _status(exc)
        wide = status in REGISTRY_WIDE
        delay = self._back_off()[1] if wide else 0.0
        hint = ""
        if status in (401, 403):
            hint = (
                "; check the operator's MLflow credentials (MLFLOW_TRACKING_USERNAME/PASSWORD, "
                "or MLFLOW_TRACKING_TOKEN) and their permission on the model"
            )
        log.warning(
            "MLflow at %s refused %s: %d %s%s; no rollout until it answers%s",
            self.tracking_uri,
            what,
            status,
            _short(exc),
            hint,
            f", next try in {delay:.1f}s" if wide else "",
        )
        if self._on_error is not None:
            self._on_error()
        return RegistryRefused(
            f"MLflow at {self.tracking_uri} refused {what}: {status} {_short(exc)}", status
        )

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
        Raises RegistryUnavailable when MLflow does not answer, RegistryRefused when it
        refuses (e.g. 401/403)."""
        self._gate()
        try:
            version = self._client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            outcome = classify(exc)
            if outcome == "not-found":  # MLflow itself is fine: the alias is not set (yet)
                self._succeeded()
                log.debug("alias %s of model %s is not set: %s", alias, model_name, _short(exc))
                return None
            if outcome == "refused":
                raise self._refused(exc, f"alias {alias} of model {model_name}") from exc
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
            outcome = classify(exc)
            if outcome == "not-found":  # the version was deleted meanwhile
                self._succeeded()
                log.warning("cannot tag model %s version %s: %s", model_name, version, exc)
                return
            if outcome == "refused":
                what = f"tagging model {model_name} version {version}"
                raise self._refused(exc, what) from exc
            raise self._failed(exc) from exc
        except OSError as exc:
            raise self._failed(exc) from exc
        self._succeeded()


def _status(exc: MlflowException) -> int:
    status: int = exc.get_http_status_code()  # type: ignore[no-untyped-call]
    return status


def classify(exc: MlflowException) -> Outcome:
    """What an MLflow error means for the operator (see the module docstring)."""
    code = str(getattr(exc, "error_code", ""))
    if code == "RESOURCE_DOES_NOT_EXIST":
        return "not-found"
    if code == "INVALID_PARAMETER_VALUE" and ALIAS_NOT_FOUND.search(str(exc)):
        return "not-found"
    status = _status(exc)
    if 400 <= status < 500 and status != 429:
        return "refused"
    return "unavailable"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
