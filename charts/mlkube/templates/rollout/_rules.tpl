{{/*
Exactly what the operator calls (rollout.rbac.REQUIRED_RULES; tests/charts compares the two).
*/}}
{{- define "mlkube.rollout.rules" -}}
# kopf lists and watches the labelled serving Deployments; the operator re-reads one before a
# write and patches its pod template (never update). It creates and deletes only the
# `<name>-canary` Deployment of a canary rollout.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch", "create", "delete"]
# Rollout started/succeeded/failed Events on those Deployments. kopf itself posts none: it runs
# standalone (no peering objects) without namespace or CRD scanning.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# When a rollout completes or runs out of time: do pods serve the version, and if not, why
# (Unschedulable, ImagePullBackOff, CrashLoopBackOff, the model load error of /healthz/ready).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}
