{{/* Training: names, labels, its ServiceAccount. Call each with the root context ($). */}}
{{- define "mlkube.training.fullname" -}}
{{- include "mlkube.componentName" (list . "training") }}
{{- end }}

{{- define "mlkube.training.labels" -}}
{{- include "mlkube.componentLabels" (list . "training") }}
{{- end }}

{{- define "mlkube.training.selectorLabels" -}}
{{- include "mlkube.componentSelectorLabels" (list . "training") }}
{{- end }}

{{- define "mlkube.training.serviceAccountName" -}}
{{- include "mlkube.serviceAccountName" (list .Values.training.serviceAccount (include "mlkube.training.fullname" .)) }}
{{- end }}

{{/* The post-install Job that trains once. */}}
{{- define "mlkube.training.firstRunName" -}}
{{- include "mlkube.componentName" (list . "training-first-run") }}
{{- end }}

{{/* checkov skips of the training workloads (checkov does not ask Jobs for probes). */}}
{{- define "mlkube.training.checkovSkips" -}}
{{- include "mlkube.checkovAnnotations" (dict "root" . "images" (list .Values.training.image) "mlflowClient" true) | trim }}
{{- end }}
