{{/* The `helm test` pods: names, labels, their ServiceAccount. Call each with the root context ($). */}}
{{- define "mlkube.tests.fullname" -}}
{{- include "mlkube.componentName" (list . "test") }}
{{- end }}

{{- define "mlkube.tests.labels" -}}
{{- include "mlkube.componentLabels" (list . "test") }}
{{- end }}

{{- define "mlkube.tests.selectorLabels" -}}
{{- include "mlkube.componentSelectorLabels" (list . "test") }}
{{- end }}

{{- define "mlkube.tests.serviceAccountName" -}}
{{- include "mlkube.serviceAccountName" (list .Values.tests.serviceAccount (include "mlkube.tests.fullname" .)) }}
{{- end }}

{{/* A test pod: <fullname>-test-<check>. */}}
{{- define "mlkube.tests.podName" -}}
{{- include "mlkube.componentName" (list .root (printf "test-%s" .check)) }}
{{- end }}
