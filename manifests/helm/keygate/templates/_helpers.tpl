{{/* Names: every object is <release>-keygate-<component>, or <release>-<component> when the
release name already says keygate. */}}
{{- define "keygate.fullname" -}}
{{- if contains "keygate" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-keygate" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keygate.name" -}}
{{- printf "%s-%s" (include "keygate.fullname" .root) .component -}}
{{- end -}}

{{/* The DNS name of a component's Service, which its certificate must carry. */}}
{{- define "keygate.host" -}}
{{- printf "%s.%s.svc" (include "keygate.name" .) .root.Release.Namespace -}}
{{- end -}}

{{- define "keygate.selectorLabels" -}}
app.kubernetes.io/name: keygate
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "keygate.labels" -}}
{{ include "keygate.selectorLabels" . }}
app.kubernetes.io/part-of: keygate
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* metadata of a namespaced object of a component. */}}
{{- define "keygate.metadata" -}}
name: {{ include "keygate.name" . }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "keygate.labels" . | nindent 2 }}
{{- end -}}

{{/* The image of a Go component, by digest if one is given. */}}
{{- define "keygate.image" -}}
{{- $i := .root.Values.image -}}
{{- $d := get $i.digests .component -}}
{{- if $d -}}
{{ printf "%s/%s/%s@%s" $i.registry $i.repository .component $d }}
{{- else -}}
{{ printf "%s/%s/%s:%s" $i.registry $i.repository .component (default .root.Chart.AppVersion $i.tag) }}
{{- end -}}
{{- end -}}

{{/* Pod securityContext: every pod runs as the images' nonroot user. */}}
{{- define "keygate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Container securityContext, the same for every container. */}}
{{- define "keygate.securityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
seccompProfile: {type: RuntimeDefault}
capabilities: {drop: [ALL]}
{{- end -}}

{{/* Probes on a component's operations port: liveness /healthz, readiness /readyz. */}}
{{- define "keygate.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 10
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
  failureThreshold: 2
startupProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 2
  failureThreshold: 60
{{- end -}}

{{/* Spread a component's pods over zones and nodes, best effort. */}}
{{- define "keygate.topologySpread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "keygate.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "keygate.selectorLabels" . | nindent 8 }}
{{- end -}}

{{/* Scheduling values of a component (v): nodeSelector, tolerations, affinity. */}}
{{- define "keygate.scheduling" -}}
{{- with .v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget of a component (v.pdb). */}}
{{- define "keygate.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "keygate.metadata" . | nindent 2 }}
spec:
  {{- if hasKey .v.pdb "maxUnavailable" }}
  maxUnavailable: {{ .v.pdb.maxUnavailable }}
  {{- else }}
  minAvailable: {{ .v.pdb.minAvailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "keygate.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* A Secret volume (name, secretName, optional items). */}}
{{- define "keygate.secretVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ required (printf "the Secret of volume %s is not named" .name) .secretName }}
    defaultMode: 0440
    {{- with .items }}
    items:
      {{- range . }}
      - {key: {{ . }}, path: {{ . }}}
      {{- end }}
    {{- end }}
{{- end -}}

{{/* The Redis settings keystore and extauthz share, as environment variables with prefix p.
The password is a mounted file, never an environment variable or an argument. */}}
{{- define "keygate.redisEnv" -}}
{{- $r := .root.Values.redis -}}
{{- $p := .prefix -}}
- name: {{ $p }}_REDIS_ADDRESS
  value: {{ include "keygate.redisAddress" .root | quote }}
{{- with (include "keygate.redisMasterName" .root) }}
- name: {{ $p }}_REDIS_MASTER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if and (eq $r.deploy "none") $r.db }}
- name: {{ $p }}_REDIS_DB
  value: {{ $r.db | quote }}
{{- end }}
{{- if and (eq $p "KEYSTORE") $r.minReplicaAcks }}
- name: KEYSTORE_REDIS_MIN_REPLICA_ACKS
  value: {{ $r.minReplicaAcks | quote }}
- name: KEYSTORE_REDIS_REPLICA_ACK_TIMEOUT
  value: {{ $r.replicaAckTimeout | quote }}
{{- end }}
{{- if and (eq $r.deploy "none") $r.username }}
- name: {{ $p }}_REDIS_USERNAME
  value: {{ $r.username | quote }}
{{- end }}
{{- if and (eq $r.deploy "none") $r.password.secretName }}
- name: {{ $p }}_REDIS_PASSWORD_FILE
  value: /etc/keygate/redis-password/password
{{- end }}
{{- if and (eq $r.deploy "none") $r.sentinelUsername }}
- name: {{ $p }}_REDIS_SENTINEL_USERNAME
  value: {{ $r.sentinelUsername | quote }}
{{- end }}
{{- if and (eq $r.deploy "none") $r.sentinelPassword.secretName }}
- name: {{ $p }}_REDIS_SENTINEL_PASSWORD_FILE
  value: /etc/keygate/redis-sentinel-password/password
{{- end }}
{{- if and (eq $r.deploy "none") $r.tls.enabled }}
- name: {{ $p }}_REDIS_TLS
  value: "true"
{{- if $r.tls.secretName }}
- name: {{ $p }}_REDIS_CA_FILE
  value: /etc/keygate/redis-tls/ca.crt
{{- if $r.tls.clientCertificate }}
- name: {{ $p }}_REDIS_CLIENT_CERT_FILE
  value: /etc/keygate/redis-tls/tls.crt
- name: {{ $p }}_REDIS_CLIENT_KEY_FILE
  value: /etc/keygate/redis-tls/tls.key
{{- end }}
{{- end }}
{{- with $r.tls.serverName }}
- name: {{ $p }}_REDIS_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes and mounts for the Redis settings above. */}}
{{- define "keygate.redisVolumes" -}}
{{- $r := .Values.redis -}}
{{- if eq $r.deploy "none" }}
{{- if $r.password.secretName }}
- name: redis-password
  secret:
    secretName: {{ $r.password.secretName }}
    defaultMode: 0440
    items: [{key: {{ default "password" $r.password.key }}, path: password}]
{{- end }}
{{- if $r.sentinelPassword.secretName }}
- name: redis-sentinel-password
  secret:
    secretName: {{ $r.sentinelPassword.secretName }}
    defaultMode: 0440
    items: [{key: {{ default "password" $r.sentinelPassword.key }}, path: password}]
{{- end }}
{{- if and $r.tls.enabled $r.tls.secretName }}
{{ include "keygate.secretVolume" (dict "name" "redis-tls" "secretName" $r.tls.secretName "items" (ternary (list "ca.crt" "tls.crt" "tls.key") (list "ca.crt") $r.tls.clientCertificate)) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "keygate.redisMounts" -}}
{{- $r := .Values.redis -}}
{{- if eq $r.deploy "none" }}
{{- if $r.password.secretName }}
- {name: redis-password, mountPath: /etc/keygate/redis-password, readOnly: true}
{{- end }}
{{- if $r.sentinelPassword.secretName }}
- {name: redis-sentinel-password, mountPath: /etc/keygate/redis-sentinel-password, readOnly: true}
{{- end }}
{{- if and $r.tls.enabled $r.tls.secretName }}
- {name: redis-tls, mountPath: /etc/keygate/redis-tls, readOnly: true}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where keystore and extauthz find Redis. */}}
{{- define "keygate.redisAddress" -}}
{{- $r := .Values.redis -}}
{{- if eq $r.deploy "none" -}}
{{ required "redis.address is required with redis.deploy: none (host:port of your Redis; a comma-separated list for a Cluster, or the Sentinels with redis.masterName); or set redis.deploy: single for a trial" $r.address }}
{{- else if eq $r.deploy "single" -}}
{{ printf "%s:6379" (include "keygate.name" (dict "root" . "component" "redis")) }}
{{- else if eq $r.deploy "sentinel" -}}
{{- $n := include "keygate.name" (dict "root" . "component" "redis") -}}
{{- $h := printf "%s-headless.%s.svc" $n .Release.Namespace -}}
{{ printf "%s-0.%s:26379,%s-1.%s:26379,%s-2.%s:26379" $n $h $n $h $n $h }}
{{- else -}}
{{ fail (printf "redis.deploy is %q: use none, single or sentinel" $r.deploy) }}
{{- end -}}
{{- end -}}

{{- define "keygate.redisMasterName" -}}
{{- if eq .Values.redis.deploy "sentinel" -}}
keygate
{{- else if eq .Values.redis.deploy "none" -}}
{{ .Values.redis.masterName }}
{{- end -}}
{{- end -}}

{{/* xds's targets file: keystore's upstreams, then the extra targets of the values. */}}
{{- define "keygate.targets" -}}
{{- $ksHost := include "keygate.host" (dict "root" . "component" "keystore") -}}
{{- $ca := "/etc/keygate/keystore-ca/ca.crt" -}}
{{- $t := dict "management" (dict "url" (printf "https://%s:%v" $ksHost .Values.keystore.apiPort) "caFile" $ca "clientCertFile" "/etc/keygate/edge-client/tls.crt" "clientKeyFile" "/etc/keygate/edge-client/tls.key") -}}
{{- $_ := set $t "auth" (dict "url" (printf "https://%s:%v" $ksHost .Values.keystore.authPort) "caFile" $ca "clientCertFile" "/etc/keygate/edge-client/tls.crt" "clientKeyFile" "/etc/keygate/edge-client/tls.key") -}}
{{- if .Values.keystore.oidc.enabled -}}
{{- $_ := set $t "oidc" (dict "url" (printf "https://%s:%v" $ksHost .Values.keystore.oidc.port) "caFile" $ca) -}}
{{- end -}}
{{- range $k, $v := .Values.xds.extraTargets -}}
{{- if has $k (list "management" "auth" "oidc") -}}
{{- fail (printf "xds.extraTargets.%s: the chart points %s at keystore; set clusters or virtualClusters here" $k $k) -}}
{{- end -}}
{{- $_ := set $t $k $v -}}
{{- end -}}
# xds's targets file (xds/README.md), written by the keygate chart.
{{ toYaml $t }}
{{- end -}}
