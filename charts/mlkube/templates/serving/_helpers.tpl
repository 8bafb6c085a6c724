{{/* The model server: names, labels, its ServiceAccount. Call each with the root context ($). */}}
{{- define "mlkube.serving.fullname" -}}
{{- include "mlkube.componentName" (list . "serving") }}
{{- end }}

{{- define "mlkube.serving.labels" -}}
{{- include "mlkube.componentLabels" (list . "serving") }}
{{- end }}

{{- define "mlkube.serving.selectorLabels" -}}
{{- include "mlkube.componentSelectorLabels" (list . "serving") }}
{{- end }}

{{- define "mlkube.serving.serviceAccountName" -}}
{{- include "mlkube.serviceAccountName" (list .Values.serving.serviceAccount (include "mlkube.serving.fullname" .)) }}
{{- end }}

{{/* The port the server listens on (SERVE_PORT), named `http`: probes, metrics, NetworkPolicies. */}}
{{- define "mlkube.serving.port" -}}
{{- int .Values.serving.containerPort }}
{{- end }}
