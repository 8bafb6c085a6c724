"""The running operator: kopf's watch of Deployments, the poll loop and the HTTP endpoint,
in one asyncio loop; blocking reconciles in a small thread pool, fed by one work queue.

Every trigger goes through :class:`rollout.workqueue.WorkQueue` (keyed by Deployment,
de-duplicated, rate-limited per key): watch events, webhooks, and the poll loop, which is a real
resync: every ``ROLLOUT_POLL_SECONDS`` it lists the labelled Deployments afresh from the API
server (not the watch's cached bodies) and resolves each alias once. The watch itself asks the
API server for labelled Deployments only (a label selector), cluster-wide or not.

``GET /healthz/ready`` (the chart's readiness probe) is 503 when the last successful read from
the API server (that list, or a watch event) is older than three polls (at least 30 s).

What kopf does here, and what it does not (so that a no-op writes nothing and RBAC stays small):

- one ``@kopf.on.event`` handler on ``apps/v1 deployments``: it only updates an in-memory view
  and triggers reconciles. Event handlers keep no state in the object: no finalizer, no
  ``last-handled-configuration`` annotation, no progress annotations (those come with
  ``on.create/update`` handlers, timers and daemons, none of which are used: the poll loop is
  ours, not a ``@kopf.timer``, precisely because timers add a finalizer to every Deployment);
- standalone (no peering objects), no namespace/CRD scanning, no kopf Events.

So the API calls are: list+watch Deployments (kopf, with a label selector), list Deployments
(the poll), get+patch Deployments, create+delete a canary Deployment, list pods and create
Events (ours). ``rollout.rbac.RULES`` says the same for the chart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from aiohttp import web

from mlkube.core.backoff import Backoff
from mlkube.core.names import LABEL_MODEL_NAME
from mlkube.core.record import RolloutPhase
from rollout import plan
from rollout.kube import Kube, connection_info, default_namespace, load_configuration
from rollout.metrics import Metrics
from rollout.reconciler import Key, Reconciler, Resolved
from rollout.registry import Registry
from rollout.settings import OperatorSettings
from rollout.webhook import AliasChanged, build_app
from rollout.workqueue import Item, WorkQueue

log = logging.getLogger(__name__)

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"
WORKERS = 4
READY_FLOOR_S = 30.0  # readiness tolerates at least this long without an API answer


@dataclass(frozen=True)
class Scope:
    namespaces: tuple[str, ...]  # empty: cluster-wide

    @property
    def cluster_wide(self) -> bool:
        return not self.namespaces

    def __str__(self) -> str:
        return "all namespaces" if self.cluster_wide else f"namespace {', '.join(self.namespaces)}"


def resolve_scope(settings: OperatorSettings, kubeconfig: str | None) -> Scope:
    if settings.cluster_wide:
        return Scope(())
    return Scope((settings.namespace or default_namespace(kubeconfig),))


class Operator:
    """One operator instance. ``run()`` until ``stop_flag`` is set (or the task is cancelled)."""

    def __init__(
        self,
        settings: OperatorSettings,
        *,
        kubeconfig: str | None = None,
        liveness: str | None = DEFAULT_LIVENESS,
        http_host: str = "0.0.0.0",
    ) -> None:
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.liveness = liveness
        self.http_host = http_host
        self.scope = resolve_scope(settings, kubeconfig)
        self.metrics = Metrics()
        self.kube = Kube(load_configuration(kubeconfig))
        self.registry = Registry(
            settings.tracking_uri,
            # Capped at one poll: the registry's return is noticed by the next poll.
            backoff=Backoff(first=min(settings.poll_seconds, 5.0), cap=settings.poll_seconds),
            on_error=self.metrics.registry_errors.inc,
        )
        self.reconciler = Reconciler(self.kube, self.registry, self.metrics)
        # The labelled Deployments, as last seen (the watch, the poll's fresh list).
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.queue: WorkQueue[Key] = WorkQueue(self._handle, workers=WORKERS)
        self.api_seen: float | None = None  # time.monotonic() of the last good API read
        self.ready_floor_s = READY_FLOOR_S
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=WORKERS, thread_name_prefix="reconcile"
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None

    # -- kopf ------------------------------------------------------------------------------

    def kopf_registry(self) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            # Re-read on every login: in a pod the service-account token is rotated.
            return connection_info(load_configuration(self.kubeconfig))

        @kopf.on.cleanup(registry=registry)
        async def shutdown(**_: Any) -> None:
            # Before kopf waits for leftover tasks: close the HTTP server (and its keep-alive
            # connections) and the poller now, or kopf counts them as hung for 5 s.
            await self._stop_extras()

        @kopf.on.event(
            "apps", "v1", "deployments", labels={LABEL_MODEL_NAME: kopf.PRESENT}, registry=registry
        )
        async def deployment_event(event: Mapping[str, Any], **_: Any) -> None:
            await self.on_event(event)

        return registry

    async def on_event(self, event: Mapping[str, Any]) -> None:
        self.api_seen = time.monotonic()
        raw = event.get("object") or {}
        meta = raw.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        watched = plan.parse(raw)
        if event.get("type") == "DELETED" or watched is None:
            self._forget(key)
            return
        previous = self.deployments.get(key)
        self.deployments[key] = dict(raw)
        # React at once to what matters (new Deployment, alias/pin edited, rollout progress);
        # status churn of a settled Deployment waits for the next poll.
        if (
            previous is None
            or plan.parse(previous) != watched
            or watched.record.phase is RolloutPhase.PROGRESSING
        ):
            self.queue.add(key, "event", body=raw, resolved=None)

    def _forget(self, key: Key) -> None:
        if self.deployments.pop(key, None) is not None:
            log.info("deployment %s/%s is gone or unlabelled: forgotten", *key)
            self.reconciler.forget(key)
            self.queue.forget(key)

    # -- reconciles --------------------------------------------------------------------------

    async def _handle(self, item: Item[Key]) -> None:
        action = await self.reconcile(
            item.key,
            item.trigger,
            body=item.payload.get("body"),
            resolved=item.payload.get("resolved"),
        )
        if action.recheck_after is not None and item.key in self.deployments:
            # A rollout in progress is looked at again when its next verdict is due (a load
            # error confirmed, the deadline), not only at the next poll.
            self.queue.add(
                item.key, "recheck", after=max(action.recheck_after, 0.5), body=None, resolved=None
            )

    async def reconcile(
        self,
        key: Key,
        trigger: str,
        *,
        body: Mapping[str, Any] | None = None,
        resolved: Resolved | None = None,
    ) -> plan.Action:
        loop = asyncio.get_running_loop()
        call = functools.partial(
            self.reconciler.reconcile, key[0], key[1], trigger=trigger, body=body, resolved=resolved
        )
        return await loop.run_in_executor(self._executor, call)

    async def poll_once(self) -> None:
        """A resync: list the labelled Deployments afresh, look each (model, alias) up once,
        queue every Deployment, and wait until those reconciles ran."""
        loop = asyncio.get_running_loop()
        try:
            listed = await loop.run_in_executor(
                self._executor, self.kube.list_labelled, self.scope.namespaces, LABEL_MODEL_NAME
            )
        except Exception as exc:  # the API server is away: readiness will say so
            log.warning(
                "cannot list Deployments (%s); next try in %ss", exc, self.settings.poll_seconds
            )
            return
        self.api_seen = time.monotonic()
        bodies: dict[Key, dict[str, Any]] = {}
        for body in listed:
            meta = body.get("metadata") or {}
            if plan.parse(body) is not None:
                bodies[(meta.get("namespace") or "default", meta.get("name") or "")] = body
        for key in set(self.deployments) - set(bodies):
            self._forget(key)
        self.deployments.update(bodies)
        groups: dict[tuple[str, str], list[Key]] = defaultdict(list)
        for key, body in bodies.items():
            watched = plan.parse(body)
            if watched is not None:
                groups[(watched.model_name, watched.alias)].append(key)
        waiters = []
        for (model, alias), keys in groups.items():
            resolved = await loop.run_in_executor(
                self._executor, self.reconciler.resolve, model, alias
            )
            for key in keys:
                waiters.append(self.queue.add(key, "poll", body=bodies[key], resolved=resolved))
        await asyncio.gather(*waiters, return_exceptions=True)

    def readiness(self) -> tuple[bool, str]:
        """Ready while the API server answered (a list or a watch event) recently."""
        limit = max(3 * self.settings.poll_seconds, self.ready_floor_s)
        if self.api_seen is None:
            return False, "no answer from the Kubernetes API server yet"
        age = time.monotonic() - self.api_seen
        if age > limit:
            return False, f"no answer from the Kubernetes API server for {age:.0f}s"
        return True, f"API server read {age:.0f}s ago; {len(self.deployments)} Deployment(s)"

    async def poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                await self.poll_once()
            except Exception:  # one bad cycle must not end polling
                log.exception("poll cycle failed")

    async def on_alias(self, change: AliasChanged) -> int:
        """A verified webhook: queue the Deployments following that alias (each looks the alias
        up afresh). The registry's backoff window is left as it is: a burst of deliveries must
        not turn into a burst of calls to an MLflow that just failed."""
        self.reconciler.note_alias_change(
            change.model_name, change.alias, change.version, change.timestamp
        )
        keys = [
            key
            for key, body in self.deployments.items()
            if (w := plan.parse(body)) is not None
            and (w.model_name, w.alias) == (change.model_name, change.alias)
        ]
        for key in keys:
            self.queue.add(key, "webhook", body=None, resolved=None)
        return len(keys)

    # -- lifecycle ---------------------------------------------------------------------------

    async def _serve_http(self) -> web.AppRunner:
        secret = self.settings.webhook_secret.get_secret_value()
        if not secret:
            log.warning(
                "ROLLOUT_WEBHOOK_SECRET is empty: POST /webhook answers 401; "
                "polling every %ss still rolls out",
                self.settings.poll_seconds,
            )
        app = build_app(secret, self.metrics, self.on_alias, self.readiness)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.http_host, self.settings.http_port)
        await site.start()
        log.info(
            "serving POST /webhook and GET /metrics on %s:%s",
            self.http_host,
            self.settings.http_port,
        )
        return runner

    async def run(
        self,
        stop_flag: asyncio.Event | concurrent.futures.Future[Any] | None = None,
        ready_flag: asyncio.Event | None = None,
    ) -> None:
        log.info(
            "rollout operator: watching Deployments labelled %s in %s; MLflow at %s; "
            "polling every %ss",
            LABEL_MODEL_NAME,
            self.scope,
            self.settings.tracking_uri,
            self.settings.poll_seconds,
        )
        self._runner = await self._serve_http()
        self.queue.start()
        self._poller = asyncio.create_task(self.poll_forever(), name="rollout poller")
        try:
            await kopf.operator(
                registry=self.kopf_registry(),
                settings=new_kopf_settings(),
                standalone=True,
                clusterwide=self.scope.cluster_wide,
                namespaces=list(self.scope.namespaces),
                liveness_endpoint=self.liveness,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        finally:
            await self._stop_extras()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self.kube.close()

    async def _stop_extras(self) -> None:
        poller, self._poller = self._poller, None
        runner, self._runner = self._runner, None
        for task in [*self._tasks, *([poller] if poller else [])]:
            task.cancel()
        if poller is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await self.queue.stop()
        if runner is not None:
            await runner.cleanup()


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """The kopf settings that keep the operator's footprint to list/watch of Deployments."""
    settings.peering.standalone = True  # one replica; no KopfPeering objects to read or write
    settings.scanning.disabled = True  # no list/watch of namespaces and CRDs
    settings.posting.enabled = False  # kopf's own Events off; ours are created explicitly
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300  # re-list now and then: a safety net for lost events
    # Server-side filtering: the API server sends labelled Deployments only (cluster-wide too).
    settings.watching.label_selectors["apps", "v1", "deployments"] = LABEL_MODEL_NAME


def new_kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    return settings
