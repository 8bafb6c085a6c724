{{/* MLflow: names, labels, its ServiceAccount. Call each with the root context ($). */}}
{{- define "mlkube.mlflow.fullname" -}}
{{- include "mlkube.componentName" (list . "mlflow") }}
{{- end }}

{{- define "mlkube.mlflow.labels" -}}
{{- include "mlkube.componentLabels" (list . "mlflow") }}
{{- end }}

{{- define "mlkube.mlflow.selectorLabels" -}}
{{- include "mlkube.componentSelectorLabels" (list . "mlflow") }}
{{- end }}

{{- define "mlkube.mlflow.serviceAccountName" -}}
{{- include "mlkube.serviceAccountName" (list .Values.mlflow.serviceAccount (include "mlkube.mlflow.fullname" .)) }}
{{- end }}

{{/* The port the server listens on (`mlflow server --port`), named `http`. */}}
{{- define "mlkube.mlflow.port" -}}
{{- int .Values.mlflow.containerPort }}
{{- end }}

{{/* The basic-auth ConfigMap. */}}
{{- define "mlkube.mlflow.authConfigName" -}}
{{- include "mlkube.componentName" (list . "mlflow-auth") }}
{{- end }}

{{/* Secret names. */}}
{{- define "mlkube.mlflow.secretName" -}}
{{- include "mlkube.mlflow.fullname" . }}
{{- end }}

{{- define "mlkube.mlflow.webhooksSecretName" -}}
{{- .Values.mlflow.webhooks.existingSecret | default (include "mlkube.mlflow.secretName" .) }}
{{- end }}

{{- define "mlkube.mlflow.authSecretName" -}}
{{- .Values.mlflow.auth.existingSecret | default (printf "%s-auth" (include "mlkube.mlflow.fullname" .)) }}
{{- end }}

{{/* In-cluster tracking URI of the Service (or the external URI). */}}
{{- define "mlkube.mlflow.trackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "mlkube.mlflow.fullname" .) .Release.Namespace (int .Values.mlflow.service.port) }}
{{- else }}
{{- required "mlflow.externalUri is required when mlflow.enabled is false" .Values.mlflow.externalUri }}
{{- end }}
{{- end }}

{{/*
Host headers MLflow's security middleware accepts: every DNS form of its Service, with and
without the port, localhost for `kubectl port-forward`, pod IPs (probes and scrapers use them:
private and CGNAT IPv4 ranges, any IPv6 literal), plus mlflow.allowedHosts.
*/}}
{{- define "mlkube.mlflow.allowedHosts" -}}
{{- $svc := include "mlkube.mlflow.fullname" . }}
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
{{- /* 100.64.0.0/10: pod IPs under EKS custom networking (and other CGNAT-range pod networks). */}}
{{- range $i := until 64 }}
{{- $hosts = append $hosts (printf "100.%d.*" (add 64 $i)) }}
{{- end }}
{{- /* Any IPv6 literal ("[addr]:port"; "[[]" is fnmatch's escaped "["): IPv6 pods get global
addresses (EKS IPv6 takes them from the VPC), and an IP literal cannot carry a DNS rebinding,
which is what the host check is for. */}}
{{- $hosts = concat $hosts (list "[[]*") }}
{{- concat $hosts .Values.mlflow.allowedHosts | uniq | join "," }}
{{- end }}

{{/* MLflow needs its volume for sqlite, local artifacts or the basic-auth database. */}}
{{- define "mlkube.mlflow.needsVolume" -}}
{{- if or (eq .Values.mlflow.backend.type "sqlite") (eq .Values.mlflow.artifacts.type "pvc") .Values.mlflow.auth.enabled }}true{{ end }}
{{- end }}

{{- define "mlkube.mlflow.claimName" -}}
{{- .Values.mlflow.persistence.existingClaim | default (include "mlkube.mlflow.fullname" .) }}
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
  value: {{ printf "postgresql://%s:$(POSTGRES_PASSWORD)@%s:%d/%s" .Values.postgres.username (include "mlkube.postgres.fullname" .) (int (include "mlkube.postgres.port" .)) .Values.postgres.database | quote }}
{{- else }}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ required "mlflow.backend.existingSecret is required when mlflow.backend.type is external" $b.existingSecret }}
      key: {{ $b.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
Env vars through which the MLflow client library (not our Settings classes) authenticates, when
MLflow runs with basic auth. Used by every MLflow client pod.
*/}}
{{- define "mlkube.mlflow.clientAuthEnv" -}}
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

{{/*
MLflow's worker processes: 1 with sqlite (one writer: more workers plus the server risk "database
is locked"); else mlflow.workers when set; else one per whole CPU of the limit (uvicorn's
supervisor kills a worker that misses its health ping on a starved pod), at least 1, 2 without
a limit.
*/}}
{{- define "mlkube.mlflow.workers" -}}
{{- $m := .Values.mlflow }}
{{- if eq $m.backend.type "sqlite" }}1
{{- else if $m.workers }}{{ $m.workers }}
{{- else }}
{{- $cpu := toString (dig "limits" "cpu" "" ($m.resources | default dict)) }}
{{- if not $cpu }}2
{{- else if hasSuffix "m" $cpu }}{{ max 1 (div (atoi (trimSuffix "m" $cpu)) 1000) }}
{{- else }}{{ max 1 (int (float64 $cpu)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The wait-for-db init container's program (Python and psycopg2 are in the MLflow image): until
DB_WAIT_SECONDS have passed, try to open a connection to MLFLOW_BACKEND_STORE_URI every 2 s: a
real login for Postgres (what pg_isready reports, plus the credentials and the database), a TCP
connection for any other database. Exit 1 with the last error when the time is up (the pod then
restarts it); the URI and its password are never printed.
*/}}
{{- define "mlkube.mlflow.waitForDbScript" -}}
import os, socket, sys, time
from urllib.parse import urlsplit
uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
limit = int(os.environ["DB_WAIT_SECONDS"])
u = urlsplit(uri)
scheme = u.scheme.split("+")[0]
port = u.port or {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}.get(scheme)
if not u.hostname or not port:
    print(f"no host and port to wait for in the {scheme} URI", flush=True)
    sys.exit(0)
where = f"{u.hostname}:{port}"
deadline = time.monotonic() + limit
while True:
    try:
        if scheme in ("postgresql", "postgres"):
            import psycopg2
            psycopg2.connect("postgresql" + uri[len(u.scheme):], connect_timeout=5).close()
        else:
            socket.create_connection((u.hostname, port), timeout=5).close()
        print(f"database at {where} accepts connections", flush=True)
        sys.exit(0)
    except Exception as exc:
        last = " ".join(str(exc).split()) or type(exc).__name__
    if time.monotonic() >= deadline:
        print(f"database at {where} not ready after {limit}s: {last}", file=sys.stderr)
        sys.exit(1)
    print(f"waiting for the database at {where}: {last}", flush=True)
    time.sleep(2)
{{- end }}

{{/*
The longest a first install may take until MLflow answers, in seconds: what the webhook
registration hook (which needs MLflow) must outlast. 300 for pulling the MLflow image (about
900 MB) onto a fresh node, mlflow.backend.waitSeconds for the database (Postgres or external:
the bundled one pulls its image and runs initdb meanwhile), 120 for `mlflow db upgrade` on an
empty database, 300 for the server's startupProbe (60 x 5 s). An external MLflow is already up:
300 (the hook pulls its own image meanwhile).
*/}}
{{- define "mlkube.mlflow.startSeconds" -}}
{{- $m := .Values.mlflow }}
{{- if not $m.enabled }}300
{{- else if eq $m.backend.type "sqlite" }}{{ add 300 120 300 }}
{{- else }}{{ add 300 (int $m.backend.waitSeconds) 120 300 }}
{{- end }}
{{- end }}
