{{/* Chart name, overridable. */}}
{{- define "certweave.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every object. A release named `certweave` gives
`certweave`, matching the binary's default object names.
*/}}
{{- define "certweave.fullname" -}}
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

{{- define "certweave.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the controller Pods; never change between releases. */}}
{{- define "certweave.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certweave.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "certweave.labels" -}}
helm.sh/chart: {{ include "certweave.chart" . }}
{{ include "certweave.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: certweave
{{- end }}

{{- define "certweave.serviceAccountName" -}}
{{- default (include "certweave.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* Object names passed to the binary as flags. */}}
{{- define "certweave.webhookServiceName" -}}
{{- printf "%s-webhook" (include "certweave.fullname" .) }}
{{- end }}
{{- define "certweave.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "certweave.fullname" .)) .Values.webhook.tls.existingSecret }}
{{- end }}
{{- define "certweave.webhookConfigName" -}}
{{- default (include "certweave.fullname" .) .Values.webhook.configName }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "certweave.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
namespaceSelector of the Ingress, Gateway and Pod webhooks; takes a dict:
excluded (never mutated) and selected (watchNamespaces minus excluded;
empty in a cluster-wide install, which selects every namespace but the
excluded ones).
*/}}
{{- define "certweave.webhookNamespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      {{- if .selected }}
      operator: In
      values:
        {{- range .selected }}
        - {{ . | quote }}
        {{- end }}
      {{- else }}
      operator: NotIn
      values:
        {{- range .excluded }}
        - {{ . | quote }}
        {{- end }}
      {{- end }}
{{- end }}
