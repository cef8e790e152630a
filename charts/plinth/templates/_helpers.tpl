{{/* Names and labels shared by every template of the Plinth chart. */}}
{{- define "plinth.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "plinth.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plinth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plinth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "plinth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "plinth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "plinth.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules for the objects Plinth reads and manages inside a namespace. */}}
{{- define "plinth.namespacedRules" -}}
- apiGroups: ["plinth.dev"]
  resources: ["trainingjobs", "automlsweeps", "modeldeployments"]
  verbs: ["get", "list", "watch", "patch", "update"]
# An AutoMLSweep creates its trials as TrainingJobs; a finished TrainingJob is deleted once
# its ttlSecondsAfterFinished has passed.
- apiGroups: ["plinth.dev"]
  resources: ["trainingjobs"]
  verbs: ["create", "delete"]
- apiGroups: ["plinth.dev"]
  resources: ["trainingjobs/status", "automlsweeps/status", "modeldeployments/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["pods", "services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Write-only: Plinth writes each job's metrics-token Secret and never reads a Secret back
# (tokens are derived from the intake key mounted into the operator pod).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# ModelDeployments with autoscaling.backend keda: Plinth applies and removes the ScaledObject
# (it reads what KEDA sees through the HPA KEDA makes, so no list or watch here).
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* Cluster-scoped reads Plinth and Kopf need wherever they watch. */}}
{{- define "plinth.clusterRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
# Read-only, to count the GPUs other pods hold when a gang cannot be placed.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end -}}
