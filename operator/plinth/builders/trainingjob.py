"""The children of a TrainingJob: a headless Service, the metrics-token Secret and, per
attempt, an Indexed batch/v1 Job whose pods are wired for `torchrun`.

For a TrainingJob `N` in namespace `NS`, attempt `A` (the gang restart number, from 0):

- Service `N`, headless and publishing not-ready addresses, so that every worker pod has
  the DNS name `<hostname>.N.NS.svc` as soon as it exists (rendezvous happens before
  readiness).
- Secret `N-metrics-token`: the per-job bearer token the workers report metrics with. The
  kube layer generates the token once and passes it in; this builder never makes one.
- Job `N-rA`, completionMode Indexed. Why a Job rather than bare pods: an Indexed Job gives
  each pod the stable hostname `N-rA-<index>` (the rendezvous address of index 0 is known
  before any pod exists) and its completion index as the node rank; `podFailurePolicy`
  tells disruption and permanent exit codes apart from crashes; `suspend` creates or
  removes all pods at once (how Plinth releases a gang that cannot be placed); and Kueue
  admits Jobs natively. `backoffLimit` is 0 because Plinth restarts the whole gang itself
  by creating attempt A+1, and deadlines and TTL are enforced by Plinth across attempts,
  so the Job carries neither.

The workers' environment is the contract `plinth_client.environment` reads: the `PET_*`
variables torchrun takes its defaults from, `MASTER_ADDR`/`MASTER_PORT`/`WORLD_SIZE` (and
`RANK`, `LOCAL_RANK` with one process per node) for programs started without torchrun, and
Plinth's own `PLINTH_*` variables.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plinth.api.v1alpha1 import TRAINING_JOB, TrainingJobSpec, parse_spec
from plinth.builders.common import (
    Manifest,
    Owner,
    child_metadata,
    container_resources,
    field_env,
    literal_env,
    managed_labels,
    merged_env,
    pod_spec_settings,
    pod_template_metadata,
    secret_env,
    template_volume_mounts,
    without_empty,
)

LABEL_JOB_NAME = "plinth.dev/job-name"
LABEL_ATTEMPT = "plinth.dev/attempt"
LABEL_ROLE = "plinth.dev/role"
ROLE_WORKER = "worker"
#: The label that submits a Job to a Kueue LocalQueue.
LABEL_KUEUE_QUEUE_NAME = "kueue.x-k8s.io/queue-name"
#: The annotation the Job controller sets on each pod of an Indexed Job: its index.
ANNOTATION_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

WORKER_CONTAINER = "worker"
RENDEZVOUS_PORT = 29500
RENDEZVOUS_PORT_NAME = "rendezvous"
#: Port of torchrun's c10d rendezvous store (elastic jobs), hosted by the index-0 pod.
C10D_PORT = 29400
C10D_PORT_NAME = "c10d"
#: Time a worker has after SIGTERM (preemption, suspension) to write a last checkpoint.
TERMINATION_GRACE_SECONDS = 60
METRICS_TOKEN_KEY = "token"
#: Condition the API server puts on a pod it is about to delete for preemption, eviction,
#: node loss or taints: such a failure is not the program's fault.
DISRUPTION_CONDITION = "DisruptionTarget"

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
#: What `plinth render` shows as the Secret's token: render never makes or shows a real one.
PLACEHOLDER_TOKEN = "<generated-at-apply>"
#: What `plinth render` shows in place of the operator's metrics URL (known only in-cluster).
PLACEHOLDER_METRICS_BASE_URL = "<plinth-metrics-url>"


@dataclass(frozen=True)
class TrainingJobContext:
    """Everything besides the spec that the children depend on, decided by the caller."""

    name: str
    namespace: str
    uid: str
    #: The gang restart number, from 0; names the Job of this attempt.
    attempt: int
    #: Whether the Job is created suspended (gang release, Kueue, spec.suspend).
    suspend: bool
    #: Where the operator serves the metrics endpoint; None: no metrics reporting.
    metrics_base_url: str | None
    #: The per-job metrics token, generated once by the kube layer; kept out of repr().
    token: str = field(repr=False)

    @property
    def owner(self) -> Owner:
        return Owner(TRAINING_JOB.kind, self.name, self.namespace, self.uid)

    @property
    def master_address(self) -> str:
        """DNS name of this attempt's index-0 worker."""
        return master_address(self.name, self.namespace, self.attempt)


@dataclass(frozen=True)
class TrainingJobChildren:
    """The desired children of one attempt of a TrainingJob."""

    service: Manifest
    secret: Manifest
    job: Manifest

    def manifests(self) -> list[Manifest]:
        """All children, in the order they are applied: Service, Secret, Job."""
        return [self.service, self.secret, self.job]


# --------------------------------------------------------------------------------------
# Names, labels and sizes (also used by status/ and kube/)
# --------------------------------------------------------------------------------------


def job_name(name: str, attempt: int) -> str:
    """Name of the batch/v1 Job of one attempt."""
    return f"{name}-r{attempt}"


def metrics_secret_name(name: str) -> str:
    """Name of the Secret holding the job's metrics token."""
    return f"{name}-metrics-token"


def master_address(name: str, namespace: str, attempt: int) -> str:
    """DNS name of the index-0 worker of an attempt: its hostname under the Service."""
    return f"{job_name(name, attempt)}-0.{name}.{namespace}.svc"


def metrics_url(base_url: str, namespace: str, name: str) -> str:
    """The URL a job's workers report metrics to."""
    return f"{base_url.rstrip('/')}/v1/namespaces/{namespace}/trainingjobs/{name}/metrics"


def trainingjob_labels(name: str) -> dict[str, str]:
    """Labels of every child of the TrainingJob `name`."""
    return managed_labels(TRAINING_JOB.kind) | {LABEL_JOB_NAME: name}


def worker_selector(name: str) -> dict[str, str]:
    """Labels selecting the worker pods of every attempt (the Service's selector)."""
    return {LABEL_JOB_NAME: name, LABEL_ROLE: ROLE_WORKER}


def worker_labels(name: str, attempt: int) -> dict[str, str]:
    """Labels of the worker pods of one attempt."""
    return trainingjob_labels(name) | worker_selector(name) | {LABEL_ATTEMPT: str(attempt)}


def worker_count(spec: TrainingJobSpec) -> int:
    """Worker pods per attempt: the node count, or an elastic job's maximum."""
    return spec.max_nodes


def gpus_per_worker(spec: TrainingJobSpec) -> int:
    """GPUs (nvidia.com/gpu) each worker pod requests."""
    return spec.resources.gpus


def total_gpus(spec: TrainingJobSpec, nodes: int | None = None) -> int:
    """GPUs of the whole gang: `nodes` (default: every worker of an attempt) x GPUs each."""
    return (worker_count(spec) if nodes is None else nodes) * gpus_per_worker(spec)


# --------------------------------------------------------------------------------------
# The children
# --------------------------------------------------------------------------------------


def build_trainingjob_children(
    spec: TrainingJobSpec, context: TrainingJobContext
) -> TrainingJobChildren:
    """The Service, Secret and Job of attempt `context.attempt` of a TrainingJob."""
    return TrainingJobChildren(
        service=build_service(spec, context),
        secret=build_secret(context),
        job=build_job(spec, context),
    )


def _ports(spec: TrainingJobSpec) -> list[tuple[str, int]]:
    """Named ports of a worker: rendezvous, and c10d for an elastic job."""
    if spec.elastic:
        return [(RENDEZVOUS_PORT_NAME, RENDEZVOUS_PORT), (C10D_PORT_NAME, C10D_PORT)]
    return [(RENDEZVOUS_PORT_NAME, RENDEZVOUS_PORT)]


def build_service(spec: TrainingJobSpec, context: TrainingJobContext) -> Manifest:
    """The headless Service giving every worker a DNS name before it is ready."""
    ports = [
        {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
        for name, port in _ports(spec)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(context.owner, context.name, trainingjob_labels(context.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": worker_selector(context.name),
            "ports": ports,
        },
    }


def build_secret(context: TrainingJobContext) -> Manifest:
    """The Secret holding the metrics token (base64 in `data`, as the API stores it)."""
    token = base64.b64encode(context.token.encode()).decode()
    name = metrics_secret_name(context.name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": child_metadata(context.owner, name, trainingjob_labels(context.name)),
        "type": "Opaque",
        "data": {METRICS_TOKEN_KEY: token},
    }


def build_job(spec: TrainingJobSpec, context: TrainingJobContext) -> Manifest:
    """The Indexed Job running one worker pod per node for attempt `context.attempt`."""
    labels = trainingjob_labels(context.name) | {LABEL_ATTEMPT: str(context.attempt)}
    if spec.queue_name:
        labels[LABEL_KUEUE_QUEUE_NAME] = spec.queue_name
    name = job_name(context.name, context.attempt)
    job_spec = {
        "completionMode": "Indexed",
        "completions": worker_count(spec),
        "parallelism": worker_count(spec),
        "backoffLimit": 0,
        "podFailurePolicy": _pod_failure_policy(spec),
        "successPolicy": _success_policy(spec),
        "suspend": context.suspend,
        "template": _pod_template(spec, context),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(context.owner, name, labels),
        "spec": without_empty(job_spec),
    }


def _pod_failure_policy(spec: TrainingJobSpec) -> Manifest:
    """Fail the Job at once, with a reason status/ can read, on disruption (not the
    program's fault) and on a permanent exit code (no retry will help)."""
    disrupted = {"type": DISRUPTION_CONDITION, "status": "True"}
    rules: list[Manifest] = [{"action": "FailJob", "onPodConditions": [disrupted]}]
    codes = sorted(spec.restart_policy.permanent_exit_codes)  # the API wants them ordered
    if codes:
        exit_codes = {"containerName": WORKER_CONTAINER, "operator": "In", "values": codes}
        rules.append({"action": "FailJob", "onExitCodes": exit_codes})
    return {"rules": rules}


def _success_policy(spec: TrainingJobSpec) -> Manifest | None:
    """Elastic jobs succeed when index 0 (the rendezvous host, always a member) succeeds,
    so workers that were never placed do not keep the Job running; None otherwise."""
    return {"rules": [{"succeededIndexes": "0"}]} if spec.elastic else None


#: Containers get 64 MiB of /dev/shm by default, which DataLoader workers and NCCL outgrow:
#: mount a memory-backed volume there (it counts against the worker's memory limit).
SHARED_MEMORY_PATH = "/dev/shm"
SHARED_MEMORY_VOLUME: Manifest = {"name": "plinth-dshm", "emptyDir": {"medium": "Memory"}}
SHARED_MEMORY_MOUNT: Manifest = {"name": "plinth-dshm", "mountPath": SHARED_MEMORY_PATH}


def _needs_shared_memory(spec: TrainingJobSpec) -> bool:
    """Unless the user mounts something at /dev/shm themselves."""
    mounts = spec.pod_template.volume_mounts if spec.pod_template else ()
    return all(mount.mount_path.rstrip("/") != SHARED_MEMORY_PATH for mount in mounts)


def _pod_template(spec: TrainingJobSpec, context: TrainingJobContext) -> Manifest:
    labels = worker_labels(context.name, context.attempt)
    pod_spec = {
        "subdomain": context.name,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        # Service links would put one variable per Service of the namespace into the
        # container (a Service named `master` would set MASTER_PORT): leave them out.
        "enableServiceLinks": False,
        "priorityClassName": spec.priority_class_name,
        **pod_spec_settings(spec.resources, spec.pod_template),
        "containers": [_worker_container(spec, context)],
    }
    if _needs_shared_memory(spec):
        pod_spec["volumes"] = [*pod_spec.get("volumes", []), SHARED_MEMORY_VOLUME]
    return {
        "metadata": pod_template_metadata(spec.pod_template, labels),
        "spec": without_empty(pod_spec),
    }


def _worker_container(spec: TrainingJobSpec, context: TrainingJobContext) -> Manifest:
    ports = [
        {"name": name, "containerPort": port, "protocol": "TCP"} for name, port in _ports(spec)
    ]
    container = {
        "name": WORKER_CONTAINER,
        "image": spec.image,
        "command": list(spec.command) if spec.command else None,
        "args": list(spec.args) if spec.args else None,
        "env": merged_env(spec.env, contract_env(spec, context)),
        "resources": container_resources(spec.resources),
        "ports": ports,
        "volumeMounts": template_volume_mounts(spec.pod_template)
        + ([SHARED_MEMORY_MOUNT] if _needs_shared_memory(spec) else []),
    }
    return without_empty(container)


# --------------------------------------------------------------------------------------
# The environment contract (read by plinth_client.environment)
# --------------------------------------------------------------------------------------

_NODE_RANK_PATH = f"metadata.annotations['{ANNOTATION_COMPLETION_INDEX}']"


def contract_env(spec: TrainingJobSpec, context: TrainingJobContext) -> list[Manifest]:
    """Every variable Plinth sets in a worker, in a fixed order."""
    return (
        _torchrun_env(spec, context)
        + _elastic_env(spec, context)
        + _torch_distributed_env(spec, context)
        + _plinth_env(spec, context)
    )


def _node_range(spec: TrainingJobSpec) -> str:
    if spec.elastic:
        return f"{spec.elastic.min_nodes}:{spec.elastic.max_nodes}"
    return str(worker_count(spec))


def _torchrun_env(spec: TrainingJobSpec, context: TrainingJobContext) -> list[Manifest]:
    return [
        literal_env("PET_NNODES", _node_range(spec)),
        literal_env("PET_NPROC_PER_NODE", spec.effective_procs_per_node),
        field_env("PET_NODE_RANK", _NODE_RANK_PATH),
        literal_env("PET_MASTER_ADDR", context.master_address),
        literal_env("PET_MASTER_PORT", RENDEZVOUS_PORT),
    ]


def _elastic_env(spec: TrainingJobSpec, context: TrainingJobContext) -> list[Manifest]:
    if spec.elastic is None:
        return []
    master = context.master_address
    return [
        literal_env("PET_RDZV_BACKEND", "c10d"),
        literal_env("PET_RDZV_ENDPOINT", f"{master}:{C10D_PORT}"),
        literal_env("PET_RDZV_ID", context.uid),
        literal_env("PET_MAX_RESTARTS", spec.elastic.max_restarts),
    ]


def _torch_distributed_env(spec: TrainingJobSpec, context: TrainingJobContext) -> list[Manifest]:
    """For programs started without torchrun (which sets these per process itself).

    RANK and LOCAL_RANK exist only with one process per node, where the node rank is the
    global rank; WORLD_SIZE counts every worker of an attempt (an elastic job's maximum).
    """
    procs = spec.effective_procs_per_node
    variables = [
        literal_env("MASTER_ADDR", context.master_address),
        literal_env("MASTER_PORT", RENDEZVOUS_PORT),
        literal_env("WORLD_SIZE", worker_count(spec) * procs),
    ]
    if procs == 1:
        variables += [field_env("RANK", _NODE_RANK_PATH), literal_env("LOCAL_RANK", 0)]
    return variables


def _plinth_env(spec: TrainingJobSpec, context: TrainingJobContext) -> list[Manifest]:
    variables = [
        literal_env("PLINTH_JOB_NAME", context.name),
        literal_env("PLINTH_NAMESPACE", context.namespace),
    ]
    if spec.checkpoint:
        variables.append(literal_env("PLINTH_CHECKPOINT_URI", spec.checkpoint.uri))
    variables.append(literal_env("PLINTH_RESTART_COUNT", context.attempt))
    if context.metrics_base_url is not None:
        url = metrics_url(context.metrics_base_url, context.namespace, context.name)
        secret = metrics_secret_name(context.name)
        variables += [
            literal_env("PLINTH_METRICS_URL", url),
            secret_env("PLINTH_METRICS_TOKEN", secret, METRICS_TOKEN_KEY),
        ]
    return variables


# --------------------------------------------------------------------------------------
# plinth render
# --------------------------------------------------------------------------------------


def render_trainingjob(resource: Mapping[str, Any]) -> list[Manifest]:
    """The children `plinth render` prints for a TrainingJob document: attempt 0, with
    placeholders for what exists only in a cluster (uid, metrics URL). The Secret shows
    the placeholder token: render never generates or prints a real one."""
    metadata = resource.get("metadata") or {}
    spec = parse_spec("TrainingJob", resource.get("spec") or {})
    context = TrainingJobContext(
        name=str(metadata.get("name", "<unnamed>")),
        namespace=str(metadata.get("namespace", "default")),
        uid=str(metadata.get("uid", PLACEHOLDER_UID)),
        attempt=0,
        suspend=spec.suspend,
        metrics_base_url=PLACEHOLDER_METRICS_BASE_URL,
        token=PLACEHOLDER_TOKEN,
    )
    return build_trainingjob_children(spec, context).manifests()
