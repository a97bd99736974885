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

{{/* Airflow options that hold secrets: Airflow's own `sensitive` options (tests/chart checks this covers
     them) and the Celery and SMTP ones. Set them only through Secrets (*SecretName, airflow.secret). */}}
{{- define "tripclick.sensitiveConfig" -}}
{{- list "api.secret_key" "api_auth.jwt_secret" "atlas.password" "core.asset_manager_kwargs" "core.fernet_key"
  "core.sql_alchemy_conn" "database.sql_alchemy_conn" "database.sql_alchemy_conn_async"
  "database.sql_alchemy_engine_args" "logging.remote_task_handler_kwargs" "opensearch.password"
  "secrets.backend_kwargs" "sentry.sentry_dsn" "webserver.secret_key" "workers.secrets_backend_kwargs"
  "celery.broker_url" "celery.result_backend" "celery.flower_basic_auth" "smtp.smtp_password" | toJson -}}
{{- end }}

{{/* "true" when an environment variable of that name carries a secret: connections, Airflow's sensitive
     options as AIRFLOW__SECTION__KEY, and the usual credential names. *_FILE, *_CMD and *_PATH name
     where a secret is, not the secret. */}}
{{- define "tripclick.sensitiveEnvName" -}}
{{- $name := upper (toString .) -}}
{{- $options := list -}}
{{- range (include "tripclick.sensitiveConfig" . | fromJsonArray) -}}
{{- $parts := splitList "." . -}}
{{- $options = append $options (printf "AIRFLOW__%s__%s" (index $parts 0) (index $parts 1) | upper) -}}
{{- end -}}
{{- if not (regexMatch "_(FILE|CMD|PATH)$" $name) -}}
{{- if or (hasPrefix "AIRFLOW_CONN_" $name) (has $name $options) (regexMatch "PASSWORD|PASSWD|TOKEN|SECRET_KEY|SECRET_ACCESS_KEY|ACCESS_KEY_ID|API_KEY|PRIVATE_KEY|CLIENT_SECRET|WEBHOOK|_DSN$" $name) -}}
true
{{- end -}}
{{- end -}}
{{- end }}

{{/* What a credential looks like wherever it is: a URI with a password, a PEM block, a Slack webhook. */}}
{{- define "tripclick.credentialPattern" -}}
://[^/\s:@]+:[^\s@]+@|-----BEGIN [A-Z ]*-----|hooks\.slack\.com/services/
{{- end }}

{{/* One line per place under a values tree that holds a secret: a credential-looking string anywhere,
     and an environment entry (any `env` list, any `extraEnv` string) that sets a secret's name to a
     literal value. Lines name the key, never the value (the message ends up in CI logs). */}}
{{- define "tripclick.secretProblems" -}}
{{- $path := .path -}}
{{- $value := .value -}}
{{- if kindIs "map" $value -}}
{{- range $key, $child := $value -}}
{{- include "tripclick.secretProblems" (dict "path" (printf "%s.%s" $path $key) "key" $key "value" $child) -}}
{{- end -}}
{{- else if kindIs "slice" $value -}}
{{- range $i, $child := $value -}}
{{- $at := printf "%s[%d]" $path $i -}}
{{- if and (eq $.key "env") (kindIs "map" $child) (hasKey $child "value") (include "tripclick.sensitiveEnvName" $child.name) }}
{{ printf "%s sets %s to a literal value" $at $child.name }}
{{- end -}}
{{- include "tripclick.secretProblems" (dict "path" $at "key" "" "value" $child) -}}
{{- end -}}
{{- else if kindIs "string" $value -}}
{{- if regexMatch (include "tripclick.credentialPattern" .) $value }}
{{ printf "%s holds a credential (a URI with a password, a private key or a webhook)" $path }}
{{- end -}}
{{- if eq .key "extraEnv" -}}
{{- $items := fromYamlArray $value -}}
{{- range $i, $item := $items -}}
{{- if and (kindIs "map" $item) (hasKey $item "value") (include "tripclick.sensitiveEnvName" $item.name) }}
{{ printf "%s sets %s to a literal value" $path $item.name }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
