{{/* The chart name, overridable. */}}
{{- define "packnow-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name. With the release name packnow-operator it is packnow-operator, the same
prefix as config/default's namePrefix, so both installs name their objects alike.
*/}}
{{- define "packnow-operator.fullname" -}}
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

{{- define "packnow-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "packnow-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "packnow-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "packnow-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "packnow-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The ServiceAccount, named as config/rbac names it (controller-manager) under the prefix. */}}
{{- define "packnow-operator.serviceAccountName" -}}
{{ include "packnow-operator.fullname" . }}-controller-manager
{{- end }}

{{/* Service names are DNS labels: at most 63 characters with the suffix. */}}
{{- define "packnow-operator.webhookServiceName" -}}
{{ include "packnow-operator.fullname" . | trunc 47 | trimSuffix "-" }}-webhook-service
{{- end }}

{{- define "packnow-operator.metricsServiceName" -}}
{{ include "packnow-operator.fullname" . | trunc 47 | trimSuffix "-" }}-metrics-service
{{- end }}

{{- define "packnow-operator.certManagerSecretName" -}}
{{ include "packnow-operator.fullname" . }}-webhook-server-cert
{{- end }}

{{- define "packnow-operator.certificateName" -}}
{{ include "packnow-operator.fullname" . }}-serving-cert
{{- end }}

{{/*
Documents of a multi-document YAML file in files/, as a list of objects. The files are copies of config/ made
by `make helm-sync`, so the chart renders what controller-gen generated rather than a hand-kept copy.
*/}}
{{- define "packnow-operator.documents" -}}
{{- $docs := list }}
{{- range regexSplit "(?m)^---\\s*$" (.root.Files.Get .file) -1 }}
{{- $doc := fromYaml . }}
{{- if $doc.Error }}
{{- fail (printf "%s: %s" $.file $doc.Error) }}
{{- end }}
{{- if $doc.kind }}
{{- $docs = append $docs $doc }}
{{- end }}
{{- end }}
{{- toYaml (dict "items" $docs) }}
{{- end }}
