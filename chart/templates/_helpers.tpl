{{/* Labels on every object the wrapper itself renders. */}}
{{- define "tripclick.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Pods of the official chart carry tier/release labels (they are not app.kubernetes.io). */}}
{{- define "tripclick.airflowPods" -}}
tier: airflow
release: {{ .Release.Name }}
{{- end }}

{{/* Name of the Variables ConfigMap; base.yaml's extraEnvFrom refers to the same name. */}}
{{- define "tripclick.variablesConfigMap" -}}
{{- printf "%s-variables" .Release.Name -}}
{{- end }}

{{/* A Variable's effective value: the overlay's, else the DAG's default. */}}
{{- define "tripclick.variable" -}}
{{- $vars := .root.Values.tripclick.variables | default dict -}}
{{- if hasKey $vars .name }}{{ index $vars .name }}{{ else }}{{ .default }}{{ end -}}
{{- end }}

{{/* egress "to" entries for a list of CIDRs with optional exceptions. */}}
{{- define "tripclick.ipBlocks" -}}
{{- $except := .except | default list -}}
{{- range .cidrs }}
- ipBlock:
    cidr: {{ . | quote }}
    {{- if $except }}
    except: {{- toYaml $except | nindent 6 }}
    {{- end }}
{{- end }}
{{- end }}
