{{/*
The training pod, shared by the CronJob and the first-run hook Job.
Call with (dict "root" $ "trigger" "cron"|"manual").
*/}}
{{- define "mlkube.training.podTemplate" -}}
{{- $ := .root }}
{{- $t := $.Values.training }}
metadata:
  labels:
    {{- include "mlkube.training.labels" $ | nindent 4 }}
spec:
  serviceAccountName: {{ include "mlkube.training.serviceAccountName" $ }}
  automountServiceAccountToken: false
  # The Job's backoffLimit retries in a fresh pod; the job itself exits 1 when MLflow stays down.
  restartPolicy: Never
  {{- with include "mlkube.imagePullSecrets" $ | trim }}{{ . | nindent 2 }}{{- end }}
  securityContext:
    {{- include "mlkube.podSecurityContext" $ | nindent 4 }}
  containers:
    - name: train
      image: {{ include "mlkube.image" (dict "root" $ "image" $t.image) }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      command: ["python", "-m", "jobs.train"]
      env:
        - name: MLFLOW_TRACKING_URI
          value: {{ include "mlkube.mlflow.trackingUri" $ | quote }}
        - name: MODEL_NAME
          value: {{ $.Values.model.name | quote }}
        - name: MODEL_ALIAS
          value: {{ $.Values.model.alias | quote }}
        - name: TRAIN_EXPERIMENT
          value: {{ $t.experiment | quote }}
        {{- with $t.data }}
        - name: TRAIN_DATA
          value: {{ . | quote }}
        {{- end }}
        {{- with $t.target }}
        - name: TRAIN_TARGET
          value: {{ . | quote }}
        {{- end }}
        - name: TRAIN_CLASSIFIER
          value: {{ $t.classifier | quote }}
        - name: TRAIN_METRIC
          value: {{ $t.metric | quote }}
        - name: TRAIN_MIN_IMPROVEMENT
          value: {{ $t.minImprovement | quote }}
        - name: TRAIN_TRIGGER
          value: {{ .trigger | quote }}
        {{- if not (kindIs "invalid" $t.seed) }}
        - name: TRAIN_SEED
          value: {{ $t.seed | int | quote }}
        {{- end }}
        - name: TRAIN_CONNECT_TIMEOUT
          value: {{ $t.connectTimeout | quote }}
        {{- with $t.gitCommit }}
        - name: GIT_COMMIT
          value: {{ . | quote }}
        {{- end }}
        {{- with include "mlkube.mlflow.clientAuthEnv" $ | trim }}{{ . | nindent 8 }}{{- end }}
      securityContext:
        {{- include "mlkube.containerSecurityContext" $ | nindent 8 }}
      resources:
        {{- toYaml $t.resources | nindent 8 }}
      volumeMounts:
        {{- include "mlkube.tmpVolumeMount" $ | nindent 8 }}
  volumes:
    {{- include "mlkube.tmpVolume" $ | nindent 4 }}
  {{- with include "mlkube.scheduling" $t | trim }}{{ . | nindent 2 }}{{- end }}
{{- end }}
