{{/*
Chart-wide names and labels. Each component names its objects through its own helpers in its
folder (templates/<component>/_helpers.tpl): mlkube.<component>.fullname, .labels,
.selectorLabels and .serviceAccountName, all called with the root context ($).
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

{{/*
Building blocks of the component helpers, called with (list $ "<suffix or component>").
<fullname>-<suffix>, e.g. mlkube-serving:
*/}}
{{- define "mlkube.componentName" -}}
{{- printf "%s-%s" (include "mlkube.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: immutable, so only name/instance/component. */}}
{{- define "mlkube.componentSelectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "mlkube.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "mlkube.componentLabels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "mlkube.chart" $root }}
{{ include "mlkube.componentSelectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: mlkube
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{/*
The ServiceAccount a component's pods run as, from its `serviceAccount` values: `name`, else the
component's name when the chart creates it, else `default`.
Call with (list <component>.serviceAccount <the component's fullname>).
*/}}
{{- define "mlkube.serviceAccountName" -}}
{{- $sa := index . 0 }}
{{- if $sa.create }}
{{- $sa.name | default (index . 1) }}
{{- else }}
{{- $sa.name | default "default" }}
{{- end }}
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
