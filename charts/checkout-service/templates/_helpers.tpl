{{/*
The six services: package run with `python -m`, default HTTP port, default PostgreSQL schema, whether it
talks to Kafka (the NetworkPolicy's egress), and the services it calls and that call it over HTTP.
*/}}
{{- define "checkout-service.catalog" -}}
gateway-bff:
  package: checkout_gateway
  port: 8100
  schema: gateway
  kafka: true
  calls: ["checkout-orchestrator", "cart"]
  calledBy: []
checkout-orchestrator:
  package: checkout_orchestrator
  port: 8101
  schema: orchestrator
  kafka: true
  calls: []
  calledBy: ["gateway-bff"]
inventory:
  package: checkout_inventory
  port: 8102
  schema: inventory
  kafka: true
  calls: []
  calledBy: []
payment:
  package: checkout_payment
  port: 8103
  schema: payment
  kafka: true
  calls: []
  calledBy: []
order:
  package: checkout_order
  port: 8104
  schema: orders
  kafka: true
  calls: []
  calledBy: []
cart:
  package: checkout_cart
  port: 8106
  schema: cart
  kafka: false
  calls: []
  calledBy: ["gateway-bff"]
{{- end }}

{{/*
The catalog entry of .Values.service.name (fails on an unknown name, even without the schema).
*/}}
{{- define "checkout-service.entry" -}}
{{- $catalog := include "checkout-service.catalog" . | fromYaml -}}
{{- $entry := get $catalog .Values.service.name -}}
{{- if not $entry -}}
{{- fail (printf "service.name %q is not one of: %s" .Values.service.name (keys $catalog | sortAlpha | join ", ")) -}}
{{- end -}}
{{- toYaml $entry -}}
{{- end }}

{{/*
Python package of the service.
*/}}
{{- define "checkout-service.package" -}}
{{- (include "checkout-service.entry" . | fromYaml).package -}}
{{- end }}

{{/*
HTTP port: service.port when set, else the service's own.
*/}}
{{- define "checkout-service.port" -}}
{{- if .Values.service.port -}}
{{- .Values.service.port | int -}}
{{- else -}}
{{- (include "checkout-service.entry" . | fromYaml).port | int -}}
{{- end -}}
{{- end }}

{{/*
PostgreSQL schema: database.schema when set, else the service's own.
*/}}
{{- define "checkout-service.schema" -}}
{{- default (include "checkout-service.entry" . | fromYaml).schema .Values.database.schema -}}
{{- end }}

{{/*
Expand the name of the chart (defaults to the service name).
*/}}
{{- define "checkout-service.name" -}}
{{- default .Values.service.name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains the name it will be used as a full name.
*/}}
{{- define "checkout-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "checkout-service.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "checkout-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
Selector labels (immutable once a Deployment exists).
*/}}
{{- define "checkout-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "checkout-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "checkout-service.labels" -}}
helm.sh/chart: {{ include "checkout-service.chart" . }}
{{ include "checkout-service.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: {{ .Values.service.name }}
app.kubernetes.io/part-of: checkout-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Name of the ServiceAccount.
*/}}
{{- define "checkout-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "checkout-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/*
The container image.
*/}}
{{- define "checkout-service.image" -}}
{{- $repository := default (printf "checkout-platform/%s" .Values.service.name) .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end }}

{{/*
Name of the Secret holding DATABASE__URL.
*/}}
{{- define "checkout-service.databaseSecretName" -}}
{{- default (printf "%s-database" (include "checkout-service.fullname" .)) .Values.database.secretRef.name -}}
{{- end }}

{{/*
Container security context shared by the service and the migrate initContainer.
*/}}
{{- define "checkout-service.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Environment of both containers: the ConfigMap, the database URL from its Secret, the extras.
*/}}
{{- define "checkout-service.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "checkout-service.fullname" . }}
env:
  - name: DATABASE__URL
    valueFrom:
      secretKeyRef:
        name: {{ include "checkout-service.databaseSecretName" . }}
        key: {{ .Values.database.secretRef.key }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
