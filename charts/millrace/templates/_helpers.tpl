{{- define "millrace.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects: unique across releases of the same name in other namespaces. */}}
{{- define "millrace.clusterName" -}}
{{- printf "%s-%s" (include "millrace.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "millrace.labels" -}}
app.kubernetes.io/name: millrace
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations of an object: commonAnnotations and the object's own (a dict, may be empty); empty when there are none. */}}
{{- define "millrace.annotations" -}}
{{- $all := merge (deepCopy (.own | default dict)) (.root.Values.commonAnnotations | default dict) -}}
{{- with $all -}}
annotations: {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{- define "millrace.selectorLabels" -}}
app.kubernetes.io/name: millrace
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "millrace.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "millrace.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces served when not cluster-wide, release namespace first. */}}
{{- define "millrace.namespaces" -}}
{{- prepend .Values.watch.namespaces .Release.Namespace | uniq | toJson -}}
{{- end -}}

{{- define "millrace.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "millrace.fullname" .) -}}
{{- end -}}

{{- define "millrace.leaseName" -}}
{{- printf "%s-leader" (include "millrace.fullname" .) -}}
{{- end -}}

{{- define "millrace.signingSecret" -}}
{{- default (printf "%s-signing-key" (include "millrace.fullname" .)) .Values.signingKey.existingSecret -}}
{{- end -}}

{{/*
The operator's permissions in a namespace it serves: one list, used by the
Role of each namespace or by the ClusterRole. Exactly what the code calls;
docs/operations.md and tests/cluster/test_chart.py say which call needs each.
*/}}
{{- define "millrace.rules" -}}
- apiGroups: [millrace.dev]
  resources: [flows]
  verbs: [get, list, watch, patch]
- apiGroups: [millrace.dev]
  resources: [flowruns]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [millrace.dev]
  resources: [flows/status]
  verbs: [patch]
- apiGroups: [millrace.dev]
  resources: [flowruns/status]
  verbs: [patch, update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
