{{/* The name of this release's objects: the release name if it says pingmcp, else <release>-pingmcp. */}}
{{- define "pingmcp.fullname" -}}
{{- if contains "pingmcp" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-pingmcp" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What selects this release's pingmcp pods. protoactor adds its own cluster.proto.actor/* labels at run time: nothing selects on them. */}}
{{- define "pingmcp.selectorLabels" -}}
app.kubernetes.io/name: pingmcp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: mcp-server
{{- end -}}

{{- define "pingmcp.labels" -}}
{{ include "pingmcp.selectorLabels" . }}
app.kubernetes.io/part-of: pingmcp
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pingmcp.redisSelectorLabels" -}}
app.kubernetes.io/name: redis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: store
{{- end -}}

{{- define "pingmcp.redisLabels" -}}
{{ include "pingmcp.redisSelectorLabels" . }}
app.kubernetes.io/part-of: pingmcp
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Secret names: generated ones are the release's own. */}}
{{- define "pingmcp.stateKeysSecret" -}}
{{- if .Values.secrets.generate -}}{{ include "pingmcp.fullname" . }}-trial-state-keys{{- else -}}{{ .Values.secrets.stateKeys.name }}{{- end -}}
{{- end -}}
{{- define "pingmcp.stateKeysKey" -}}
{{- if .Values.secrets.generate -}}state-keys{{- else -}}{{ .Values.secrets.stateKeys.key }}{{- end -}}
{{- end -}}
{{- define "pingmcp.clusterTLSSecret" -}}
{{- if .Values.secrets.generate -}}{{ include "pingmcp.fullname" . }}-trial-cluster-tls{{- else -}}{{ .Values.secrets.clusterTLS.name }}{{- end -}}
{{- end -}}

{{- define "pingmcp.redisURL" -}}
{{- if .Values.redis.trial.enabled -}}
{{- printf "redis://%s-redis.%s.svc.cluster.local:6379/0" (include "pingmcp.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- $url := required "redis.urlSecret (a Secret holding the URL: rediss://... with its password in production), or redis.url (one without a password), is required; or set redis.trial.enabled=true to try pingmcp out with a Redis of the chart's own" .Values.redis.url -}}
{{- if contains ":" ((urlParse $url).userinfo | default "") -}}
{{- fail "redis.url holds a password: it would be written into the Deployment, which anyone who may read Deployments or Pods reads. Put the URL in a Secret and name it in redis.urlSecret" -}}
{{- end -}}
{{- $url -}}
{{- end -}}
{{- end -}}

{{- define "pingmcp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* GOMEMLIMIT: 90 % of the container's memory limit (resources.limits.memory),
     in bytes, rounded down. The other 10 % is for what the Go runtime's soft
     limit does not bound: memory outside the runtime that the container is
     charged for, and the runtime's overshoot at its limit (README, "Kubernetes"). */}}
{{- define "pingmcp.goMemLimit" -}}
{{- $limit := .Values.resources.limits.memory -}}
{{- $bytes := 0.0 -}}
{{- if kindIs "string" $limit -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $limit -}}
{{- $units := dict "" 1 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 -}}
{{- $suffix := trimPrefix $number $limit -}}
{{- if or (not $number) (not (hasKey $units $suffix)) -}}
{{- fail (printf "resources.limits.memory %q: GOMEMLIMIT is derived from it, so give it as bytes or a number with a suffix Ki, Mi, Gi, Ti, Pi, k, M, G, T or P (512Mi, 1.5Gi), or set goMemLimitFromContainer=false and GOMEMLIMIT in extraEnv" $limit) -}}
{{- end -}}
{{- $bytes = mulf (float64 $number) (index $units $suffix) -}}
{{- else -}}
{{- $bytes = float64 $limit -}}
{{- end -}}
{{- printf "%d" (int64 (floor (divf (mulf $bytes 9) 10))) -}}
{{- end -}}
