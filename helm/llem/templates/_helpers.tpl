{{/* Names, labels and small derived values shared by every template. */}}

{{- define "llem.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llem.fullname" -}}
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

{{- define "llem.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llem.labels" -}}
helm.sh/chart: {{ include "llem.chart" . }}
app.kubernetes.io/name: {{ include "llem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llenergymeasure
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "llem.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "llem.nats.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nats
{{- end -}}

{{- define "llem.controller.fullname" -}}
{{- printf "%s-controller" (include "llem.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llem.nats.fullname" -}}
{{- printf "%s-nats" (include "llem.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llem.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llem.controller.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llem.leaseName" -}}
{{- default (printf "%s-leader" (include "llem.fullname" .)) .Values.controller.leaderElection.leaseName -}}
{{- end -}}

{{- define "llem.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "llem.agentImage" -}}
{{- printf "%s:%s" .Values.agentImage.repository (default .Chart.AppVersion .Values.agentImage.tag) -}}
{{- end -}}

{{/* The NATS URL the controller (and, through it, every agent pod) connects to. */}}
{{- define "llem.natsUrl" -}}
{{- if .Values.nats.deploy -}}
{{- printf "nats://%s.%s.svc:4222" (include "llem.nats.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- required "nats.external.url is required when nats.deploy is false" .Values.nats.external.url -}}
{{- end -}}
{{- end -}}

{{- define "llem.nats.authSecretName" -}}
{{- default (printf "%s-auth" (include "llem.nats.fullname" .)) .Values.nats.auth.existingSecret -}}
{{- end -}}

{{/* Fails the render with a message naming the values to fix. Included by the controller Deployment. */}}
{{- define "llem.validateValues" -}}
{{- $ext := .Values.nats.external -}}
{{- if not .Values.nats.deploy -}}
{{- $methods := 0 -}}
{{- if or $ext.userKey $ext.passwordKey }}{{ $methods = add1 $methods }}{{ end -}}
{{- if $ext.tokenKey }}{{ $methods = add1 $methods }}{{ end -}}
{{- if $ext.credsKey }}{{ $methods = add1 $methods }}{{ end -}}
{{- if gt $methods 1 -}}
{{- fail "nats.external: choose one of userKey/passwordKey, tokenKey, credsKey (the NATS client takes one authentication method); set the others to \"\"" -}}
{{- end -}}
{{- if and $ext.passwordKey (not $ext.userKey) -}}
{{- fail "nats.external.passwordKey needs nats.external.userKey" -}}
{{- end -}}
{{- if and $ext.issuerSecretKey (gt $methods 0) -}}
{{- fail "nats.external.issuerSecretKey: the controller signs its own credentials with the issuer; set userKey, passwordKey, tokenKey and credsKey to \"\"" -}}
{{- end -}}
{{- if and (or (gt $methods 0) $ext.issuerSecretKey) (not $ext.existingSecret) -}}
{{- fail "nats.external.existingSecret is required when userKey, passwordKey, tokenKey, credsKey or issuerSecretKey is set" -}}
{{- end -}}
{{- if contains "@" $ext.url -}}
{{- fail "nats.external.url must not embed credentials (user:password@ or token@): put them in the Secret named by nats.external.existingSecret and set userKey/passwordKey, tokenKey or credsKey" -}}
{{- end -}}
{{- end -}}
{{- end -}}
