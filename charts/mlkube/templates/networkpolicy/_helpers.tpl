{{/* The release-wide NetworkPolicies (default deny, DNS): names and labels. */}}
{{- define "mlkube.networkPolicy.labels" -}}
{{- include "mlkube.componentLabels" (list . "network") }}
{{- end }}

{{- define "mlkube.networkPolicy.defaultDenyName" -}}
{{- include "mlkube.componentName" (list . "default-deny") }}
{{- end }}

{{- define "mlkube.networkPolicy.allowDnsName" -}}
{{- include "mlkube.componentName" (list . "allow-dns") }}
{{- end }}

{{/*
A NetworkPolicy peer: the release's pods of one component.
Call with the component's selector labels, e.g. (include "mlkube.serving.selectorLabels" $).
*/}}
{{- define "mlkube.np.peer" -}}
- podSelector:
    matchLabels:
      {{- . | nindent 6 }}
{{- end }}

{{/*
Egress to MLflow: its pods on mlflow.containerPort, or, for an external server, any address on
mlflow.externalPort, else on the port of mlflow.externalUri (80/443 by scheme when the URI has
none). A NetworkPolicy matches the port the packets reach the destination on: when the URI names a
Service in another namespace whose port differs from its pods' (e.g. 80 -> 5000), set
mlflow.externalPort to the pods' port.
*/}}
{{- define "mlkube.np.egressToMlflow" -}}
{{- if .Values.mlflow.enabled }}
- to:
    {{- include "mlkube.np.peer" (include "mlkube.mlflow.selectorLabels" .) | nindent 4 }}
  ports:
    - protocol: TCP
      port: {{ include "mlkube.mlflow.port" . }}
{{- else }}
{{- $u := urlParse .Values.mlflow.externalUri }}
{{- $port := ternary 443 80 (eq $u.scheme "https") }}
{{- if contains ":" $u.host }}{{ $port = splitList ":" $u.host | last | int }}{{ end }}
{{- with .Values.mlflow.externalPort }}{{ $port = int . }}{{ end }}
- ports:
    - protocol: TCP
      port: {{ $port }}
{{- end }}
{{- end }}
