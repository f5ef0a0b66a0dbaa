{{/* Chart name, truncated to the 63-character DNS label limit. */}}
{{- define "genaudit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-<chart> unless the release name already holds the chart name. */}}
{{- define "genaudit.fullname" -}}
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

{{- define "genaudit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "genaudit.labels" -}}
helm.sh/chart: {{ include "genaudit.chart" . }}
{{ include "genaudit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: genaudit
{{- end }}

{{- define "genaudit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "genaudit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "genaudit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "genaudit.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "genaudit.gatewayImage" -}}
{{- printf "%s:%s" .Values.image.gateway.repository (default .Chart.AppVersion .Values.image.gateway.tag) }}
{{- end }}

{{- define "genaudit.workerImage" -}}
{{- printf "%s:%s" .Values.image.worker.repository (default .Chart.AppVersion .Values.image.worker.tag) }}
{{- end }}

{{/* Name of the Bitnami subchart objects (their common.names.fullname with default overrides). */}}
{{- define "genaudit.subchartFullname" -}}
{{- $root := index . 0 }}{{- $chart := index . 1 }}
{{- if contains $chart $root.Release.Name }}
{{- $root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $root.Release.Name $chart | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "genaudit.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "genaudit.fullname" .)) .Values.apiKeys.existingSecret }}
{{- end }}

{{/* The API-keys file: hashed keys as given, plaintext keys hashed here. Never contains a plaintext key. */}}
{{- define "genaudit.apiKeysJson" -}}
{{- $tenants := dict }}
{{- range $tenant, $hashes := .Values.apiKeys.hashed }}
{{- $_ := set $tenants $tenant (concat (get $tenants $tenant | default list) $hashes) }}
{{- end }}
{{- range $tenant, $keys := .Values.apiKeys.plaintext }}
{{- $hashed := list }}
{{- range $keys }}{{ $hashed = append $hashed (sha256sum .) }}{{ end }}
{{- $_ := set $tenants $tenant (concat (get $tenants $tenant | default list) $hashed | uniq) }}
{{- end }}
{{- dict "tenants" $tenants | toJson }}
{{- end }}

{{/*
Environment every genaudit process shares: the broker URL and the S3 credentials, from the Bitnami
subchart Secrets or from ours (external services). Non-secret settings come from the ConfigMap.
*/}}
{{- define "genaudit.secretEnv" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "genaudit.subchartFullname" (list . "redis") }}
      key: redis-password
- name: GENAUDIT_REDIS_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "genaudit.subchartFullname" (list . "redis") }}-master:6379/0"
{{- else }}
- name: GENAUDIT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-redis" (include "genaudit.fullname" .)) .Values.externalRedis.existingSecret }}
      key: redis-url
{{- end }}
{{- if .Values.minio.enabled }}
- name: GENAUDIT_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "genaudit.subchartFullname" (list . "minio") }}
      key: root-user
- name: GENAUDIT_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "genaudit.subchartFullname" (list . "minio") }}
      key: root-password
{{- else }}
- name: GENAUDIT_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-s3" (include "genaudit.fullname" .)) .Values.externalS3.existingSecret }}
      key: access-key
- name: GENAUDIT_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-s3" (include "genaudit.fullname" .)) .Values.externalS3.existingSecret }}
      key: secret-key
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when settings or secrets change. */}}
{{- define "genaudit.checksumAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
