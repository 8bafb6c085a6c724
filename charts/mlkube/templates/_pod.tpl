{{/* Pieces shared by every pod of the chart. */}}

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
