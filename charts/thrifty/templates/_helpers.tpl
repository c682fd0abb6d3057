{{/*
The name every object of a release shares: the release name when it already names the chart
(`helm install thrifty ...` gives the same names as manifests/), else "<release>-thrifty".
*/}}
{{- define "thrifty.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Selects the operator's pods. The instance label keeps two releases in one namespace (each
watching a namespace of its own) from selecting each other's pods.
*/}}
{{- define "thrifty.selectorLabels" -}}
app.kubernetes.io/name: thrifty
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels of manifests/ plus Helm's own; "thrifty.labels" adds the component. */}}
{{- define "thrifty.baseLabels" -}}
app.kubernetes.io/name: thrifty
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: thrifty
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "thrifty.labels" -}}
{{ include "thrifty.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "thrifty.schedulerLabels" -}}
{{ include "thrifty.baseLabels" . }}
app.kubernetes.io/component: scheduler
{{- end -}}

{{/*
The kube-scheduler container's objects: its ConfigMap, its RBAC and the Lease it elects a leader
with (manifests/ names all four thrifty-scheduler).
*/}}
{{- define "thrifty.schedulerFullname" -}}
{{- printf "%s-scheduler" (include "thrifty.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "thrifty.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
