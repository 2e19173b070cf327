{{/*
Names and labels.
*/}}
{{- define "rivet-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rivet-gateway.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rivet-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rivet-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rivet-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rivet-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rivet-gateway.secretName" -}}
{{- default (include "rivet-gateway.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "rivet-gateway.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "rivet-gateway.engineImage" -}}
{{- $i := .Values.sidecar.engine.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository $i.tag -}}
{{- end -}}
{{- end -}}

{{/*
rivet-gateway.checkMode fails on a mode the chart does not know, and on
settings that contradict the mode.
*/}}
{{- define "rivet-gateway.checkMode" -}}
{{- if not (has .Values.mode (list "standalone" "sidecar")) -}}
{{- fail (printf "mode: %q: want standalone or sidecar" .Values.mode) -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") .Values.standalone.autoscaling.enabled -}}
{{- fail "standalone.autoscaling.enabled: the sidecar pattern runs one pod (one engine on a ReadWriteOnce volume); use mode: standalone in front of a shared engine to scale" -}}
{{- end -}}
{{- end -}}

{{/*
rivet-gateway.config is the gateway configuration as YAML: .Values.config
with the mode's defaults under it (see values.yaml).
*/}}
{{- define "rivet-gateway.config" -}}
{{- include "rivet-gateway.checkMode" . -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $up := deepCopy (index $cfg "upstream" | default dict) -}}
{{- $admin := deepCopy (index $cfg "admin" | default dict) -}}
{{- $hasToken := or (hasKey $up "token") (hasKey $up "token_file") -}}
{{- if eq .Values.mode "sidecar" -}}
{{- $engine := printf "http://127.0.0.1:%d" (int .Values.sidecar.engine.guardPort) -}}
{{- if and (hasKey $up "url") (ne (toString (index $up "url")) $engine) -}}
{{- fail (printf "config.upstream.url: %q, but in sidecar mode the gateway's upstream is the engine container, %s; leave it unset" (index $up "url") $engine) -}}
{{- end -}}
{{- $_ := set $up "url" $engine -}}
{{- if not $hasToken -}}
{{- $_ := set $up "token" "${RIVET_TOKEN}" -}}
{{- end -}}
{{- else -}}
{{- if not (hasKey $up "url") -}}
{{- $_ := set $up "url" "https://api.rivet.dev" -}}
{{- end -}}
{{- if not $hasToken -}}
{{- $_ := set $up "token_file" (printf "%s/%s" (trimSuffix "/" .Values.secrets.mountPath) .Values.secrets.tokenKey) -}}
{{- end -}}
{{- if not (hasKey $admin "readiness_upstream") -}}
{{- $_ := set $admin "readiness_upstream" false -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "upstream" $up -}}
{{- $_ := set $cfg "admin" $admin -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
rivet-gateway.restartChecksum hashes the sections the gateway only applies
on a restart (gateway/reload.go restartOnly: server, admin, log.level,
log.format, metrics, tracing). The pod template carries it, so an upgrade
changing one of them rolls the pods; every other change is reloaded in
place.
*/}}
{{- define "rivet-gateway.restartChecksum" -}}
{{- $cfg := include "rivet-gateway.config" . | fromYaml -}}
{{- $log := index $cfg "log" | default dict -}}
{{- $restart := dict "server" (index $cfg "server") "admin" (index $cfg "admin") "metrics" (index $cfg "metrics") "tracing" (index $cfg "tracing") "log.level" (index $log "level") "log.format" (index $log "format") -}}
{{- toJson $restart | sha256sum -}}
{{- end -}}

{{/*
rivet-gateway.seconds is a duration of the config (dict "key" PATH "d"
VALUE "default" DEFAULT) in whole seconds. The chart derives pod timings
from it, so it must be written in whole hours, minutes and seconds.
*/}}
{{- define "rivet-gateway.seconds" -}}
{{- $d := toString (.d | default .default) -}}
{{- if or (eq $d "") (not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $d)) -}}
{{- fail (printf "config.%s: %q: write it in whole hours, minutes and seconds (30s, 1m30s): the chart derives the pod's timings from it" .key $d) -}}
{{- end -}}
{{- $h := regexFind "[0-9]+h" $d | trimSuffix "h" | default "0" | atoi -}}
{{- $m := regexFind "[0-9]+m" $d | trimSuffix "m" | default "0" | atoi -}}
{{- $s := regexFind "[0-9]+s" $d | trimSuffix "s" | default "0" | atoi -}}
{{- add (mul $h 3600) (mul $m 60) $s -}}
{{- end -}}

{{/*
rivet-gateway.port is the port of a listen address of the config (dict
"key" PATH "listen" VALUE).
*/}}
{{- define "rivet-gateway.port" -}}
{{- $l := toString .listen -}}
{{- if not (regexMatch "^[^$]*:[0-9]+$" $l) -}}
{{- fail (printf "config.%s: %q: write host:port or :port (no ${VAR}): the chart derives the container port from it" .key $l) -}}
{{- end -}}
{{- regexFind "[0-9]+$" $l -}}
{{- end -}}

{{/*
rivet-gateway.timings: the numbers the pod spec derives from the config,
as YAML: publicPort, adminPort, metricsPath, readinessTimeout, gatewayDone
(drain_delay + shutdown_timeout), enginePreStop and grace
(terminationGracePeriodSeconds).
*/}}
{{- define "rivet-gateway.timings" -}}
{{- $cfg := include "rivet-gateway.config" . | fromYaml -}}
{{- $server := index $cfg "server" | default dict -}}
{{- $admin := index $cfg "admin" | default dict -}}
{{- $metrics := index $cfg "metrics" | default dict -}}
{{- $publicListen := ternary (index $server "listen") ":8080" (hasKey $server "listen") -}}
{{- $adminListen := ternary (index $admin "listen") ":9090" (hasKey $admin "listen") -}}
{{- if eq (toString $adminListen) "" -}}
{{- fail "config.admin.listen: empty, but the probes and metrics need the admin listener" -}}
{{- end -}}
{{- $drain := include "rivet-gateway.seconds" (dict "key" "server.drain_delay" "d" (index $server "drain_delay") "default" "0s") | atoi -}}
{{- $shutdown := include "rivet-gateway.seconds" (dict "key" "server.shutdown_timeout" "d" (index $server "shutdown_timeout") "default" "30s") | atoi -}}
{{- $ready := include "rivet-gateway.seconds" (dict "key" "admin.readiness_timeout" "d" (index $admin "readiness_timeout") "default" "2s") | atoi -}}
{{- $done := add $drain $shutdown -}}
{{- $preStop := add $done 5 -}}
publicPort: {{ include "rivet-gateway.port" (dict "key" "server.listen" "listen" $publicListen) }}
adminPort: {{ include "rivet-gateway.port" (dict "key" "admin.listen" "listen" $adminListen) }}
metricsEnabled: {{ if hasKey $metrics "enabled" }}{{ index $metrics "enabled" }}{{ else }}true{{ end }}
metricsPath: {{ index $metrics "path" | default "/metrics" | quote }}
readinessTimeout: {{ add $ready 1 }}
enginePreStop: {{ $preStop }}
{{- if eq .Values.mode "sidecar" }}
grace: {{ add $preStop .Values.sidecar.engine.shutdownSeconds }}
{{- else }}
grace: {{ add $done 10 }}
{{- end }}
{{- end -}}
