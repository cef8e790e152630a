"""Plinth's shared vocabulary: every label, annotation, resource name and child name.

Builders write these names, the status layer and the kube layer read them back, the
emulated cluster and the tests look for them: one definition each, here. Also the one
object reference type (`ObjectRef`) and the owner's metadata the planners see (`OwnerMeta`).

Owner labels are per kind (`plinth.dev/trainingjob`, `plinth.dev/automlsweep`,
`plinth.dev/modeldeployment`), so a trial TrainingJob of a sweep, which owns Jobs of its own,
is never confused with its sweep. Children made before these labels existed carry
`plinth.dev/job-name`; the operator keeps reading that label (`LEGACY_OWNER_LABELS`), so a
running cluster upgrades without orphaning anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: A Kubernetes object (or a part of one) as plain data, ready for server-side apply.
Manifest = dict[str, Any]

GROUP = "plinth.dev"
#: The field manager of every write Plinth makes (server-side apply, patches).
FIELD_MANAGER = "plinth"

# Labels every child carries (Kubernetes' recommended labels).
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_APP_NAME = "app.kubernetes.io/name"
MANAGER = "plinth"

# Owner labels: which custom resource a child belongs to.
LABEL_TRAININGJOB = "plinth.dev/trainingjob"
LABEL_AUTOMLSWEEP = "plinth.dev/automlsweep"
LABEL_MODELDEPLOYMENT = "plinth.dev/modeldeployment"
#: The TrainingJob owner label of children made by Plinth 0.1 (still read, never written).
LEGACY_LABEL_JOB_NAME = "plinth.dev/job-name"
OWNER_LABELS = {
    "TrainingJob": LABEL_TRAININGJOB,
    "AutoMLSweep": LABEL_AUTOMLSWEEP,
    "ModelDeployment": LABEL_MODELDEPLOYMENT,
}
LEGACY_OWNER_LABELS = {"TrainingJob": (LEGACY_LABEL_JOB_NAME,)}

# AutoMLSweep trials: TrainingJobs named <sweep>-<number>, labelled and annotated so that a
# trial is recognised (and its parameters read back) from the TrainingJob alone.
LABEL_TRIAL = "plinth.dev/trial"
ANNOTATION_TRIAL_PARAMETERS = "plinth.dev/trial-parameters"
ANNOTATION_TRIAL_SAMPLER_STATE = "plinth.dev/trial-sampler-state"
#: Why the sweep stopped the trial (pruned, or the sweep ended); its TrainingJob is then
#: suspended, and its status names this reason instead of a bare spec.suspend.
ANNOTATION_TRIAL_STOPPED = "plinth.dev/trial-stopped"

# TrainingJob children.
LABEL_ATTEMPT = "plinth.dev/attempt"
LABEL_ROLE = "plinth.dev/role"
ROLE_WORKER = "worker"
WORKER_CONTAINER = "worker"
METRICS_TOKEN_KEY = "token"
#: Counters that survive gang restarts, stamped on each attempt's Job when it is created.
ANNOTATION_CARRIED_FAILURES = "plinth.dev/carried-failures"
ANNOTATION_CARRIED_PREEMPTIONS = "plinth.dev/carried-preemptions"
ANNOTATION_CARRIED_GPU_SECONDS = "plinth.dev/carried-gpu-seconds"
ANNOTATION_FIRST_START = "plinth.dev/first-start"
ANNOTATION_GANG_RELEASED_AT = "plinth.dev/gang-released-at"
ANNOTATION_GANG_WINDOW_START = "plinth.dev/gang-window-start"
#: Deadline time spent started by earlier attempts (seconds), stamped at creation.
ANNOTATION_CARRIED_ACTIVE_SECONDS = "plinth.dev/carried-active-seconds"
#: Stamped on an attempt's Job the first time Plinth sees it happen, so that the fact
#: outlives the pods it was read from: when every worker first ran at once, when the
#: deadline clock started counting for this attempt, and how and when the attempt ended
#: (reason, message, time, GPU-seconds its workers held until then).
ANNOTATION_GANG_STARTED_AT = "plinth.dev/gang-started-at"
ANNOTATION_ACTIVE_SINCE = "plinth.dev/active-since"
ANNOTATION_ENDED_REASON = "plinth.dev/ended-reason"
ANNOTATION_ENDED_MESSAGE = "plinth.dev/ended-message"
ANNOTATION_ENDED_AT = "plinth.dev/ended-at"
ANNOTATION_ENDED_GPU_SECONDS = "plinth.dev/ended-gpu-seconds"
#: GPU-seconds of pods a suspension in place deleted (a gang released, a job held), and when.
ANNOTATION_BANKED_GPU_SECONDS = "plinth.dev/banked-gpu-seconds"
ANNOTATION_BANKED_AT = "plinth.dev/banked-at"

# ModelDeployment children.
#: The model revision (a short hash of the resolved model) a serving Deployment and its
#: pods run; the stable and the canary revision differ.
LABEL_MODEL_REVISION = "plinth.dev/model-revision"
TRITON_CONTAINER = "triton"
MODEL_LOADER_CONTAINER = "model-loader"
#: Triton's ports: HTTP/REST (KServe v2 protocol), gRPC and Prometheus metrics.
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002

# Names other systems define.
#: The extended resource NVIDIA's device plugin advertises, and the taint GPU nodes carry.
GPU_RESOURCE = "nvidia.com/gpu"
#: The node label NVIDIA GPU feature discovery sets to the GPU model.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
#: The label that submits a Job to a Kueue LocalQueue.
LABEL_KUEUE_QUEUE_NAME = "kueue.x-k8s.io/queue-name"
#: The annotation the Job controller sets on each pod of an Indexed Job: its index.
#: Kubernetes' gang scheduling API (Workload and PodGroup; beta in 1.37, feature gate
#: GenericWorkload): served only where the cluster enables it.
POD_GROUP_API_VERSION = "scheduling.k8s.io/v1beta1"
#: The label the Job controller puts on every pod of a Job: the Job's name.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
ANNOTATION_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
#: With backoffLimitPerIndex, the Job controller stamps each replacement pod with how many
#: pods of its index failed before it: counted against the limit, and ignored by the
#: podFailurePolicy (e.g. disruptions).
ANNOTATION_INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
ANNOTATION_INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
#: Condition the API server puts on a pod it is about to delete for preemption, eviction,
#: node loss or taints: such a failure is not the program's fault.
DISRUPTION_CONDITION = "DisruptionTarget"


def owner_label(kind: str) -> str:
    """The label naming the owning resource on every child of a `kind` resource."""
    return OWNER_LABELS[kind]


def attempt_job_name(trainingjob: str, attempt: int) -> str:
    """Name of the batch/v1 Job of one attempt of a TrainingJob."""
    return f"{trainingjob}-r{attempt}"


def trial_name(sweep: str, number: int) -> str:
    """Name of the TrainingJob of a sweep's trial."""
    return f"{sweep}-{number}"


def serving_deployment_name(modeldeployment: str, revision: str) -> str:
    """Name of the Deployment serving one model revision of a ModelDeployment."""
    return f"{modeldeployment}-{revision}"


def metrics_secret_name(trainingjob: str) -> str:
    """Name of the Secret holding a TrainingJob's metrics token."""
    return f"{trainingjob}-metrics-token"


def metrics_path(namespace: str, trainingjob: str) -> str:
    """Path of a TrainingJob's metrics intake endpoint on the operator."""
    return f"/v1/namespaces/{namespace}/trainingjobs/{trainingjob}/metrics"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (or a datetime), or None."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC to the second, as Kubernetes writes timestamps."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ObjectRef:
    """Which object: the one reference type of the operator (owners, children, keys)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name): the work queue's key."""
        return (self.kind, self.namespace, self.name)

    def owner_reference(self) -> Manifest:
        """The ownerReference a child of this object carries: it controls the child."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    @classmethod
    def of(cls, obj: Any) -> ObjectRef:
        """The reference of an object as the API server writes it (apiVersion, kind, metadata)."""
        metadata = obj["metadata"]
        return cls(
            api_version=str(obj["apiVersion"]),
            kind=str(obj["kind"]),
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata["name"]),
            uid=str(metadata.get("uid") or ""),
        )


@dataclass(frozen=True)
class OwnerMeta:
    """The custom resource's own metadata that planners read."""

    ref: ObjectRef
    generation: int | None
    created: datetime
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def namespace(self) -> str:
        return self.ref.namespace
