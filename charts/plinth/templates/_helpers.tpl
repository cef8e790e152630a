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

{{/* The operator image: by digest when one is given, else by tag (default appVersion). */}}
{{- define "plinth.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
Rules for what Plinth reads and writes inside a watched namespace: exactly the API calls of
operator/plinth (kube.client, the Kopf watches of runtime.wiring) and nothing more;
tests/integration/test_chart_rbac.py lists what the ServiceAccount may do and fails on any
difference. Writes are server-side applies: `patch`, plus `create` for the apply that
creates the object. No rule reads a Secret: the intake key is mounted into the pod by the
kubelet, and each job's token Secret is written, never read back.
*/}}
{{- define "plinth.namespacedRules" -}}
# Kopf watches the three kinds (list, watch); the metrics intake reads a TrainingJob it has
# not indexed yet (get); an AutoMLSweep applies its trials (patch) and removes pruned ones,
# and a finished TrainingJob is deleted after its ttlSecondsAfterFinished (delete).
- apiGroups: ["plinth.dev"]
  resources: ["trainingjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["plinth.dev"]
  resources: ["automlsweeps", "modeldeployments"]
  verbs: ["list", "watch"]
- apiGroups: ["plinth.dev"]
  resources: ["trainingjobs/status", "automlsweeps/status", "modeldeployments/status"]
  verbs: ["patch"]
# Children Plinth watches and manages: a TrainingJob's Jobs (one per attempt), a
# ModelDeployment's Deployments (one per model revision) and HPA.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Pods are watched (their owners' status), never written: Jobs and Deployments make them.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Applied children that are only ever written: a TrainingJob's headless Service and its
# metrics-token Secret (write-only: the token is derived again, never read back), a
# ModelDeployment's Service and PodDisruptionBudget. Owner references delete them.
- apiGroups: [""]
  resources: ["services", "secrets"]
  verbs: ["create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "patch"]
# ModelDeployments with autoscaling.backend keda: the ScaledObject is applied and removed
# (what KEDA sees is read through the HPA KEDA makes).
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["create", "patch", "delete"]
# TrainingJob gangs: one PodGroup per attempt where the cluster serves Kubernetes' gang
# scheduling (scheduling.k8s.io/v1beta1), applied and removed with its attempt; before a
# gang is created, the namespace's quotas and the claims its workers mount are read (list).
- apiGroups: ["scheduling.k8s.io"]
  resources: ["podgroups"]
  verbs: ["create", "patch", "delete"]
- apiGroups: [""]
  resources: ["resourcequotas", "persistentvolumeclaims"]
  verbs: ["list"]
# Events Plinth and Kopf post on the resources they handle.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Peering in a watched namespace (Kopf's KopfPeering), when there is no cluster-wide one. */}}
{{- define "plinth.namespacedPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end -}}

{{/* Cluster-scoped reads Plinth and Kopf need wherever they watch. */}}
{{- define "plinth.clusterRules" -}}
# Nodes are read to explain a gang that cannot be placed (get, list), and the pods that
# hold node resources are counted (list) — in every namespace, since other teams' pods
# hold GPUs too.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Gangs admitted but not yet placed hold the GPUs they will take: every TrainingJob's
# attempt Jobs are counted (list), in every namespace.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list"]
# Kopf notices CRDs installed or removed while it runs (KEDA's, for instance).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
# Kopf, watching a list of namespaces, notices them being created and deleted.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- else if .Values.peering.enabled }}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end -}}
