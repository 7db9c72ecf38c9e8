{{/* The chart's name, truncated to the 63 characters a label allows. */}}
{{- define "lisa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: <release>-lisa, or the release name when it already says lisa. */}}
{{- define "lisa.fullname" -}}
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

{{- define "lisa.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lisa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lisa
{{- end }}

{{- define "lisa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lisa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lisa.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lisa.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lisa.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when the state is in PostgreSQL. */}}
{{- define "lisa.postgres" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* The Secret holding the admin key, and the one holding the database URL. */}}
{{- define "lisa.adminKeySecret" -}}
{{- default (include "lisa.fullname" .) .Values.adminKey.existingSecret }}
{{- end }}
{{- define "lisa.databaseSecret" -}}
{{- default (include "lisa.fullname" .) .Values.database.existingSecret }}
{{- end }}

{{/* "true" when the chart renders a Secret of its own (admin key, database URL). */}}
{{- define "lisa.ownSecret" -}}
{{- if or (not .Values.adminKey.existingSecret) .Values.database.url }}true{{ end }}
{{- end }}

{{/* The configuration file LISA reads: the config map with the chart's own keys. */}}
{{- define "lisa.configFile" -}}
{{- $config := deepCopy (default dict .Values.config) }}
{{- $hosting := default dict (get $config "hosting") }}
{{- $_ := set $hosting "backend" .Values.hosting.backend }}
{{- $_ = set $config "hosting" $hosting }}
{{- $server := default dict (get $config "server") }}
{{- $_ = set $server "shutdownGracePeriodSeconds" .Values.shutdownGracePeriodSeconds }}
{{- $_ = set $config "server" $server }}
{{- toYaml $config }}
{{- end }}

{{/* The namespace the kubernetes hosting backend runs models in: config's, or the release's. */}}
{{- define "lisa.hostingNamespace" -}}
{{- $hosting := default dict (get (default dict .Values.config) "hosting") }}
{{- $kubernetes := default dict (get $hosting "kubernetes") }}
{{- default .Release.Namespace (get $kubernetes "namespace") }}
{{- end }}

{{/* Checks no schema can express; each failure says what to change. */}}
{{- define "lisa.validate" -}}
{{- if not (include "lisa.postgres" .) }}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}
{{- fail "SQLite state serves one replica: set database.url or database.existingSecret (PostgreSQL) for replicaCount > 1 or autoscaling" }}
{{- end }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "give database.url or database.existingSecret, not both" }}
{{- end }}
{{- if and .Values.adminKey.value .Values.adminKey.existingSecret }}
{{- fail "give adminKey.value or adminKey.existingSecret, not both" }}
{{- end }}
{{- if and .Values.configInSecret .Values.configExistingSecret }}
{{- fail "give configInSecret or configExistingSecret, not both" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (eq .Values.hosting.backend "kubernetes") (not .Values.networkPolicy.egress.kubernetesAPI) }}
{{- fail "the kubernetes hosting backend calls the Kubernetes API: list its address in networkPolicy.egress.kubernetesAPI" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (include "lisa.postgres" .) (not .Values.networkPolicy.egress.database) }}
{{- fail "PostgreSQL state behind a NetworkPolicy: list the database's address in networkPolicy.egress.database" }}
{{- end }}
{{- $auth := default dict (get (default dict .Values.config) "auth") }}
{{- if and .Values.networkPolicy.enabled (get $auth "authority") (not .Values.networkPolicy.egress.identityProvider) }}
{{- fail "config.auth.authority (OIDC) behind a NetworkPolicy: list the identity provider's address in networkPolicy.egress.identityProvider" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas is below autoscaling.minReplicas" }}
{{- end }}
{{- end }}
