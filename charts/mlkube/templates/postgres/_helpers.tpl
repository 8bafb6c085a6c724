{{/* The bundled Postgres: names, labels, its ServiceAccount. Call each with the root context ($). */}}
{{- define "mlkube.postgres.fullname" -}}
{{- include "mlkube.componentName" (list . "postgres") }}
{{- end }}

{{- define "mlkube.postgres.labels" -}}
{{- include "mlkube.componentLabels" (list . "postgres") }}
{{- end }}

{{- define "mlkube.postgres.selectorLabels" -}}
{{- include "mlkube.componentSelectorLabels" (list . "postgres") }}
{{- end }}

{{- define "mlkube.postgres.serviceAccountName" -}}
{{- include "mlkube.serviceAccountName" (list .Values.postgres.serviceAccount (include "mlkube.postgres.fullname" .)) }}
{{- end }}

{{/* The official image's port (the Service, the StatefulSet, MLflow's URI and the NetworkPolicies). */}}
{{- define "mlkube.postgres.port" -}}
5432
{{- end }}

{{/* Installed when MLflow keeps its runs in the bundled Postgres. */}}
{{- define "mlkube.postgres.enabled" -}}
{{- if and .Values.mlflow.enabled (eq .Values.mlflow.backend.type "postgres") }}true{{ end }}
{{- end }}

{{- define "mlkube.postgres.secretName" -}}
{{- .Values.postgres.existingSecret | default (include "mlkube.postgres.fullname" .) }}
{{- end }}
