"""The children of a TrainingJob: a headless Service, the metrics-token Secret and, per
attempt, an Indexed batch/v1 Job whose pods are wired for `torchrun`.

For a TrainingJob `N` in namespace `NS`, attempt `A` (the gang restart number, from 0):

- Service `N`, headless and publishing not-ready addresses, so that every worker pod has
  the DNS name `<hostname>.N.NS.svc` as soon as it exists (rendezvous happens before
  readiness).
- Secret `N-metrics-token`: the per-job bearer token the workers report metrics with. The
  operator's intake issues the token (derived from a key only it holds) and passes it in;
  this builder never makes one.
- Job `N-rA`, completionMode Indexed. Why a Job rather than bare pods: an Indexed Job gives
  each pod the stable hostname `N-rA-<index>` (the rendezvous address of index 0 is known
  before any pod exists) and its completion index as the node rank; `podFailurePolicy`
  tells disruption and permanent exit codes apart from crashes; `suspend` creates or
  removes all pods at once (how Plinth releases a gang that cannot be placed); and Kueue
  admits Jobs natively. `backoffLimit` is 0 because Plinth restarts the whole gang itself
  by creating attempt A+1 (an elastic job's Job instead replaces a member that left, per
  index, up to elastic.maxRestarts), and deadlines and TTL are enforced by Plinth across
  attempts, so the Job carries neither. The counters that survive gang restarts, and what
  Plinth learns about the attempt (when its gang first ran, how it ended), ride on the Job
  as annotations, so the manifests here are exactly what the operator applies.

The workers' environment is the contract `plinth_client.environment` reads: the `PET_*`
variables torchrun takes its defaults from, `MASTER_ADDR`/`MASTER_PORT`/`WORLD_SIZE` (and
`RANK`, `LOCAL_RANK` with one process per node) for programs started without torchrun, and
Plinth's own `PLINTH_*` variables.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plinth.api.v1alpha1 import (
    TRAINING_JOB,
    TrainingJobSpec,
    TrainingJobStatus,
    parse_spec,
)
from plinth.api.wellknown import (
    ANNOTATION_ACTIVE_SINCE,
    ANNOTATION_BANKED_AT,
    ANNOTATION_BANKED_GPU_SECONDS,
    ANNOTATION_CARRIED_ACTIVE_SECONDS,
    ANNOTATION_CARRIED_FAILURES,
    ANNOTATION_CARRIED_GPU_SECONDS,
    ANNOTATION_CARRIED_PREEMPTIONS,
    ANNOTATION_COMPLETION_INDEX,
    ANNOTATION_ENDED_AT,
    ANNOTATION_ENDED_GPU_SECONDS,
    ANNOTATION_ENDED_MESSAGE,
    ANNOTATION_ENDED_REASON,
    ANNOTATION_FIRST_START,
    ANNOTATION_GANG_RELEASED_AT,
    ANNOTATION_GANG_STARTED_AT,
    ANNOTATION_GANG_WINDOW_START,
    DISRUPTION_CONDITION,
    LABEL_ATTEMPT,
    LABEL_KUEUE_QUEUE_NAME,
    LABEL_ROLE,
    LABEL_TRAININGJOB,
    METRICS_TOKEN_KEY,
    POD_GROUP_API_VERSION,
    ROLE_WORKER,
    WORKER_CONTAINER,
    Manifest,
    ObjectRef,
    attempt_job_name,
    format_time,
    metrics_path,
    metrics_secret_name,
)
from plinth.builders.common import (
    child_metadata,
    container_resources,
    field_env,
    literal_env,
    managed_labels,
    merged_env,
    pod_spec_settings,
    pod_template_metadata,
    rendered_owner,
    secret_env,
    template_volume_mounts,
    without_empty,
)
from plinth.status.plan import ChildChanges
from plinth.status.trainingjob import AttemptToApply, TrainingJobPlan, initial_attempt
from plinth.status.trainingjob_facts import needed

RENDEZVOUS_PORT = 29500
RENDEZVOUS_PORT_NAME = "rendezvous"
#: Port of torchrun's c10d rendezvous store (elastic jobs), hosted by the index-0 pod.
C10D_PORT = 29400
C10D_PORT_NAME = "c10d"
#: Time a worker has after SIGTERM (preemption, suspension) to write a last checkpoint.
TERMINATION_GRACE_SECONDS = 60

#: What `plinth render` shows as the Secret's token: render never makes or shows a real one.
PLACEHOLDER_TOKEN = "<generated-at-apply>"
#: What `plinth render` shows in place of the operator's metrics URL (known only in-cluster).
PLACEHOLDER_METRICS_BASE_URL = "<plinth-metrics-url>"


@dataclass(frozen=True)
class TrainingJobContext:
    """Everything besides the spec that the children depend on, decided by the caller."""

    owner: ObjectRef
    #: The attempt the planner wants: its number, suspension and carried counters.
    attempt: AttemptToApply
    #: Where the operator serves the metrics endpoint; None: no metrics reporting.
    metrics_base_url: str | None
    #: The per-job metrics token, issued by the operator; kept out of repr().
    token: str = field(repr=False)
    #: A sweep trial's parameter assignment (JSON), handed to the workers as PLINTH_PARAMS.
    trial_parameters: str | None = None
    #: The cluster's scheduler places gangs as one (PodGroup API): each attempt gets one.
    scheduler_gangs: bool = False

    @property
    def name(self) -> str:
        return self.owner.name

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    @property
    def uid(self) -> str:
        return self.owner.uid

    @property
    def number(self) -> int:
        """The gang restart number, from 0; names the Job of this attempt."""
        return self.attempt.attempt

    @property
    def master_address(self) -> str:
        """DNS name of this attempt's index-0 worker."""
        return master_address(self.name, self.namespace, self.number)


@dataclass(frozen=True)
class TrainingJobChildren:
    """The desired children of one attempt of a TrainingJob."""

    service: Manifest
    secret: Manifest
    job: Manifest
    #: The attempt's PodGroup, where the scheduler gangs (None: Plinth admits the gang).
    pod_group: Manifest | None = None

    def manifests(self) -> list[Manifest]:
        """All children, in the order they are applied: PodGroup, Job, Service, Secret.

        The Job goes first (after the PodGroup its pods name, which the scheduler needs before
        it places them): its pods are what a job waits for, and the Job controller and the
        scheduler start on them while the Service and the Secret are written. Neither is read
        before a worker's container starts (the kubelet mounts the Secret then; workers find
        each other through the Service when torchrun rendezvouses), and a reconcile cut short
        between the writes applies the rest the next time.
        """
        group = [self.pod_group] if self.pod_group else []
        return [*group, self.job, self.service, self.secret]


# --------------------------------------------------------------------------------------
# Names, labels and sizes
# --------------------------------------------------------------------------------------

job_name = attempt_job_name


def master_address(name: str, namespace: str, attempt: int) -> str:
    """DNS name of the index-0 worker of an attempt: its hostname under the Service."""
    return f"{job_name(name, attempt)}-0.{name}.{namespace}.svc"


def metrics_url(base_url: str, namespace: str, name: str) -> str:
    """The URL a job's workers report metrics to."""
    return base_url.rstrip("/") + metrics_path(namespace, name)


def trainingjob_labels(name: str) -> dict[str, str]:
    """Labels of every child of the TrainingJob `name`."""
    return managed_labels(TRAINING_JOB.kind) | {LABEL_TRAININGJOB: name}


def worker_selector(name: str) -> dict[str, str]:
    """Labels selecting the worker pods of every attempt (the Service's selector)."""
    return {LABEL_TRAININGJOB: name, LABEL_ROLE: ROLE_WORKER}


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


def attempt_annotations(apply: AttemptToApply) -> dict[str, str]:
    """The counters an attempt's Job carries across gang restarts, and what Plinth learnt
    about the attempt (when its gang first ran, how it ended), as annotations."""
    carried = apply.carried
    annotations = {
        ANNOTATION_CARRIED_FAILURES: str(carried.failures),
        ANNOTATION_CARRIED_PREEMPTIONS: str(carried.preemptions),
        ANNOTATION_CARRIED_GPU_SECONDS: f"{carried.gpu_seconds:.1f}",
    }
    if carried.active_seconds:
        annotations[ANNOTATION_CARRIED_ACTIVE_SECONDS] = f"{carried.active_seconds:.1f}"
    if apply.banked_at is not None:
        annotations[ANNOTATION_BANKED_GPU_SECONDS] = f"{apply.banked_gpu_seconds:.1f}"
    optional = {
        ANNOTATION_FIRST_START: carried.start_time,
        ANNOTATION_GANG_RELEASED_AT: apply.gang_released_at,
        ANNOTATION_GANG_WINDOW_START: apply.gang_window_start,
        ANNOTATION_GANG_STARTED_AT: apply.gang_started_at,
        ANNOTATION_ACTIVE_SINCE: apply.active_since,
        ANNOTATION_BANKED_AT: apply.banked_at,
    }
    annotations.update({key: format_time(value) for key, value in optional.items() if value})
    if apply.ended is not None:
        annotations.update(
            {
                ANNOTATION_ENDED_REASON: apply.ended.reason,
                ANNOTATION_ENDED_MESSAGE: apply.ended.message,
                ANNOTATION_ENDED_AT: format_time(apply.ended.at),
                ANNOTATION_ENDED_GPU_SECONDS: f"{apply.ended.gpu_seconds:.1f}",
            }
        )
    return annotations


# --------------------------------------------------------------------------------------
# The children
# --------------------------------------------------------------------------------------


def build_trainingjob_children(
    spec: TrainingJobSpec, context: TrainingJobContext
) -> TrainingJobChildren:
    """The Service, Secret and Job of attempt `context.number` of a TrainingJob."""
    return TrainingJobChildren(
        service=build_service(spec, context),
        secret=build_secret(context),
        job=build_job(spec, context),
        pod_group=build_pod_group(spec, context),
    )


def uses_pod_group(spec: TrainingJobSpec, scheduler_gangs: bool) -> bool:
    """Whether an attempt is placed by the scheduler as one PodGroup: a gang of more than
    one worker, on a cluster whose scheduler gangs."""
    return scheduler_gangs and spec.scheduling.gang and needed(spec) > 1


def build_pod_group(spec: TrainingJobSpec, context: TrainingJobContext) -> Manifest | None:
    """The attempt's PodGroup (scheduling.k8s.io/v1beta1, Kubernetes' gang scheduling): the
    scheduler binds none of its pods unless the `minCount` workers that must run at once
    (every node; minNodes of an elastic job) all fit. Named as the attempt's Job."""
    if not uses_pod_group(spec, context.scheduler_gangs):
        return None
    name = job_name(context.name, context.number)
    labels = trainingjob_labels(context.name) | {LABEL_ATTEMPT: str(context.number)}
    return {
        "apiVersion": POD_GROUP_API_VERSION,
        "kind": "PodGroup",
        "metadata": child_metadata(context.owner, name, labels),
        "spec": {"schedulingPolicy": {"gang": {"minCount": needed(spec)}}},
    }


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
    """The Indexed Job running one worker pod per node for attempt `context.number`, with
    the counters it carries across gang restarts as annotations."""
    labels = trainingjob_labels(context.name) | {LABEL_ATTEMPT: str(context.number)}
    if spec.queue_name:
        labels[LABEL_KUEUE_QUEUE_NAME] = spec.queue_name
    name = job_name(context.name, context.number)
    job_spec = {
        "completionMode": "Indexed",
        "completions": worker_count(spec),
        "parallelism": worker_count(spec),
        **_retries(spec),
        "podFailurePolicy": _pod_failure_policy(spec),
        "successPolicy": _success_policy(spec),
        "suspend": context.attempt.suspend,
        "template": _pod_template(spec, context),
    }
    metadata = child_metadata(context.owner, name, labels)
    metadata["annotations"] = attempt_annotations(context.attempt)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": without_empty(job_spec),
    }


def _retries(spec: TrainingJobSpec) -> Manifest:
    """A fixed-size gang never retries a pod itself (Plinth restarts the whole gang). An
    elastic gang replaces a member that left, up to elastic.maxRestarts times per node rank
    (`backoffLimitPerIndex`; no index may fail for good): Plinth counts every member that
    left across ranks against the same limit and ends the attempt past it."""
    if spec.elastic is None:
        return {"backoffLimit": 0}
    return {"backoffLimitPerIndex": spec.elastic.max_restarts, "maxFailedIndexes": 0}


def _pod_failure_policy(spec: TrainingJobSpec) -> Manifest:
    """On disruption (not the program's fault): fail a fixed-size Job at once, with a reason
    status/ can read; replace an elastic job's member without counting it against the
    per-rank limit (Plinth counts it). On a permanent exit code (no retry will help): fail."""
    disrupted = {"type": DISRUPTION_CONDITION, "status": "True"}
    action = "Ignore" if spec.elastic else "FailJob"
    rules: list[Manifest] = [{"action": action, "onPodConditions": [disrupted]}]
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
    labels = worker_labels(context.name, context.number)
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
    if uses_pod_group(spec, context.scheduler_gangs):
        pod_spec["schedulingGroup"] = {"podGroupName": job_name(context.name, context.number)}
    if _needs_shared_memory(spec):
        pod_spec["volumes"] = [*pod_spec.get("volumes", []), copy.deepcopy(SHARED_MEMORY_VOLUME)]
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
        + ([dict(SHARED_MEMORY_MOUNT)] if _needs_shared_memory(spec) else []),
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
    variables.append(literal_env("PLINTH_RESTART_COUNT", context.number))
    if context.trial_parameters is not None:
        variables.append(literal_env("PLINTH_PARAMS", context.trial_parameters))
    if context.metrics_base_url is not None:
        url = metrics_url(context.metrics_base_url, context.namespace, context.name)
        secret = metrics_secret_name(context.name)
        variables += [
            literal_env("PLINTH_METRICS_URL", url),
            secret_env("PLINTH_METRICS_TOKEN", secret, METRICS_TOKEN_KEY),
        ]
    return variables


# --------------------------------------------------------------------------------------
# From the planner's decision to writes
# --------------------------------------------------------------------------------------


def _suspend_patch(spec: TrainingJobSpec, apply: AttemptToApply) -> Manifest:
    """`suspend` as the planner wants it. Under Kueue (queueName) Kueue owns admission, so
    Plinth never unsuspends and never releases a gang itself; it only stops an attempt that
    ended or that the user suspended."""
    if not spec.queue_name:
        return {"suspend": apply.suspend}
    if apply.suspend and (apply.ended is not None or spec.suspend):
        return {"suspend": True}
    return {}


def attempt_patch(owner: ObjectRef, spec: TrainingJobSpec, apply: AttemptToApply) -> Manifest:
    """The mutable part of an existing attempt's Job: suspend and the annotations.

    A Job's pod template is immutable, so an existing attempt is patched, never re-applied.
    """
    annotations: dict[str, str | None] = {
        ANNOTATION_GANG_RELEASED_AT: None,
        ANNOTATION_GANG_WINDOW_START: None,
    }
    annotations.update(attempt_annotations(apply))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(owner.name, apply.attempt),
            "namespace": owner.namespace,
            "annotations": annotations,
        },
        "spec": _suspend_patch(spec, apply),
    }


def attempt_ref(owner: ObjectRef, attempt: int) -> ObjectRef:
    """The Job of one attempt."""
    return ObjectRef("batch/v1", "Job", owner.namespace, job_name(owner.name, attempt))


def _attempt_refs(owner: ObjectRef, attempt: int, with_pod_group: bool) -> tuple[ObjectRef, ...]:
    """What an attempt consists of: its Job, and its PodGroup where the scheduler gangs."""
    job = attempt_ref(owner, attempt)
    if not with_pod_group:
        return (job,)
    return (job, ObjectRef(POD_GROUP_API_VERSION, "PodGroup", owner.namespace, job.name))


def attempt_changes(
    spec: TrainingJobSpec,
    decision: TrainingJobPlan,
    *,
    owner: ObjectRef,
    existing_attempts: frozenset[int],
    metrics_base_url: str | None,
    token: str,
    trial_parameters: str | None = None,
    scheduler_gangs: bool = False,
) -> ChildChanges:
    """The writes that carry out the planner's decision: the Service, Secret, PodGroup and
    Job of the attempt it wants (the Job patched if it exists), and the deletes of
    superseded attempts."""
    group = uses_pod_group(spec, scheduler_gangs)
    deletes = tuple(
        ref for attempt in decision.delete_attempts for ref in _attempt_refs(owner, attempt, group)
    )
    if decision.apply is None:
        return ChildChanges(delete=deletes)
    context = TrainingJobContext(
        owner=owner,
        attempt=decision.apply,
        metrics_base_url=metrics_base_url,
        token=token,
        trial_parameters=trial_parameters,
        scheduler_gangs=scheduler_gangs,
    )
    children = build_trainingjob_children(spec, context)
    if decision.apply.attempt in existing_attempts:
        patch = attempt_patch(owner, spec, decision.apply)
        kept = [m for m in children.manifests() if m is not children.job]
        return ChildChanges(apply=tuple(kept), patch=(patch,), delete=deletes)
    # A new attempt's PodGroup and Job lead: its pods are what the job waits for.
    leading = 2 if children.pod_group else 1
    return ChildChanges(apply=tuple(children.manifests()), delete=deletes, leading=leading)


# --------------------------------------------------------------------------------------
# plinth render
# --------------------------------------------------------------------------------------


def render_trainingjob(
    resource: Mapping[str, Any], *, scheduler_gangs: bool = False
) -> list[Manifest]:
    """The children `plinth render` prints for a TrainingJob document: its first attempt as
    the operator applies it, with placeholders for what exists only in a cluster (uid,
    metrics URL). The Secret shows the placeholder token: render never makes a real one.
    `scheduler_gangs`: as on a cluster that serves the PodGroup API (a multi-worker gang
    gets a PodGroup)."""
    metadata = resource.get("metadata") or {}
    spec = parse_spec("TrainingJob", resource.get("spec") or {})
    owner = rendered_owner(TRAINING_JOB.kind, metadata)
    context = TrainingJobContext(
        owner=owner,
        attempt=initial_attempt(spec, TrainingJobStatus(), window_start=None),
        metrics_base_url=PLACEHOLDER_METRICS_BASE_URL,
        token=PLACEHOLDER_TOKEN,
        scheduler_gangs=scheduler_gangs,
    )
    return build_trainingjob_children(spec, context).manifests()
