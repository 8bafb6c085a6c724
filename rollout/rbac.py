"""Exactly the Kubernetes API calls the operator makes, as Role rules (for the chart's Role).

- ``apps/deployments``: ``list`` + ``watch`` (kopf's watch stream, and the poll's fresh list),
  ``get`` (re-read before a write) and ``patch`` (JSON patch of the pod template and our
  annotations); ``create`` and ``delete`` for the ``<name>-canary`` Deployment of a canary
  rollout (only that one is ever created or deleted). Never update (no PUT).
- ``events`` (core): ``create`` only (rollout started/succeeded/failed/stalled, refusals).
- ``pods`` (core): ``list`` (when a rollout completes or runs out of time: do pods serve the
  version, and if not, why: Unschedulable, ImagePullBackOff, CrashLoopBackOff, ...).

Nothing for kopf beyond that: peering is off (standalone, no ``kopf.dev`` objects), namespace
and CRD scanning are off, kopf posts no Events, and no handler needs a finalizer or kopf's
annotations. API discovery (``/api``, ``/apis``) is non-resource and allowed to every
authenticated user by the default ``system:discovery`` ClusterRole.

Namespaced mode: these rules in a Role of the watched namespace. Cluster-wide
(ROLLOUT_CLUSTER_WIDE=true): the same rules in a ClusterRole. A test runs the operator against
an API emulator and checks that the requests it makes are these rules, no more, no less.
"""

from __future__ import annotations

from typing import Final

RULES: Final[list[dict[str, list[str]]]] = [
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["create", "delete", "get", "list", "patch", "watch"],
    },
    {
        "apiGroups": [""],
        "resources": ["events"],
        "verbs": ["create"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["list"],
    },
]


def permissions(rules: list[dict[str, list[str]]] = RULES) -> set[tuple[str, str, str]]:
    """The rules flattened to (apiGroup, resource, verb) triples, for comparisons."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }
