{{/* Pieces shared by every pod of the chart. */}}

{{/*
checkov skips of a workload, numbered as checkov expects, each with its reason. Adds the image
skips that depend on values, each with the reason that holds for these values: the pull policy
(CKV_K8S_15) unless it is Always, the digest (CKV_K8S_43) unless every image has one.
With "mlflowClient" true, the pod holds MLflow's basic-auth credentials in env vars when auth is on.
With "postgres" true, the image is the bundled Postgres (its own pullPolicy, tag and registry).
Call with (dict "root" $ "images" (list <image values>...) "skips" (list "CKV_K8S_xx=reason")).
*/}}
{{- define "mlkube.checkovAnnotations" -}}
{{- $skips := get . "skips" | default list }}
{{- if and (get . "mlflowClient") .root.Values.mlflow.enabled .root.Values.mlflow.auth.enabled }}
{{- $skips = append $skips "CKV_K8S_35=MLflow's client reads basic-auth credentials from MLFLOW_TRACKING_USERNAME/PASSWORD, taken from a Secret by secretKeyRef" }}
{{- end }}
{{- $policy := "Always" }}
{{- $allDigests := true }}
{{- range .images }}
{{- $p := get . "pullPolicy" | default $.root.Values.image.pullPolicy }}
{{- if ne $p "Always" }}{{ $policy = $p }}{{ end }}
{{- if not .digest }}{{ $allDigests = false }}{{ end }}
{{- end }}
{{- if get . "postgres" }}
{{- if ne $policy "Always" }}
{{- $skips = append $skips (printf "CKV_K8S_15=pullPolicy %s (postgres.image.pullPolicy): the database restarts from the image already on its node, without a registry round-trip or its rate limits; postgres.image.digest pins one exact build" $policy) }}
{{- end }}
{{- if not $allDigests }}
{{- $skips = append $skips "CKV_K8S_43=pinned by the tag postgres.image.tag (a Postgres minor version on a Debian release, never latest); set postgres.image.digest to pin one exact build" }}
{{- end }}
{{- else }}
{{- if eq $policy "Never" }}
{{- $skips = append $skips "CKV_K8S_15=pullPolicy Never (image.pullPolicy): the images are imported into the node's container store (the local cluster of hack/cluster); there is no registry to pull from" }}
{{- else if and (ne $policy "Always") (not .root.Values.image.registry) }}
{{- $skips = append $skips (printf "CKV_K8S_15=pullPolicy %s (image.pullPolicy) without image.registry: the images exist only on the nodes (kind load), where Always would fail to pull them" $policy) }}
{{- else if ne $policy "Always" }}
{{- $skips = append $skips (printf "CKV_K8S_15=pullPolicy %s (image.pullPolicy) from image.registry: no tag is pushed twice with other content (make deploy tags each build <appVersion>-<image id>, or deploys by digest), so the node's cached image is the one named; Always adds a registry call to every pod start" $policy) }}
{{- end }}
{{- if not $allDigests }}
{{- $skips = append $skips "CKV_K8S_43=pinned by tag (<component>.image.tag, else image.tag, else the chart's appVersion; latest is refused by the schema); make deploy tags each build <appVersion>-<image id>, a new tag per content; set <component>.image.digest to pin by digest" }}
{{- end }}
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
