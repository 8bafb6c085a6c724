"""Carries out :func:`rollout.plan.decide` for one Deployment: read, decide, patch, tag, emit.

Blocking (the Kubernetes and MLflow clients are synchronous): the operator runs it in worker
threads, one Deployment at a time per Deployment (a lock per name), any number in parallel.

The pods are read only when a decision depends on them (a rollout in progress, completed or out
of time): they say whether pods serve the version, and why not. A patch the API server refuses
(admission denial, policy, RBAC, invalid object) is posted as a Warning Event on the Deployment
and not sent again before a backoff ends, unless the Deployment changed meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from mlkube.core.backoff import Backoff
from rollout import canary, plan
from rollout.diagnosis import pod_version
from rollout.kube import Conflict, Kube, PatchRejected
from rollout.kube import pod_view as kube_pod_view
from rollout.metrics import Metrics
from rollout.patches import with_precondition
from rollout.registry import Registry, RegistryError

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 5
Key = tuple[str, str]  # namespace, name
# After the API server refused a patch: 30 s, 1 min, 2 min, ... at most 15 min.
REFUSAL_BACKOFF = Backoff(first=30.0, cap=900.0)


@dataclass
class _Refusal:
    resource_version: str | None  # of the object the refused patch was made against
    failures: int
    retry_at: float  # time.monotonic()


@dataclass
class _AliasClock:
    version: str
    changed: float | None  # when the alias moved to ``version`` (epoch s); None: unknown/reported
    seen: float  # when a lookup last saw it


@dataclass(frozen=True)
class Resolved:
    """One registry lookup, shared by every Deployment that follows the same alias."""

    target: plan.AliasTarget | None  # None with ok: the alias is not set
    ok: bool  # False: MLflow did not answer or refused (e.g. 401/403), ``target`` means nothing
    error: str | None = None  # why not ok, in one line


class Reconciler:
    def __init__(self, kube: Kube, registry: Registry, metrics: Metrics) -> None:
        self.kube = kube
        self.registry = registry
        self.metrics = metrics
        self._locks: dict[Key, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # (model, alias) -> what the alias was last seen pointing at, for the latency metric.
        self._aliases: dict[tuple[str, str], _AliasClock] = {}
        self._alias_guard = threading.Lock()
        self._refusals: dict[Key, _Refusal] = {}
        # What the stable pods had counted when a canary started: (version, counts).
        self._baselines: dict[Key, tuple[str, canary.Sample]] = {}
        self.clock = time.monotonic

    # -- registry ----------------------------------------------------------------------------

    def resolve(self, model_name: str, alias: str) -> Resolved:
        try:
            target = self.registry.resolve(model_name, alias)
        except RegistryError as exc:  # the registry logged it (WARNING) and counted it
            log.debug("%s", exc)
            return Resolved(None, ok=False, error=str(exc))
        if target is not None:
            self._saw_alias(model_name, alias, target.version, None)
        return Resolved(target, ok=True)

    def note_alias_change(self, model_name: str, alias: str, version: str, when: float) -> None:
        """A webhook said the alias moved at ``when`` (epoch seconds): the exact start time."""
        self._saw_alias(model_name, alias, version, when)

    def _saw_alias(self, model: str, alias: str, version: str, when: float | None) -> None:
        now = time.time()
        with self._alias_guard:
            known = self._aliases.get((model, alias))
            if when is not None:  # a webhook: the change time is known exactly
                self._aliases[(model, alias)] = _AliasClock(version, when, now)
            elif known is None:  # first sighting (operator start): the change time is unknown
                self._aliases[(model, alias)] = _AliasClock(version, None, now)
            elif known.version != version:
                # Moved between the last lookup that saw the old version and now: count from
                # that lookup (an upper bound, at most one poll interval too long).
                self._aliases[(model, alias)] = _AliasClock(version, known.seen, now)
            else:
                known.seen = now

    def _alias_latency(self, model: str, alias: str, version: str) -> float | None:
        """Seconds since the alias moved to ``version``; reported once per alias move."""
        with self._alias_guard:
            known = self._aliases.get((model, alias))
            if known is None or known.version != version or known.changed is None:
                return None
            changed, known.changed = known.changed, None
        return max(0.0, time.time() - changed)

    # -- one Deployment ----------------------------------------------------------------------

    def forget(self, key: Key) -> None:
        with self._locks_guard:
            self._locks.pop(key, None)
            self._refusals.pop(key, None)
            self._baselines.pop(key, None)

    def backing_off(self, key: Key, body: Mapping[str, Any] | None = None) -> bool:
        """True while a refused patch of this Deployment waits out its backoff (and the
        Deployment, when ``body`` is given, is still the object that was refused)."""
        refusal = self._refusals.get(key)
        if refusal is None or self.clock() >= refusal.retry_at:
            return False
        if body is not None:
            version = (body.get("metadata") or {}).get("resourceVersion")
            return version == refusal.resource_version
        return True

    def _lock(self, key: Key) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def reconcile(
        self,
        namespace: str,
        name: str,
        *,
        trigger: str,
        body: Mapping[str, Any] | None = None,
        resolved: Resolved | None = None,
    ) -> plan.Action:
        """Bring one Deployment in line with its alias. ``body`` (e.g. from the watch cache)
        spares a read when nothing is to be done; before any write the Deployment is re-read.
        Never raises: errors are logged and counted, the next poll tries again."""
        with self._lock((namespace, name)):
            try:
                action = self._reconcile(namespace, name, trigger, body, resolved)
            except _Refused as refused:
                self._refused((namespace, name), refused)
                self.metrics.reconciles.labels(trigger=trigger, action="error").inc()
                return plan.Action(plan.Kind.NOOP, reason=f"patch rejected: {refused.error}")
            except Exception:
                log.exception("reconcile of deployment %s/%s failed", namespace, name)
                self.metrics.reconciles.labels(trigger=trigger, action="error").inc()
                return plan.Action(plan.Kind.NOOP, reason="error")
        self.metrics.reconciles.labels(trigger=trigger, action=action.kind.value).inc()
        return action

    def _reconcile(
        self,
        namespace: str,
        name: str,
        trigger: str,
        body: Mapping[str, Any] | None,
        resolved: Resolved | None,
    ) -> plan.Action:
        gone = plan.Action(plan.Kind.NOOP, reason="deployment is gone")
        fresh = body is None
        if body is None:
            body = self.kube.read(namespace, name)
            if body is None:
                return gone
        parsed = plan.parse(body)
        if parsed is None:
            return plan.Action(plan.Kind.NOOP, reason="not labelled for the operator")
        if parsed.record.hold is not None:  # held: not even a registry lookup
            return plan.decide(body, None)
        key = (namespace, name)
        if self.backing_off(key, body):
            return plan.Action(plan.Kind.NOOP, reason="backing off after a refused patch")
        watched: plan.Watched = parsed
        lookup: Resolved = resolved or self.resolve(watched.model_name, watched.alias)

        def decide(current: Mapping[str, Any]) -> plan.Action:
            action = first(current)
            if action.needs_pods:
                pods = self.kube.pods(current)
                action = first(current, pods=pods)
            elif action.kind is plan.Kind.CANARY_JUDGE:
                observed = self._observe_canary(key, current)
                action = first(current, canary_observed=observed)
            return action

        def first(current: Mapping[str, Any], **seen: Any) -> plan.Action:
            return plan.decide(
                current, lookup.target, lookup.ok, registry_error=lookup.error, **seen
            )

        def decide_again(current: Mapping[str, Any]) -> plan.Action:
            nonlocal watched, lookup
            now = plan.parse(current)
            if now is None:
                return plan.Action(plan.Kind.NOOP, reason="not labelled for the operator")
            if (now.model_name, now.alias) != (watched.model_name, watched.alias):
                lookup = self.resolve(now.model_name, now.alias)  # relabelled meanwhile
            watched = now
            return decide(current)

        action = first(body)
        if action.patch and not fresh:  # decide again on the current object before writing
            body = self.kube.read(namespace, name)
            if body is None:
                return gone
            action = decide_again(body)
        elif action.needs_pods or action.kind is plan.Kind.CANARY_JUDGE:
            action = decide(body)
        for _attempt in range(MAX_CONFLICT_RETRIES):
            if not action.patch:
                break
            try:
                patched = self.kube.patch(namespace, name, with_precondition(body, action.patch))
            except PatchRejected as exc:
                raise _Refused(exc, body, action) from exc
            except Conflict as exc:
                log.info(
                    "deployment %s/%s changed while we patched it (%s); re-reading",
                    namespace,
                    name,
                    exc,
                )
                body = self.kube.read(namespace, name)
                if body is None:
                    return gone
                action = decide_again(body)
                continue
            if patched is None:
                return gone
            self.metrics.patches.labels(action=action.kind.value).inc()
            body = patched
            break
        else:
            log.warning(
                "deployment %s/%s kept changing under us; trying again next poll", namespace, name
            )
            return plan.Action(plan.Kind.NOOP, reason="conflicts")

        if action.patch:
            self._refusals.pop(key, None)
        self._canary_objects(key, body, action)
        self._report(namespace, name, body, action, watched.model_name, watched.alias)
        return action

    def _report(
        self,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        action: plan.Action,
        model: str,
        alias: str,
    ) -> None:
        where = f"deployment {namespace}/{name}"
        if action.kind is plan.Kind.NOOP:
            log.debug("%s: %s", where, action.reason)
            return
        log.info("%s: %s", where, action.reason)
        if action.kind is plan.Kind.ROLL and action.version is not None:
            self.metrics.rollouts.labels(result="started").inc()
            latency = self._alias_latency(model, alias, action.version)
            if latency is not None:
                self.metrics.alias_to_patch.observe(latency)
        elif action.kind is plan.Kind.SUCCEED:
            self.metrics.rollouts.labels(result="succeeded").inc()
        elif action.kind is plan.Kind.REVERT:
            self.metrics.rollouts.labels(result="failed").inc()
        elif action.kind is plan.Kind.STALL:
            self.metrics.rollouts.labels(result="stalled").inc()

        if action.tags and action.version is not None:
            try:
                self.registry.tag(model, action.version, action.tags)
                log.info(
                    "tagged model %s version %s %s=%s",
                    model,
                    action.version,
                    plan.tag_key(namespace, name),
                    action.tag,
                )
            except RegistryError as exc:
                # Not lost: decide() re-tags while the alias points at the untagged version.
                log.warning("%s: could not tag version %s yet: %s", where, action.version, exc)
        for version, tags in action.other_tags.items():
            try:
                self.registry.tag(model, version, tags)
            except RegistryError as exc:  # a note for people: not retried
                log.warning("%s: could not tag version %s: %s", where, version, exc)

        if action.alias_back is not None:
            alias, version = action.alias_back
            try:
                self.registry.move_alias(model, alias, version)
                self.registry.tag(model, version, action.alias_tags)
                log.warning("%s: moved alias %s back to version %s", where, alias, version)
            except RegistryError as exc:
                log.error(
                    "%s: could not move alias %s back to version %s: %s", where, alias, version, exc
                )

        for event in action.events:
            self._emit(body, event)

    # -- canaries ---------------------------------------------------------------------------

    def _samples(self, pods: list[dict[str, Any]]) -> canary.Sample:
        total = canary.Sample()
        for pod in pods:
            text = self.kube.scrape(pod)
            if text is not None:
                total = total + canary.parse_metrics(text)
        return total

    def _split(
        self, body: Mapping[str, Any], version: str | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(canary pods, stable pods serving ``version``) among the Deployment's pods."""
        canaries, stable = [], []
        for pod in self.kube.raw_pods(body):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if canary.LABEL_CANARY_OF in labels:
                canaries.append(pod)
            elif version is not None and pod_version(pod) == version:
                stable.append(pod)
        return canaries, stable

    def _observe_canary(self, key: Key, body: Mapping[str, Any]) -> plan.CanaryObservation:
        watched = plan.parse(body)
        stable_version = watched.record.stable if watched else None
        canaries, stable = self._split(body, stable_version)
        views = []
        for pod in canaries:
            view = kube_pod_view(pod)
            if not view.ready:
                view = dataclasses.replace(view, ready_detail=self.kube.probe(pod))
            views.append(view)
        stable_now = self._samples(stable)
        baseline = self._baselines.get(key)
        if baseline is not None and baseline[0] == stable_version:
            stable_now = stable_now - baseline[1]
        return plan.CanaryObservation(views, self._samples(canaries), stable_now)

    def _canary_objects(self, key: Key, body: Mapping[str, Any], action: plan.Action) -> None:
        """Create or delete the canary Deployment as ``action`` says (after its record was
        written); when a canary starts, note what the stable pods counted so far."""
        namespace = key[0]
        if action.canary_delete is not None:
            self.kube.delete_deployment(namespace, action.canary_delete)
            self._baselines.pop(key, None)
        if action.canary_create is not None:
            self.kube.create_deployment(action.canary_create)
            watched = plan.parse(body)
            if watched is not None and watched.record.stable is not None:
                _, stable = self._split(body, watched.record.stable)
                self._baselines[key] = (watched.record.stable, self._samples(stable))

    def _emit(self, body: Mapping[str, Any], event: plan.Event) -> None:
        meta = body.get("metadata") or {}
        try:
            self.kube.emit(body, event)
        except ApiException as exc:
            log.warning(
                "deployment %s/%s: could not create event %s: %s %s",
                meta.get("namespace"),
                meta.get("name"),
                event.reason,
                exc.status,
                exc.reason,
            )

    def _refused(self, key: Key, refused: _Refused) -> None:
        """The API server said no: a Warning Event (the people who own the policy see it with
        `kubectl describe`), a loud log, and no new try before the backoff ends."""
        previous = self._refusals.get(key)
        failures = (previous.failures if previous else 0) + 1
        delay = REFUSAL_BACKOFF.delay(failures)
        version = (refused.body.get("metadata") or {}).get("resourceVersion")
        self._refusals[key] = _Refusal(version, failures, self.clock() + delay)
        self.metrics.refusals.labels(action=refused.action.kind.value).inc()
        going_back = refused.action.kind in (plan.Kind.REVERT, plan.Kind.STALL)
        what = (
            f"going back to version {refused.action.previous or '(none)'} after: "
            f"{refused.action.reason}"
            if going_back
            else refused.action.reason
        )
        message = (
            f"The API server refused the operator's patch ({what}): {refused.error}; "
            f"next try in {delay:.0f}s or when the Deployment changes"
        )
        if going_back:
            # The Deployment keeps running a version that just failed: say it as loudly as we can.
            log.error("deployment %s/%s: REVERT DENIED: %s", *key, message)
            event = plan.Event("Warning", "ModelRevertDenied", message)
        else:
            log.error("deployment %s/%s: %s", *key, message)
            event = plan.Event("Warning", "ModelRolloutPatchDenied", message)
        self._emit(refused.body, event)


class _Refused(Exception):
    def __init__(self, error: PatchRejected, body: Mapping[str, Any], action: plan.Action) -> None:
        super().__init__(str(error))
        self.error = error
        self.body = body
        self.action = action
