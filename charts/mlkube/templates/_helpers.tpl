{{/*
Names. Components call the helpers below with (dict "root" $ "component" "<name>").
*/}}
{{- define "mlkube.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlkube.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mlkube.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <fullname>-<component>, e.g. mlkube-serving. */}}
{{- define "mlkube.componentName" -}}
{{- printf "%s-%s" (include "mlkube.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: immutable, so only name/instance/component. */}}
{{- define "mlkube.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlkube.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mlkube.labels" -}}
helm.sh/chart: {{ include "mlkube.chart" .root }}
{{ include "mlkube.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mlkube
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Labels shared by every pod of the release: what the default-deny NetworkPolicy selects. */}}
{{- define "mlkube.releaseSelector" -}}
app.kubernetes.io/name: {{ include "mlkube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Image reference: [registry/]repository(@digest|:tag). The tag falls back to image.tag, then to the
chart's appVersion, so an install never pulls a floating `latest`.
Call with (dict "root" $ "image" .Values.<component>.image).
*/}}
{{- define "mlkube.image" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" }}
{{- $repo := .image.repository }}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
checkov skips of a workload, numbered as checkov expects, each with its reason. Adds the image
skips that depend on values: the pull policy (kind loads images into the node, so `Always` would
fail there) and the digest (the tag is the chart's appVersion unless a digest is given).
With "mlflowClient" true, the pod holds MLflow's basic-auth credentials in env vars when auth is on.
Call with (dict "root" $ "images" (list <image values>...) "skips" (list "CKV_K8S_xx=reason")).
*/}}
{{- define "mlkube.checkovAnnotations" -}}
{{- $skips := get . "skips" | default list }}
{{- if and (get . "mlflowClient") .root.Values.mlflow.enabled .root.Values.mlflow.auth.enabled }}
{{- $skips = append $skips "CKV_K8S_35=MLflow's client reads basic-auth credentials from MLFLOW_TRACKING_USERNAME/PASSWORD, taken from a Secret by secretKeyRef" }}
{{- end }}
{{- $policyIsAlways := true }}
{{- $allDigests := true }}
{{- range .images }}
{{- if ne (get . "pullPolicy" | default $.root.Values.image.pullPolicy) "Always" }}{{ $policyIsAlways = false }}{{ end }}
{{- if not .digest }}{{ $allDigests = false }}{{ end }}
{{- end }}
{{- if not $policyIsAlways }}
{{- $skips = append $skips "CKV_K8S_15=pullPolicy is a value (image.pullPolicy); kind loads images into the node, where Always would fail" }}
{{- end }}
{{- if not $allDigests }}
{{- $skips = append $skips "CKV_K8S_43=pinned by tag (the chart appVersion, never latest); set <component>.image.digest to pin by digest" }}
{{- end }}
{{- range $i, $s := $skips }}
checkov.io/skip{{ add1 $i }}: {{ $s | quote }}
{{- end }}
{{- end }}

{{- define "mlkube.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* MLflow: in-cluster Service name, host and tracking URI (or the external URI). */}}
{{- define "mlkube.mlflow.serviceName" -}}
{{- include "mlkube.componentName" (dict "root" . "component" "mlflow") }}
{{- end }}

{{- define "mlkube.trackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "mlkube.mlflow.serviceName" .) .Release.Namespace (int .Values.mlflow.service.port) }}
{{- else }}
{{- required "mlflow.externalUri is required when mlflow.enabled is false" .Values.mlflow.externalUri }}
{{- end }}
{{- end }}

{{/*
Host headers MLflow's security middleware accepts: every DNS form of its Service, with and
without the port, localhost for `kubectl port-forward`, private IPs (probes and scrapers use the
pod IP), plus mlflow.allowedHosts.
*/}}
{{- define "mlkube.mlflow.allowedHosts" -}}
{{- $svc := include "mlkube.mlflow.serviceName" . }}
{{- $ns := .Release.Namespace }}
{{- $port := int .Values.mlflow.service.port }}
{{- $hosts := list }}
{{- range $name := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) }}
{{- $hosts = append $hosts $name }}
{{- $hosts = append $hosts (printf "%s:%d" $name $port) }}
{{- end }}
{{- $hosts = concat $hosts (list "localhost" "localhost:*" "127.0.0.1" "127.0.0.1:*" "10.*" "192.168.*") }}
{{- range $i := until 16 }}
{{- $hosts = append $hosts (printf "172.%d.*" (add 16 $i)) }}
{{- end }}
{{- concat $hosts .Values.mlflow.allowedHosts | uniq | join "," }}
{{- end }}

{{/* Secret names. */}}
{{- define "mlkube.mlflow.secretName" -}}
{{- include "mlkube.componentName" (dict "root" . "component" "mlflow") }}
{{- end }}

{{- define "mlkube.mlflow.authSecretName" -}}
{{- .Values.mlflow.auth.existingSecret | default (printf "%s-auth" (include "mlkube.componentName" (dict "root" . "component" "mlflow"))) }}
{{- end }}

{{- define "mlkube.postgres.secretName" -}}
{{- .Values.postgres.existingSecret | default (include "mlkube.componentName" (dict "root" . "component" "postgres")) }}
{{- end }}

{{/* MLflow needs its volume for sqlite, local artifacts or the basic-auth database. */}}
{{- define "mlkube.mlflow.needsVolume" -}}
{{- if or (eq .Values.mlflow.backend.type "sqlite") (eq .Values.mlflow.artifacts.type "pvc") .Values.mlflow.auth.enabled }}true{{ end }}
{{- end }}

{{/*
MLFLOW_BACKEND_STORE_URI (read by `mlflow server` and passed to `mlflow db upgrade`): a file on the
volume, the bundled Postgres (password spliced in by Kubernetes' $(VAR) expansion, so it never
sits in the pod spec), or the external URI from a Secret.
*/}}
{{- define "mlkube.mlflow.backendEnv" -}}
{{- $b := .Values.mlflow.backend }}
{{- if eq $b.type "sqlite" }}
- name: MLFLOW_BACKEND_STORE_URI
  value: sqlite:////mlflow/mlflow.db
{{- else if eq $b.type "postgres" }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mlkube.postgres.secretName" . }}
      key: password
- name: MLFLOW_BACKEND_STORE_URI
  value: {{ printf "postgresql://%s:$(POSTGRES_PASSWORD)@%s:5432/%s" .Values.postgres.username (include "mlkube.componentName" (dict "root" . "component" "postgres")) .Values.postgres.database | quote }}
{{- else }}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ required "mlflow.backend.existingSecret is required when mlflow.backend.type is external" $b.existingSecret }}
      key: {{ $b.existingSecretKey }}
{{- end }}
{{- end }}

{{- define "mlkube.rollout.webhookSecretName" -}}
{{- .Values.rollout.webhook.existingSecret | default (printf "%s-webhook" (include "mlkube.componentName" (dict "root" . "component" "rollout"))) }}
{{- end }}

{{/*
Annotations of every Secret whose values the chart generates. What they protect outlives the
release: MLflow's PVC (resource-policy keep), Postgres' volume (a StatefulSet PVC) or an external
database hold data encrypted with, or guarded by, these values. `helm uninstall` therefore leaves
the Secrets in place; a reinstall under the same release name adopts them and `lookup` reuses their
values, so MLflow still decrypts its stored webhook secrets and Postgres still accepts MLflow.
*/}}
{{- define "mlkube.generatedSecretAnnotations" -}}
helm.sh/resource-policy: keep
{{- end }}

{{/*
A generated secret value that survives upgrades and reinstalls: reuse the key of the live Secret
when there is one, else a fresh random string. `lookup` is always empty under `helm template` and
in GitOps tools that render with it (Argo CD): there, set the component's `existingSecret`.
Call with (dict "root" $ "name" <secret name> "key" <key> "length" <n>); add "fernet" true for a
Fernet key (urlsafe base64 of 32 random bytes).
*/}}
{{- define "mlkube.secretValue" -}}
{{- $live := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $live $live.data (hasKey $live.data .key) }}
{{- index $live.data .key | b64dec }}
{{- else if get . "fernet" }}
{{- randAlphaNum 32 | b64enc }}
{{- else }}
{{- randAlphaNum (int .length) }}
{{- end }}
{{- end }}

{{/*
Env vars through which the MLflow client library (not our Settings classes) authenticates, when
MLflow runs with basic auth.
*/}}
{{- define "mlkube.mlflowClientAuthEnv" -}}
{{- if and .Values.mlflow.enabled .Values.mlflow.auth.enabled }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "mlkube.mlflow.authSecretName" . }}
      key: admin-username
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mlkube.mlflow.authSecretName" . }}
      key: admin-password
{{- end }}
{{- end }}

{{/* Pod and container hardening shared by every pod. */}}
{{- define "mlkube.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mlkube.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Scratch space: the root filesystem is read-only. */}}
{{- define "mlkube.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "mlkube.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* A pod's scheduling knobs, from a component's values. */}}
{{- define "mlkube.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Where MLflow posts its registry webhooks, and whether the chart registers it. */}}
{{- define "mlkube.rollout.webhookUrl" -}}
{{- .Values.rollout.webhook.url | default (printf "http://%s.%s.svc:%d/webhook" (include "mlkube.componentName" (dict "root" . "component" "rollout")) .Release.Namespace (int .Values.rollout.service.port)) }}
{{- end }}

{{- define "mlkube.rollout.registersWebhook" -}}
{{- if and .Values.rollout.enabled .Values.rollout.webhook.register (or .Values.mlflow.enabled .Values.rollout.webhook.url) }}true{{ end }}
{{- end }}
