"""Loading the model from the MLflow registry, retrying while it is away, and watching the alias.

The service never crash-loops on a registry outage: at start it retries with backoff (live 200,
ready 503 meanwhile), and once a model is loaded it keeps serving it whatever MLflow does.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlkube.core.backoff import Backoff
from mlkube.core.registry import Registry, RegistryError, short
from mlkube.core.tracking import check_health, is_http
from service.errors import ModelNotLoaded
from service.runtime.model import LoadedModel, ModelInfo
from service.settings import Settings

if TYPE_CHECKING:  # MLflow is imported when a model is loaded, not at import
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

# Between tries to load the first model: 0.5 s, 1, 2, ... up to 10 s.
LOAD_BACKOFF = Backoff(first=0.5, cap=10.0)
# The loader backs off itself: the registry's shared window stays open.
NO_WINDOW = Backoff(first=0.0, cap=0.0)


class NothingToServe(RuntimeError):
    """The registry answered: the model, the alias or the pinned version does not exist (yet)."""


class ModelStore:
    """Holds the model being served. Swapping is one reference assignment (atomic under the
    GIL): a request that already took ``current`` finishes on that model."""

    def __init__(self) -> None:
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.attempts = 0

    def require(self) -> LoadedModel:
        model = self.current
        if model is None:
            detail = f": {self.last_error}" if self.last_error else ""
            raise ModelNotLoaded(f"the model is not loaded yet{detail}")
        return model

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        previous, self.current = self.current, model
        self.last_error = None
        return previous


def resolve_version(settings: Settings) -> ModelVersion:
    """The version to serve (its registry entry): MODEL_VERSION when pinned, else the alias's
    current target.
    Raises NothingToServe when the registry says it does not exist, RegistryRefused when it
    refuses (credentials), RegistryUnavailable or OSError when it does not answer."""
    if is_http(settings.tracking_uri):
        check_health(settings.tracking_uri, timeout=5.0)  # fail fast when MLflow is away
    registry = Registry(settings.tracking_uri, backoff=NO_WINDOW)
    if settings.model_version:
        found = registry.version(settings.model_name, settings.model_version)
    else:
        found = registry.alias_version(settings.model_name, settings.model_alias)
    if found is None:
        raise NothingToServe(
            f"{settings.model_uri_description} does not exist in the registry yet "
            "(no training has registered it)"
        )
    return found


def load_version(settings: Settings, mv: ModelVersion) -> LoadedModel:
    """Download ``models:/<name>/<version>`` into a temporary directory, load it, delete the
    files (scikit-learn models live in memory once loaded)."""
    import mlflow.artifacts
    import mlflow.pyfunc

    from service.skops_names import import_skops

    started = time.perf_counter()
    uri = f"models:/{settings.model_name}/{mv.version}"
    workdir = tempfile.mkdtemp(prefix="mlkube-model-")
    try:
        # Explicit URIs, no process-global MLflow state (tests run several apps in one process).
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri,
            dst_path=workdir,
            tracking_uri=settings.tracking_uri,
            registry_uri=settings.tracking_uri,
        )
        import_skops()  # before MLflow imports it: without importing all of scikit-learn
        pyfunc = mlflow.pyfunc.load_model(local)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    signature = pyfunc.metadata.signature
    info = ModelInfo(
        name=settings.model_name,
        version=str(mv.version),
        alias=None if settings.model_version else settings.model_alias,
        run_id=mv.run_id,
        source=mv.source,
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
        flavors=tuple(sorted(pyfunc.metadata.flavors)),
        signature=signature.to_dict() if signature is not None else None,
    )
    model = LoadedModel(info, pyfunc)
    elapsed = time.perf_counter() - started
    model.info = replace(info, load_seconds=round(elapsed, 3))  # the self-checks included
    log.info("loaded %s in %.2fs", uri, elapsed)
    return model


def load_model(settings: Settings) -> LoadedModel:
    return load_version(settings, resolve_version(settings))


OnLoaded = Callable[[LoadedModel, LoadedModel | None], None]
OnFailed = Callable[[str], None]


async def keep_loaded(
    store: ModelStore,
    settings: Settings,
    on_loaded: OnLoaded,
    on_failed: OnFailed,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> None:
    """Load the model, retrying with backoff until it works; then, in watch mode, follow the
    alias. Runs until cancelled (at shutdown)."""
    while store.current is None:
        store.attempts += 1
        try:
            model = await asyncio.to_thread(load_model, settings)
        except Exception as exc:
            message = describe(exc)
            delay = LOAD_BACKOFF.delay(store.attempts)
            store.last_error = message
            on_failed(message)
            log.warning(
                "cannot load %s yet (attempt %d): %s; retrying in %.1fs",
                settings.model_uri_description,
                store.attempts,
                message,
                delay,
            )
            await sleep(delay)
            continue
        on_loaded(model, store.swap(model))

    if settings.model_version or settings.model_watch_seconds <= 0:
        return
    log.info(
        "watching %s every %.1fs", settings.model_uri_description, settings.model_watch_seconds
    )
    while True:
        await sleep(settings.model_watch_seconds)
        await watch_once(store, settings, on_loaded, on_failed)


async def watch_once(
    store: ModelStore, settings: Settings, on_loaded: OnLoaded, on_failed: OnFailed
) -> bool:
    """One poll of the alias; loads and swaps in a new version fully before switching.
    Returns True when it swapped."""
    try:
        mv = await asyncio.to_thread(resolve_version, settings)
        current = store.current
        if current is not None and current.info.version == str(mv.version):
            return False
        model = await asyncio.to_thread(load_version, settings, mv)
    except Exception as exc:  # keep serving the current model
        message = describe(exc)
        on_failed(message)
        log.warning(
            "watching %s: %s; still serving the current model",
            settings.model_uri_description,
            message,
        )
        return False
    previous = store.swap(model)
    log.info(
        "%s now serves v%s (was v%s)",
        settings.model_uri_description,
        model.info.version,
        previous.info.version if previous else "-",
    )
    on_loaded(model, previous)
    return True


def describe(exc: BaseException) -> str:
    """Why the model is not loaded, as /healthz/ready and the log say it."""
    if isinstance(exc, NothingToServe | RegistryError):
        return short(exc)  # our own messages say what happened
    return f"{type(exc).__name__}: {short(exc)}"
