{{/* The rollout operator: names, labels, its ServiceAccount. Call each with the root context ($). */}}
{{- define "mlkube.rollout.fullname" -}}
{{- include "mlkube.componentName" (list . "rollout") }}
{{- end }}

{{- define "mlkube.rollout.labels" -}}
{{- include "mlkube.componentLabels" (list . "rollout") }}
{{- end }}

{{- define "mlkube.rollout.selectorLabels" -}}
{{- include "mlkube.componentSelectorLabels" (list . "rollout") }}
{{- end }}

{{- define "mlkube.rollout.serviceAccountName" -}}
{{- include "mlkube.serviceAccountName" (list .Values.rollout.serviceAccount (include "mlkube.rollout.fullname" .)) }}
{{- end }}

{{/* The port of the webhook and metrics server (ROLLOUT_HTTP_PORT), named `http`. */}}
{{- define "mlkube.rollout.port" -}}
{{- int .Values.rollout.containerPort }}
{{- end }}

{{/* The webhook registration Job (component rollout-webhook) and its ServiceAccount. */}}
{{- define "mlkube.rollout.webhookJob.fullname" -}}
{{- include "mlkube.componentName" (list . "rollout-webhook") }}
{{- end }}

{{- define "mlkube.rollout.webhookJob.labels" -}}
{{- include "mlkube.componentLabels" (list . "rollout-webhook") }}
{{- end }}

{{- define "mlkube.rollout.webhookJob.selectorLabels" -}}
{{- include "mlkube.componentSelectorLabels" (list . "rollout-webhook") }}
{{- end }}

{{- define "mlkube.rollout.webhookJob.serviceAccountName" -}}
{{- include "mlkube.serviceAccountName" (list .Values.rollout.webhook.serviceAccount (include "mlkube.rollout.webhookJob.fullname" .)) }}
{{- end }}

{{/* The HMAC key's Secret. */}}
{{- define "mlkube.rollout.webhookSecretName" -}}
{{- .Values.rollout.webhook.existingSecret | default (printf "%s-webhook" (include "mlkube.rollout.fullname" .)) }}
{{- end }}

{{/* Where MLflow posts its registry webhooks, and whether the chart registers it. */}}
{{- define "mlkube.rollout.webhookUrl" -}}
{{- .Values.rollout.webhook.url | default (printf "http://%s.%s.svc:%d/webhook" (include "mlkube.rollout.fullname" .) .Release.Namespace (int .Values.rollout.service.port)) }}
{{- end }}

{{- define "mlkube.rollout.registersWebhook" -}}
{{- if and .Values.rollout.enabled .Values.rollout.webhook.register (or .Values.mlflow.enabled .Values.rollout.webhook.url) }}true{{ end }}
{{- end }}
