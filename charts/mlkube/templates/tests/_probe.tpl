{{/*
A `helm test` pod that GETs each URL until it answers 2xx or the deadline passes (bounded, with
basic auth when MLflow uses it). It runs the serving image: Python is all it needs.
Call with (dict "root" $ "name" <suffix> "urls" (list ...)).
*/}}
{{- define "mlkube.tests.pod" -}}
{{- $ := .root }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "mlkube.tests.podName" (dict "root" $ "check" .name) }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "mlkube.tests.labels" $ | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation
    {{- include "mlkube.checkovAnnotations" (dict "root" $ "images" (list $.Values.serving.image) "mlflowClient" true "skips" (list
      "CKV_K8S_8=a one-shot test pod that exits when its check is done: nothing to probe"
      "CKV_K8S_9=a one-shot test pod that exits when its check is done: nothing to probe"
    )) | trim | nindent 4 }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "mlkube.tests.serviceAccountName" $ }}
  automountServiceAccountToken: false
  {{- with include "mlkube.imagePullSecrets" $ | trim }}{{ . | nindent 2 }}{{- end }}
  securityContext:
    {{- include "mlkube.podSecurityContext" $ | nindent 4 }}
  containers:
    - name: check
      image: {{ include "mlkube.image" (dict "root" $ "image" $.Values.serving.image) }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      command:
        - python
        - -c
        - |
          import base64, os, sys, time, urllib.request
          deadline = time.monotonic() + float(sys.argv[1])
          headers = {}
          if os.environ.get("MLFLOW_TRACKING_USERNAME"):
              creds = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
              headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
          for url in sys.argv[2:]:
              while True:
                  try:
                      req = urllib.request.Request(url, headers=headers)
                      with urllib.request.urlopen(req, timeout=5) as resp:
                          sys.stdout.write(f"ok {resp.status} {url}\n")
                          break
                  except Exception as exc:
                      if time.monotonic() > deadline:
                          sys.stdout.write(f"FAILED {url}: {exc}\n")
                          sys.exit(1)
                      time.sleep(2)
        - {{ $.Values.tests.timeoutSeconds | quote }}
        {{- range .urls }}
        - {{ . | quote }}
        {{- end }}
      {{- with include "mlkube.mlflow.clientAuthEnv" $ | trim }}
      env:
        {{- . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "mlkube.containerSecurityContext" $ | nindent 8 }}
      resources:
        requests:
          cpu: 10m
          memory: 64Mi
        limits:
          cpu: 200m
          memory: 128Mi
      volumeMounts:
        {{- include "mlkube.tmpVolumeMount" $ | nindent 8 }}
  volumes:
    {{- include "mlkube.tmpVolume" $ | nindent 4 }}
{{- end }}
