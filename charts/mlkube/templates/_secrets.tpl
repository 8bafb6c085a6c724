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
