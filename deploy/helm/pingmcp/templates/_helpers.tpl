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

{{/* TRIAL ONLY (secrets.generate): the generated Secrets' data, made once
     per render (kept in .Values for the rest of it), for the Secrets
     themselves (trial-secrets.yaml) and for the pod template's checksum of
     them: pods read them only as they start, so every render that makes new
     ones (each helm upgrade) must roll every pod onto them, or a pod started
     later would hold a CA and keys its peers do not share. */}}
{{- define "pingmcp.trialSecrets" -}}
{{- if not (hasKey .Values.secrets "_trialData") -}}
{{- $fullname := include "pingmcp.fullname" . -}}
{{- $ca := genCA (printf "%s trial cluster CA" $fullname) 365 -}}
{{- $node := genSignedCert (printf "%s-node" $fullname) nil nil 365 $ca -}}
{{- $_ := set .Values.secrets "_trialData" (dict "state-keys" (printf "trial:%s" (randBytes 32)) "tls.crt" $node.Cert "tls.key" $node.Key "ca.crt" $ca.Cert) -}}
{{- end -}}
{{- toJson .Values.secrets._trialData -}}
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

{{/* The pingmcp image: by digest when image.digest is set (what runs is
     then exactly what was built and scanned, whatever the tag points at
     later), else by tag. */}}
{{- define "pingmcp.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The container's memory limit (resources.limits.memory), when one is set:
     not empty and not zero (Kubernetes reads a limit of 0 as none, and the
     downward API then gives the node's allocatable memory). Its value is
     the API server's to check, not the chart's. */}}
{{- define "pingmcp.memoryLimit" -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- if regexFind "[1-9]" (regexFind "^[+-]?[0-9.]+" (toString $limit)) -}}
{{- toString $limit -}}
{{- end -}}
{{- end -}}

{{/* The addresses of an IPv4 CIDR ("10.0.0.0/8"), as JSON numbers: {"first":
     …, "last": …}. For the egress policy's blocked CIDRs: two CIDRs are
     nested or apart, and which holds which is told by their ranges. */}}
{{- define "pingmcp.ipv4Range" -}}
{{- $parts := splitList "/" . -}}
{{- $o := splitList "." (index $parts 0) -}}
{{- $ip := add (mul (atoi (index $o 0)) 16777216) (mul (atoi (index $o 1)) 65536) (mul (atoi (index $o 2)) 256) (atoi (index $o 3)) -}}
{{- $size := 1 -}}
{{- range until (sub 32 (atoi (index $parts 1)) | int) -}}
{{- $size = mul $size 2 -}}
{{- end -}}
{{- $first := mul (div $ip $size) $size -}}
{{- dict "first" $first "last" (sub (add $first $size) 1) | toJson -}}
{{- end -}}
