{{/*
Expand the name of the chart.
*/}}
{{- define "checkout-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains the name it will be used as a full name.
*/}}
{{- define "checkout-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "checkout-operator.name" . -}}
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
{{- define "checkout-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
Selector labels (immutable once a Deployment exists).
*/}}
{{- define "checkout-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "checkout-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "checkout-operator.labels" -}}
helm.sh/chart: {{ include "checkout-operator.chart" . }}
{{ include "checkout-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: checkout-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Name of the ServiceAccount.
*/}}
{{- define "checkout-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "checkout-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/*
The container image (no registry host unless image.repository names one).
*/}}
{{- define "checkout-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end }}

{{/*
"true" when the operator serves the whole cluster (watchNamespaces empty), else "".
*/}}
{{- define "checkout-operator.clusterWide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end }}

{{/*
Deployment strategy type: updateStrategy when set; else Recreate for one replica, RollingUpdate for more.
*/}}
{{- define "checkout-operator.strategyType" -}}
{{- if .Values.updateStrategy -}}
{{- .Values.updateStrategy -}}
{{- else if gt (int .Values.replicaCount) 1 -}}
RollingUpdate
{{- else -}}
Recreate
{{- end -}}
{{- end }}

{{/*
Kubernetes version the operator renders the checkout-service chart for: workloads.kubeVersion, else the cluster's.
*/}}
{{- define "checkout-operator.kubeVersion" -}}
{{- default (.Capabilities.KubeVersion.Version | trimPrefix "v") .Values.workloads.kubeVersion -}}
{{- end }}

{{/*
Rules for the namespaced resources the operator works with. Rendered into the ClusterRole when the operator
serves the whole cluster, and into a Role per watched namespace otherwise. No wildcards: every group,
resource and verb is named.
*/}}
{{- define "checkout-operator.namespacedRules" -}}
# Exactly what checkout-operator/src calls (charts/tests and the can-i matrix of
# checkout-operator/tests/integration/test_operator_rbac.py hold it to that). kopf patches, never updates.
# The CheckoutPlatform resources: watched, patched (finalizer, kopf's progress annotations), status patched.
- apiGroups: ["checkout.platform.io"]
  resources: ["checkoutplatforms"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["checkout.platform.io"]
  resources: ["checkoutplatforms/status"]
  verbs: ["patch"]
# Events on the CheckoutPlatforms: kopf posts core/v1 events (POST only).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Secrets: the admin credentials are read by name; each service's Secret (generated password, DATABASE__URL)
# is read by name and server-side applied. Never listed or watched (that would read every Secret of the
# namespace), never deleted (owner references take them away with the platform).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# What the checkout-service chart renders, server-side applied; listed by label once a pass and pruned.
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "list", "create", "patch", "delete"]
# Deployments are watched too: a rollout or a scale by hand wakes the platform's reconcile loop.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}

{{/*
Container security context: non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp.
*/}}
{{- define "checkout-operator.containerSecurityContext" -}}
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
