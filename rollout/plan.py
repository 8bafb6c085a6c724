"""The operator's decisions, as pure functions of a Deployment body, its pods and the registry.

The operator is a work-queue controller with a periodic resync (:mod:`rollout.app`), using kopf
for its watch; what it does about one Deployment is decided here. Nothing here does I/O:
``decide`` returns an :class:`Action` (a JSON patch for the Deployment, tags for the model
version, Events to emit), and :mod:`rollout.reconciler` carries it out.

State lives in the Deployment, so a restarted operator carries on where the last one stopped:

- pod template: only the pin (:mod:`rollout.patches`);
- Deployment metadata: the rollout record (:class:`mlkube.core.record.RolloutRecord`: its
  fields, its transitions, the line ``make status`` prints);
- ``mlkube.io/rollout-hold`` (set by people, or by the chart when it pins a version): the
  operator writes nothing to that Deployment.

Why a rollout does not complete is read from the new pods (:mod:`rollout.diagnosis`); only a
model that does not load (or runs out of memory) blames the version.

How the operator tells its own writes from others': never by ``metadata.generation``, which the
API server bumps for annotation changes too (so every record write would look like someone
else's change). It compares the pod template, pin left out, with the hash it recorded: only
another party changes that. Replicas, labels, annotations and a pause are read as they are.

The MLflow version gets the verdict per Deployment: ``mlkube.rollout/<namespace>/<name>``
(succeeded | failed | aborted | superseded) and ``mlkube.rollout.reason/<namespace>/<name>``,
so Deployments following the same alias (staging, production) do not overwrite each other's
verdicts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlkube.core.backoff import Backoff
from mlkube.core.deployment import Phase, format_time, pinned_version, rollout_phase
from mlkube.core.names import (
    ANNOTATION_MODEL_ALIAS,
    ANNOTATION_ROLLOUT_HOLD,
    DEFAULT_ALIAS,
    LABEL_MODEL_NAME,
    TAG_PREFIX,
)
from mlkube.core.record import MAX_REASON, RolloutPhase, RolloutRecord
from mlkube.core.registry import short
from rollout import canary
from rollout.canary import Sample as CanarySample
from rollout.diagnosis import (
    Cause,
    PodView,
    classify,
    deadline_seconds,
    load_error_confirm_seconds,
    model_load_failure,
    served_by_old_pods,
)
from rollout.patches import (
    JsonPatch,
    pinned_template,
    record_patch,
    template_hash,
    template_patch,
)

TAG_ROLLOUT = f"{TAG_PREFIX}.rollout"  # + /<namespace>/<name>
TAG_ROLLOUT_REASON = f"{TAG_PREFIX}.rollout.reason"

VERDICT_SUCCEEDED = "succeeded"
VERDICT_FAILED = "failed"  # the model is the cause
VERDICT_ABORTED = "aborted"  # gave up after retries, the model not shown to be the cause
VERDICT_SUPERSEDED = "superseded"  # the alias moved on before the version served


def tag_key(namespace: str, name: str) -> str:
    """The MLflow tag holding this Deployment's verdict on a version."""
    return f"{TAG_ROLLOUT}/{namespace}/{name}"


def reason_tag_key(namespace: str, name: str) -> str:
    return f"{TAG_ROLLOUT_REASON}/{namespace}/{name}"


class Kind(enum.Enum):
    NOOP = "noop"  # nothing to write
    ROLL = "roll"  # pin the pod template to a new version
    SUCCEED = "succeed"  # the rollout finished and pods serve the version: report it
    REVERT = "revert"  # the model failed (or retries ran out): back to the stable version
    STALL = "stall"  # failed for another reason: back to stable (if any), retry later
    NOTE = "note"  # the record changes (metadata only), e.g. a restarted deadline
    TAG = "tag"  # only the registry tag is missing
    FORGET = "forget"  # the alias moved off a failed version: drop the marker
    CANARY = "canary"  # start (or replace) the canary Deployment of the target version
    CANARY_JUDGE = "canary-judge"  # the canary's time is up: measure it, then decide again


@dataclass(frozen=True)
class Policy:
    """How long a try may take and how often a rollout is retried when the model is not the
    cause of its failure."""

    max_attempts: int = 3
    retry: Backoff = Backoff(first=60.0, cap=1800.0)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class AliasTarget:
    """What the registry says: the version the alias points at, and that version's tags."""

    version: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CanaryObservation:
    """What the reconciler measured when a canary's time was up."""

    pods: Sequence[PodView]  # the canary's pods
    canary: CanarySample  # what they counted
    stable: CanarySample  # what the stable pods counted over the same time


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Action:
    kind: Kind
    reason: str
    version: str | None = None
    previous: str | None = None  # the version the Deployment goes back to (REVERT/STALL)
    patch: JsonPatch = field(default_factory=list)
    tags: Mapping[str, str] = field(default_factory=dict)  # MLflow tags to set on ``version``
    event: Event | None = None
    cause: Cause | None = None
    canary_create: Mapping[str, Any] | None = None  # a canary Deployment to create (or replace)
    canary_delete: str | None = None  # name of a canary Deployment to delete
    alias_back: tuple[str, str] | None = None  # (alias, version): move the alias back
    alias_tags: Mapping[str, str] = field(default_factory=dict)  # tags on that version
    # Tags on other versions than ``version`` (e.g. the one superseded): version -> tags.
    other_tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    more_events: tuple[Event, ...] = ()  # after ``event``
    pods_may_change_it: bool = False  # a rollout in progress: its new pods may say it failed
    recheck_after: float | None = None  # seconds: reconcile again then, if nothing else does

    @property
    def needs_pods(self) -> bool:
        """Decide again with the Deployment's pods: whether pods serve the version, and why
        not, can change a verdict (or make one, for a rollout in progress)."""
        return self.pods_may_change_it or self.kind in (Kind.SUCCEED, Kind.REVERT, Kind.STALL)

    @property
    def events(self) -> tuple[Event, ...]:
        return ((self.event,) if self.event is not None else ()) + self.more_events

    @property
    def tag(self) -> str | None:
        """This Deployment's verdict among ``tags`` (None when none is set)."""
        for key, value in self.tags.items():
            if key.startswith(TAG_ROLLOUT + "/"):
                return value
        return None


@dataclass(frozen=True)
class Watched:
    """The parts of a labelled Deployment the operator reads: the pin and the record."""

    namespace: str
    name: str
    model_name: str
    alias: str
    pinned: str | None  # MODEL_VERSION of the serving container(s), else the annotation
    record: RolloutRecord = field(default_factory=RolloutRecord)

    @property
    def tag_key(self) -> str:
        return tag_key(self.namespace, self.name)


def parse(body: Mapping[str, Any]) -> Watched | None:
    """The Deployment as the operator sees it, or None when it does not carry our label.

    Labels are checked here, not only by a selector: some API servers (and emulators) ignore
    label selectors, and a Deployment may lose its label while we watch it."""
    meta = body.get("metadata") or {}
    model_name = (meta.get("labels") or {}).get(LABEL_MODEL_NAME)
    if not model_name:
        return None
    annotations = meta.get("annotations") or {}
    return Watched(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name", ""),
        model_name=model_name,
        alias=annotations.get(ANNOTATION_MODEL_ALIAS) or DEFAULT_ALIAS,
        pinned=pinned_version(body),
        record=RolloutRecord.of(body),
    )


# -- deciding -----------------------------------------------------------------------------------


def _short(text: str) -> str:
    return short(text, MAX_REASON)


def _verdict(w: Watched, verdict: str, reason: str) -> dict[str, str]:
    # The reason first: the tags are written one at a time in this order, so whoever sees the
    # verdict (a person in the UI, a test, a GitOps check) sees its reason with it.
    return {reason_tag_key(w.namespace, w.name): _short(reason), w.tag_key: verdict}


def _roll(
    body: Mapping[str, Any],
    w: Watched,
    version: str,
    why: str,
    now: dt.datetime,
    attempt: int = 0,
    superseded: str | None = None,
) -> Action:
    """Pin ``version``. ``superseded``: the version whose rollout this one replaces before it
    completed (the pods still serve the stable version): tagged and told as such."""
    record = w.record.rolling(version, now, why, template_hash(body), attempt)
    ops = template_patch(body, version) + record_patch(body, record)
    served = w.record.stable if superseded is not None else w.pinned
    if served is None:
        message = f"Pinning model {w.model_name} to version {version} ({why})"
    elif served == version:
        message = f"Rolling model {w.model_name} version {version} again ({why})"
    else:
        message = f"Rolling model {w.model_name} from version {served} to {version} ({why})"
    if superseded is None or superseded == version:
        return Action(
            Kind.ROLL,
            reason=message,
            version=version,
            previous=w.record.stable,
            patch=ops,
            event=Event("Normal", "ModelRolloutStarted", message),
        )
    serving = f"the pods serve version {served}" if served else "no version was pinned before"
    note = (
        f"Model {w.model_name} version {superseded} was superseded by version {version} before "
        f"it served (alias {w.alias} moved during its rollout); {serving}"
    )
    return Action(
        Kind.ROLL,
        reason=f"{message}; {note}",
        version=version,
        previous=w.record.stable,
        patch=ops,
        event=Event("Normal", "ModelRolloutSuperseded", note),
        more_events=(Event("Normal", "ModelRolloutStarted", message),),
        other_tags={superseded: _verdict(w, VERDICT_SUPERSEDED, note)},
    )


def _fallback(w: Watched, pods: Sequence[PodView] | None, version: str) -> str | None:
    """Where a failed rollout of ``version`` goes back to: the stable version, else what the
    ready older pods serve (a first pin: they were loaded from the alias before it moved)."""
    for candidate in (w.record.stable, served_by_old_pods(pods, version)):
        if candidate is not None and candidate != version:
            return candidate
    return None


def _fail(
    body: Mapping[str, Any],
    w: Watched,
    version: str,
    cause: Cause,
    detail: str,
    pods: Sequence[PodView] | None,
    gave_up: bool,
) -> Action:
    """The model is the cause (or retries ran out): back to the stable version, and do not roll
    to ``version`` again until the alias moves."""
    restore = _fallback(w, pods, version)
    what = (
        f"did not become available after {w.record.attempt + 1} tries ({detail})"
        if gave_up
        else f"failed: {detail}"
    )
    if restore is not None:
        done = f"restored version {restore}"
        template_ops = template_patch(body, restore)
    else:
        # Unpinning would make every new pod load the alias, which points at this version.
        done = (
            f"no version known to serve to go back to, so the pods stay pinned to {version} "
            f"(the pods of older ReplicaSets keep serving; pin a version by hand or move the "
            f"alias)"
        )
        template_ops = []
    message = (
        f"Model {w.model_name} version {version} {what}; {done}; version {version} will not be "
        f"rolled out again until alias {w.alias} moves"
    )
    ops = template_ops + record_patch(body, w.record.failed_on(version, restore, message))
    verdict = VERDICT_ABORTED if gave_up else VERDICT_FAILED
    return Action(
        Kind.REVERT,
        reason=message,
        version=version,
        previous=restore,
        patch=ops,
        tags=_verdict(w, verdict, message),
        event=Event("Warning", "ModelRolloutAborted" if gave_up else "ModelRolloutFailed", message),
        cause=cause,
    )


def _stall(
    body: Mapping[str, Any],
    w: Watched,
    version: str,
    cause: Cause,
    detail: str,
    now: dt.datetime,
    policy: Policy,
) -> Action:
    """Not the model's fault: back to the stable version (its ReplicaSet still runs, so nothing
    has to be scheduled or downloaded), and try again after a backoff."""
    attempt = w.record.attempt + 1
    delay = policy.retry.delay(attempt)
    retry_at = now + dt.timedelta(seconds=delay)
    restore = w.record.stable if w.record.stable not in (None, version) else None
    back = f"back on version {restore}" if restore else "keeping the pin (no stable version)"
    if cause in (Cause.PAUSED, Cause.NO_PODS):
        template_ops: JsonPatch = []  # nothing rolls anyway: leave the template be
        back = "the template is left as it is"
    else:
        template_ops = template_patch(body, restore) if restore else []
    message = (
        f"Model {w.model_name} version {version} is not rolled out after "
        f"{deadline_seconds(body, w.record.attempt):.0f}s ({cause.value}: {detail}); not the "
        f"model's fault: {back}, retry {attempt} of {policy.max_attempts - 1} at "
        f"{format_time(retry_at)}"
    )
    ops = template_ops + record_patch(body, w.record.waiting(version, message, attempt, retry_at))
    return Action(
        Kind.STALL,
        reason=message,
        version=version,
        previous=restore,
        patch=ops,
        event=Event("Warning", "ModelRolloutStalled", message),
        cause=cause,
    )


def _note(body: Mapping[str, Any], w: Watched, reason: str, **fields: Any) -> Action:
    """Record why the rollout is where it is, once (no write when the record says it already)."""
    ops = record_patch(body, w.record.noted(reason, **fields))
    if not ops:
        return Action(Kind.NOOP, reason=reason)
    return Action(Kind.NOTE, reason=reason, version=w.record.target, patch=ops)


def _progressing(
    body: Mapping[str, Any],
    w: Watched,
    alias: AliasTarget | None,
    now: dt.datetime,
    pods: Sequence[PodView] | None,
    policy: Policy,
) -> Action:
    assert w.pinned is not None
    record = w.record
    version = record.target or w.pinned
    template = template_hash(body)
    if w.pinned != version:  # pinned by someone else meanwhile (no hold): that is the target now
        return _note(
            body,
            w,
            f"pinned to version {w.pinned} by someone else during the rollout",
            target=w.pinned,
            started=now,
            template=template,
            load_error_since=None,
        )
    # A record from before the hash (template None) is taken as it is, until the next rollout.
    if record.template is not None and record.template != template:
        # A new ReplicaSet (helm upgrade, rollout restart, set image): its pods start afresh, so
        # the deadline does too, as Kubernetes' own progress deadline does. Once per change.
        return _note(
            body,
            w,
            f"the pod template was changed by someone else during the rollout of version "
            f"{version}; deadline restarted",
            started=now,
            template=template,
            load_error_since=None,
        )
    spec = body.get("spec") or {}
    started = record.started or now

    phase = rollout_phase(body, since=record.started)
    status = body.get("status") or {}
    replicas = spec.get("replicas", 1)
    if phase is Phase.COMPLETE and replicas > 0 and not spec.get("paused"):
        served = (status.get("availableReplicas") or 0) >= 1 and (
            pods is None or any(p.version == version and p.ready for p in pods)
        )
        if served:
            message = (
                f"Model {w.model_name} version {version} is rolled out: {replicas} "
                f"replica(s) updated, available and serving it"
            )
            return Action(
                Kind.SUCCEED,
                reason=message,
                version=version,
                previous=record.stable,
                patch=record_patch(body, record.succeeded(version, message)),
                tags=_verdict(w, VERDICT_SUCCEEDED, message),
                event=Event("Normal", "ModelRolloutSucceeded", message),
            )

    deadline = started + dt.timedelta(seconds=deadline_seconds(body, record.attempt))
    if phase is Phase.FAILED or now >= deadline:
        cause, detail = classify(body, pods, version)
        if cause is Cause.MODEL:
            return _fail(body, w, version, cause, detail, pods, gave_up=False)
        if cause not in (Cause.PAUSED, Cause.NO_PODS) and record.attempt + 1 >= policy.max_attempts:
            return _fail(body, w, version, cause, detail, pods, gave_up=True)
        return _stall(body, w, version, cause, detail, now, policy)

    # Still within the deadline. The alias moved on: the newer version supersedes this one.
    if alias is not None and alias.version not in (version, record.failed):
        return _roll(
            body,
            w,
            alias.version,
            f"alias {w.alias} moved during the rollout",
            now,
            superseded=version,
        )
    if spec.get("paused") or replicas == 0:
        _, detail = classify(body, pods, version)
        return _note(body, w, f"waiting: {detail}")
    until_deadline = (deadline - now).total_seconds()
    if pods is None:
        return Action(
            Kind.NOOP,
            reason=f"rollout of version {version} in progress",
            pods_may_change_it=True,
            recheck_after=until_deadline,
        )
    return _confirm_load_error(body, w, version, now, pods, until_deadline)


def _confirm_load_error(
    body: Mapping[str, Any],
    w: Watched,
    version: str,
    now: dt.datetime,
    pods: Sequence[PodView],
    until_deadline: float,
) -> Action:
    """Every new pod says the model does not load: fail the version once that held for the
    confirmation time, instead of waiting minutes for the deadline."""
    confirm = load_error_confirm_seconds(body)
    failure = model_load_failure(pods, version) if confirm > 0 else None
    if failure is None:
        if w.record.load_error_since is not None:
            return _note(
                body,
                w,
                f"rollout of version {version} in progress; the new pods no "
                f"longer report the same load error",
                load_error_since=None,
            )
        return Action(
            Kind.NOOP,
            reason=f"rollout of version {version} in progress",
            recheck_after=until_deadline,
        )
    since = w.record.load_error_since
    if since is None:
        note = _note(
            body,
            w,
            f"{failure}; version {version} fails unless this changes within {confirm:.0f}s",
            load_error_since=now,
        )
        return dataclasses.replace(note, recheck_after=confirm)
    held = (now - since).total_seconds()
    if held < confirm:
        return Action(
            Kind.NOOP,
            reason=f"{failure}; confirming ({held:.0f}s of {confirm:.0f}s)",
            recheck_after=confirm - held,
        )
    detail = f"{failure} (every new pod, for {held:.0f}s)"
    return _fail(body, w, version, Cause.MODEL, detail, pods, gave_up=False)


def _waiting(
    body: Mapping[str, Any], w: Watched, alias: AliasTarget | None, now: dt.datetime
) -> Action:
    record = w.record
    version = record.target or w.pinned
    if alias is not None and alias.version not in (version, record.failed):
        return _roll(
            body, w, alias.version, f"alias {w.alias} -> {alias.version}", now, superseded=version
        )
    if alias is None or version is None:
        return Action(Kind.NOOP, reason="waiting to retry; the registry gave no answer")
    if record.retry_at is not None and now < record.retry_at:
        return Action(
            Kind.NOOP, reason=f"retrying version {version} at {format_time(record.retry_at)}"
        )
    return _roll(
        body,
        w,
        version,
        f"retry {record.attempt} after: {record.reason or 'a stall'}",
        now,
        attempt=record.attempt,
    )


def _canary_start(body: Mapping[str, Any], w: Watched, version: str, now: dt.datetime) -> Action:
    policy = canary.policy_of(body)
    stable = w.record.stable
    message = (
        f"Canary of model {w.model_name} version {version}: one pod beside version "
        f"{stable} for {policy.seconds:.0f}s (alias {w.alias} -> {version})"
    )
    return Action(
        Kind.CANARY,
        reason=message,
        version=version,
        previous=stable,
        patch=record_patch(body, w.record.canary(version, now, message)),
        event=Event("Normal", "ModelCanaryStarted", message),
        canary_create=canary.manifest(body, pinned_template(body, version)),
    )


def _canary(
    body: Mapping[str, Any],
    w: Watched,
    alias: AliasTarget | None,
    now: dt.datetime,
    observed: CanaryObservation | None,
) -> Action:
    version, stable = w.record.target, w.record.stable
    name = canary.canary_name(w.name)
    if version is None or stable is None:  # not a record we wrote: roll plainly
        target = alias.version if alias is not None else version
        if target is None:
            return Action(Kind.NOOP, reason="canary record without a target")
        action = _roll(body, w, target, "canary record incomplete: plain rollout", now)
        return dataclasses.replace(action, canary_delete=name)
    if alias is not None and alias.version not in (version, w.record.failed):
        note = (
            f"Model {w.model_name} version {version} was superseded by version {alias.version} "
            f"during its canary; the pods serve version {stable}"
        )
        return dataclasses.replace(
            _canary_start(body, w, alias.version, now),  # replaces the running canary
            other_tags={version: _verdict(w, VERDICT_SUPERSEDED, note)},
            more_events=(Event("Normal", "ModelRolloutSuperseded", note),),
        )
    policy = canary.policy_of(body)
    end = (w.record.started or now) + dt.timedelta(seconds=policy.seconds)
    if now < end:
        return Action(
            Kind.NOOP, reason=f"canary of version {version} runs until {format_time(end)}"
        )
    if observed is None:
        return Action(
            Kind.CANARY_JUDGE, reason=f"measuring the canary of version {version}", version=version
        )
    if not any(p.ready for p in observed.pods):
        cause, detail = classify(body, list(observed.pods), version)
        if cause is not Cause.MODEL:
            stalled = _stall(body, w, version, cause, f"canary: {detail}", now, DEFAULT_POLICY)
            return dataclasses.replace(stalled, canary_delete=name)
        verdict = canary.Verdict(False, f"the canary pod is not ready: {detail}")
    else:
        verdict = canary.judge(observed.canary, observed.stable, policy)
    if verdict.passed:
        rolled = _roll(body, w, version, f"canary passed: {verdict.reason}", now)
        return dataclasses.replace(rolled, canary_delete=name)
    back = policy.move_alias_back
    moved = f"; alias {w.alias} moved back to version {stable}" if back else ""
    message = (
        f"Canary of model {w.model_name} version {version} failed: {verdict.reason}; stays on "
        f"version {stable}; version {version} will not be rolled out again until alias "
        f"{w.alias} moves{moved}"
    )
    restored = f"alias {w.alias} moved back here from version {version}: {verdict.reason}"
    return Action(
        Kind.REVERT,
        reason=message,
        version=version,
        previous=stable,
        patch=record_patch(body, w.record.canary_failed(version, message)),
        tags=_verdict(w, VERDICT_FAILED, message),
        event=Event("Warning", "ModelCanaryFailed", message),
        cause=Cause.MODEL,
        canary_delete=name,
        alias_back=(w.alias, stable) if back else None,
        alias_tags={f"{TAG_ROLLOUT}.alias-restored/{w.namespace}/{w.name}": _short(restored)}
        if back
        else {},
    )


def decide(
    body: Mapping[str, Any],
    alias: AliasTarget | None,
    registry_ok: bool = True,
    *,
    now: dt.datetime | None = None,
    pods: Sequence[PodView] | None = None,
    policy: Policy = DEFAULT_POLICY,
    canary_observed: CanaryObservation | None = None,
    registry_error: str | None = None,
) -> Action:
    """What to do with this Deployment now.

    ``alias`` is None when the alias is not set (``registry_ok`` True) or when the registry
    gave no answer: unreachable, or refusing the call, e.g. 401/403 (``registry_ok`` False,
    ``registry_error`` says why). Then nothing is rolled forward, but a failed rollout is still
    reverted, since that must not wait for MLflow; the record says the Deployment waits on the
    registry, once, and says so again when the registry is back. ``pods``: the Deployment's
    pods (None: not read), which say why a rollout is not completing and whether pods serve
    the version."""
    now = now or dt.datetime.now(dt.UTC)
    w = parse(body)
    if w is None:
        return Action(Kind.NOOP, reason="not labelled for the operator")
    if w.record.hold is not None:
        return Action(
            Kind.NOOP,
            reason=(
                f"held ({ANNOTATION_ROLLOUT_HOLD}: {w.record.hold}): the operator leaves it alone"
            ),
        )
    action = _decide(body, w, alias, registry_ok, now, pods, policy, canary_observed)
    if not registry_ok and w.record.registry_unavailable is None:
        why = short(registry_error or "no answer", 200)
        message = (
            f"Waiting on the model registry: it gave no answer ({why}); model {w.model_name} "
            f"stays on the version its pods serve until the registry answers"
        )
        since = f"since {format_time(now)}: {why}"
        return _with_record(
            body,
            action,
            w.record.noted(registry_unavailable=since),
            Event("Warning", "ModelRegistryUnavailable", message),
        )
    if registry_ok and w.record.registry_unavailable is not None:
        message = (
            f"The model registry answers again (unavailable {w.record.registry_unavailable}); "
            f"following alias {w.alias} of model {w.model_name}"
        )
        return _with_record(
            body,
            action,
            w.record.noted(registry_unavailable=None),
            Event("Normal", "ModelRegistryAvailable", message),
        )
    return action


def _with_record(
    body: Mapping[str, Any], action: Action, record: RolloutRecord, event: Event
) -> Action:
    """``action`` that also writes ``record``'s change and emits ``event`` (a NOOP becomes a
    NOTE). The record ops go after the action's own, which left that key alone."""
    ops = record_patch(body, record)
    if action.kind is Kind.NOOP:
        return dataclasses.replace(
            action, kind=Kind.NOTE, reason=event.message, patch=ops, event=event
        )
    written = {op["path"] for op in action.patch}
    extra = [op for op in ops if op["path"] not in written]
    return dataclasses.replace(
        action, patch=[*action.patch, *extra], more_events=(*action.more_events, event)
    )


def _decide(
    body: Mapping[str, Any],
    w: Watched,
    alias: AliasTarget | None,
    registry_ok: bool,
    now: dt.datetime,
    pods: Sequence[PodView] | None,
    policy: Policy,
    canary_observed: CanaryObservation | None,
) -> Action:

    record = w.record
    if record.phase is RolloutPhase.PROGRESSING and w.pinned is not None:
        action = _progressing(body, w, alias if registry_ok else None, now, pods, policy)
        if action.kind is Kind.SUCCEED and not registry_ok:
            return Action(Kind.NOOP, reason="rollout complete; waiting for the registry to tag")
        return action
    if record.phase is RolloutPhase.WAITING:
        return _waiting(body, w, alias if registry_ok else None, now)
    if record.phase is RolloutPhase.CANARY:
        return _canary(body, w, alias if registry_ok else None, now, canary_observed)

    if alias is None:
        if not registry_ok:
            return Action(
                Kind.NOOP,
                reason="the registry gave no answer (unreachable, or it refused the call); "
                "keeping the current version",
            )
        return Action(
            Kind.NOOP,
            reason=f"alias {w.alias} of model {w.model_name} is not set (or the "
            "model is not registered); keeping the current version",
        )

    ours = alias.tags.get(w.tag_key)
    if alias.version == record.failed:
        if ours is None:
            return Action(
                Kind.TAG,
                reason="tagging the failed version",
                version=alias.version,
                tags=_verdict(w, VERDICT_FAILED, record.reason or "the rollout failed"),
            )
        return Action(
            Kind.NOOP,
            reason=f"version {alias.version} failed to roll out; waiting for alias "
            f"{w.alias} to move",
        )

    if alias.version == w.pinned:
        if record.failed is not None:  # e.g. the alias was moved back (by hand or canary)
            message = (
                f"alias {w.alias} moved off failed version {record.failed} back to "
                f"version {alias.version}, which the pods serve"
            )
            settled = record.stable in (None, alias.version) and record.phase is RolloutPhase.FAILED
            forgotten = (
                record.settled_on(alias.version, message)
                if settled
                else record.noted(failed=None, last_failed=record.failed)
            )
            return Action(
                Kind.FORGET,
                reason=message,
                version=alias.version,
                patch=record_patch(body, forgotten),
            )
        if record.phase is RolloutPhase.SUCCEEDED and ours is None:
            return Action(
                Kind.TAG,
                reason="tagging the rolled-out version",
                version=alias.version,
                tags=_verdict(w, VERDICT_SUCCEEDED, record.reason or "rolled out"),
            )
        return Action(Kind.NOOP, reason=f"pinned to version {alias.version}, as alias says")

    if canary.strategy(body) == canary.STRATEGY_CANARY and record.stable is not None:
        return _canary_start(body, w, alias.version, now)
    return _roll(body, w, alias.version, f"alias {w.alias} -> {alias.version}", now)
