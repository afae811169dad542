{{- define "docbrain.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "docbrain.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "docbrain.labels" -}}
app.kubernetes.io/name: {{ include "docbrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "docbrain.selector" -}}
app.kubernetes.io/name: {{ include "docbrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "docbrain.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Confluence settings: the webhook block first, then the ingest block. */}}
{{- define "docbrain.confluence.baseUrl" -}}
{{- .Values.confluenceWebhook.baseUrl | default .Values.ingest.confluence.baseUrl -}}
{{- end -}}
{{- define "docbrain.confluence.email" -}}
{{- .Values.confluenceWebhook.email | default .Values.ingest.confluence.email -}}
{{- end -}}
{{- define "docbrain.confluence.apiToken" -}}
{{- .Values.confluenceWebhook.apiToken | default .Values.ingest.confluence.apiToken -}}
{{- end -}}
{{- define "docbrain.confluence.apiVersion" -}}
{{- .Values.confluenceWebhook.apiVersion | default .Values.ingest.confluence.apiVersion | default "v2" -}}
{{- end -}}

{{/* The Secret holding a key: an existing one when named, else the chart's own. */}}
{{- define "docbrain.secretName" -}}
{{- include "docbrain.fullname" . -}}
{{- end -}}

{{- define "docbrain.webhookSecretRef" -}}
{{- .Values.confluenceWebhook.existingSecret | default (include "docbrain.secretName" .) -}}
{{- end -}}

{{- define "docbrain.apiTokenRef" -}}
{{- .Values.confluenceWebhook.existingSecret | default .Values.ingest.confluence.existingSecret | default (include "docbrain.secretName" .) -}}
{{- end -}}

{{- define "docbrain.hasApiToken" -}}
{{- if or .Values.confluenceWebhook.existingSecret .Values.ingest.confluence.existingSecret (include "docbrain.confluence.apiToken" .) -}}true{{- end -}}
{{- end -}}

{{- define "docbrain.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "docbrain.fullname" .)) -}}
{{- end -}}

{{/* Settings both the server and the ingest job read. */}}
{{- define "docbrain.commonEnv" -}}
- name: DOCBRAIN_DATA_DIR
  value: /data/index
- name: MODEL_DIR
  value: /opt/docbrain/models/all-MiniLM-L6-v2
- name: EMBED_PROVIDER
  value: {{ .Values.embedder.provider | quote }}
{{- with .Values.embedder.modelId }}
- name: EMBED_MODEL_ID
  value: {{ . | quote }}
{{- end }}
{{- with .Values.embedder.openaiBaseUrl }}
- name: OPENAI_BASE_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.embedder.openaiApiKey }}
- name: OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "docbrain.secretName" . }}
      key: OPENAI_API_KEY
{{- end }}
{{- with .Values.embedder.ollamaBaseUrl }}
- name: OLLAMA_BASE_URL
  value: {{ . | quote }}
{{- end }}
- name: SEARCH_PERMISSIONS
  value: {{ .Values.search.permissions | quote }}
- name: PERMISSION_CACHE_TTL
  value: {{ .Values.search.permissionCacheTtl | quote }}
- name: INDEX_STORE
  value: {{ .Values.index.store | quote }}
{{- if eq .Values.index.store "opensearch" }}
- name: OPENSEARCH_URL
  value: {{ .Values.index.opensearch.url | quote }}
- name: OPENSEARCH_INDEX
  value: {{ .Values.index.opensearch.index | quote }}
- name: OPENSEARCH_TLS_VERIFY
  value: {{ .Values.index.opensearch.tlsVerify | quote }}
{{- with .Values.index.opensearch.username }}
- name: OPENSEARCH_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if or .Values.index.opensearch.password .Values.index.opensearch.existingSecret }}
- name: OPENSEARCH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.index.opensearch.existingSecret | default (include "docbrain.secretName" .) }}
      key: OPENSEARCH_PASSWORD
{{- end }}
{{- end }}
{{- with (include "docbrain.confluence.baseUrl" .) }}
- name: CONFLUENCE_BASE_URL
  value: {{ . | quote }}
{{- end }}
- name: CONFLUENCE_API_VERSION
  value: {{ include "docbrain.confluence.apiVersion" . | quote }}
{{- with (include "docbrain.confluence.email" .) }}
- name: CONFLUENCE_USER_EMAIL
  value: {{ . | quote }}
{{- end }}
{{- if include "docbrain.hasApiToken" . }}
- name: CONFLUENCE_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "docbrain.apiTokenRef" . }}
      key: CONFLUENCE_API_TOKEN
{{- end }}
{{- with .Values.ingest.confluence.spaceKeys }}
- name: CONFLUENCE_SPACE_KEYS
  value: {{ . | quote }}
{{- end }}
- name: CONFLUENCE_PAGE_LIMIT
  value: {{ .Values.ingest.confluence.pageLimit | quote }}
- name: CONFLUENCE_ANONYMOUS_ACCESS
  value: {{ .Values.ingest.confluence.anonymousAccess | quote }}
- name: COMMENTS
  value: {{ .Values.ingest.confluence.comments | quote }}
{{- end -}}

{{- define "docbrain.volumes" -}}
- name: data
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "docbrain.claimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "docbrain.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Whether the chart makes the search key itself: no key, Secret or open index was given. */}}
{{- define "docbrain.generatesSearchKey" -}}
{{- $s := .Values.search -}}
{{- if not (or $s.apiKeys $s.userKeys $s.existingSecret $s.allowAnonymous) }}true{{ end -}}
{{- end -}}
