"""Fluent factories for what the tests feed Plinth: TrainingJobs, and the Jobs, pods, nodes
and observations the API server and the observe step produce.

Every factory is a frozen value: each `with_...` returns a new one, so a shared default
(`a_trainingjob()`) can be refined per test without leaking into the next. `build()` (or
`body()`, `spec()` for a TrainingJob) turns it into what the code under test takes.

    a_trainingjob().named("llm").with_nodes(2).with_gpus(8).suspended().body()
    a_job("llm", attempt=1).with_condition("Failed", reason="BackoffLimitExceeded").build()
    a_pod(1, "Failed").of_attempt(1).exited(3).build()

The API objects have the shapes the Job controller, the scheduler and the pod garbage
collector of Kubernetes 1.37 write (seen on the emulated cluster: see
tests/integration/test_kwok_stages.py); the defaults are a 2-node x 8-GPU TrainingJob
`llm` in namespace `ml`, created at `T0`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.api.v1alpha1 import API_GROUP, API_VERSION, TRAINING_JOB, TrainingJobSpec, parse_spec
from plinth.api.wellknown import (
    ANNOTATION_COMPLETION_INDEX,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    LABEL_ATTEMPT,
    LABEL_ROLE,
    LABEL_TRAININGJOB,
    LEGACY_LABEL_JOB_NAME,
    ROLE_WORKER,
    WORKER_CONTAINER,
    Manifest,
    ObjectRef,
    OwnerMeta,
    attempt_job_name,
    format_time,
)
from plinth.status.trainingjob_observed import (
    ObservedAttempt,
    ObservedNode,
    ObservedWorker,
    WorkerPhase,
)

#: When every factory's objects were created, unless told otherwise.
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
#: When a worker pod started and, if it ended, when its container terminated.
POD_STARTED = T0 + timedelta(seconds=10)
POD_FINISHED = T0 + timedelta(minutes=1)
TRAININGJOB_API_VERSION = f"{API_GROUP}/{API_VERSION}"
DEFAULT_IMAGE = "ghcr.io/acme/train:1"
#: The GPU model of the emulated cluster's nodes (plinth_devcluster.DEFAULT_GPU_PRODUCT).
H100 = "NVIDIA-H100-80GB-HBM3"


def _default_fields() -> dict[str, Any]:
    return {"image": DEFAULT_IMAGE, "nodes": 2, "resources": {"gpus": 8}}


# --------------------------------------------------------------------------------------
# TrainingJob
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingJobFactory:
    """A TrainingJob: by default `llm` in `ml`, 2 nodes x 8 GPUs of image DEFAULT_IMAGE."""

    name: str = "llm"
    namespace: str = "ml"
    uid: str = "u-1"
    generation: int = 1
    created: datetime = T0
    #: The spec as a user writes it (camelCase), top-level fields only replaced.
    fields: Mapping[str, Any] = field(default_factory=_default_fields)

    # ---- who ------------------------------------------------------------------------

    def named(self, name: str) -> TrainingJobFactory:
        return replace(self, name=name)

    def in_namespace(self, namespace: str) -> TrainingJobFactory:
        return replace(self, namespace=namespace)

    def with_uid(self, uid: str) -> TrainingJobFactory:
        return replace(self, uid=uid)

    def at_generation(self, generation: int) -> TrainingJobFactory:
        return replace(self, generation=generation)

    # ---- the spec ---------------------------------------------------------------------

    def with_fields(self, **fields: Any) -> TrainingJobFactory:
        """Set top-level spec fields as written in YAML (camelCase); None removes one."""
        merged = {**self.fields, **fields}
        return replace(self, fields={k: v for k, v in merged.items() if v is not None})

    def with_image(self, image: str) -> TrainingJobFactory:
        return self.with_fields(image=image)

    def with_command(self, *command: str) -> TrainingJobFactory:
        return self.with_fields(command=list(command))

    def with_args(self, *args: str) -> TrainingJobFactory:
        return self.with_fields(args=list(args))

    def with_nodes(self, nodes: int) -> TrainingJobFactory:
        return self.with_fields(nodes=nodes, elastic=None)

    def elastic(
        self, min_nodes: int, max_nodes: int, max_restarts: int | None = None
    ) -> TrainingJobFactory:
        elastic: dict[str, int] = {"minNodes": min_nodes, "maxNodes": max_nodes}
        if max_restarts is not None:
            elastic["maxRestarts"] = max_restarts
        return self.with_fields(nodes=None, elastic=elastic)

    def with_procs_per_node(self, procs: int) -> TrainingJobFactory:
        return self.with_fields(procsPerNode=procs)

    def with_gpus(self, gpus: int, gpu_type: str | None = None) -> TrainingJobFactory:
        """`gpus` per node (of model `gpu_type`, when given); other resources are kept."""
        resources = {**self.fields.get("resources", {}), "gpus": gpus}
        if gpu_type is not None:
            resources["gpuType"] = gpu_type
        return self.with_fields(resources=resources)

    def on_cpu(self, cpu: str | int, memory: str) -> TrainingJobFactory:
        """No GPUs: `cpu` and `memory` per node."""
        return self.with_fields(resources={"cpu": cpu, "memory": memory})

    def with_checkpoint(self, uri: str) -> TrainingJobFactory:
        return self.with_fields(checkpoint={"uri": uri})

    def with_restart_policy(self, **policy: Any) -> TrainingJobFactory:
        """restartPolicy fields (camelCase: backoffLimit, permanentExitCodes, ...)."""
        return self.with_fields(restartPolicy={**self.fields.get("restartPolicy", {}), **policy})

    def with_scheduling(self, **scheduling: Any) -> TrainingJobFactory:
        """scheduling fields (camelCase: scheduleTimeoutSeconds, onTimeout, gang)."""
        merged = {**self.fields.get("scheduling", {}), **scheduling}
        return self.with_fields(scheduling=merged)

    def with_pod_template(self, **template: Any) -> TrainingJobFactory:
        """podTemplate fields (camelCase: annotations, nodeSelector, volumes, ...)."""
        merged = {**self.fields.get("podTemplate", {}), **template}
        return self.with_fields(podTemplate=merged)

    def with_env(self, **variables: str) -> TrainingJobFactory:
        return self.with_fields(env=[{"name": k, "value": v} for k, v in variables.items()])

    def suspended(self) -> TrainingJobFactory:
        return self.with_fields(suspend=True)

    def queued(self, queue: str) -> TrainingJobFactory:
        return self.with_fields(queueName=queue)

    # ---- what tests take ----------------------------------------------------------------

    def spec_fields(self) -> dict[str, Any]:
        """The spec as raw data (a copy: change it freely)."""
        return copy.deepcopy(dict(self.fields))

    def spec(self) -> TrainingJobSpec:
        """The typed spec, parsed as the operator parses it."""
        return parse_spec("TrainingJob", self.spec_fields())

    def body(self) -> Manifest:
        """The document a user applies (no uid or server fields)."""
        return {
            "apiVersion": TRAININGJOB_API_VERSION,
            "kind": TRAINING_JOB.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self.spec_fields(),
        }

    def ref(self) -> ObjectRef:
        return ObjectRef(
            TRAININGJOB_API_VERSION, TRAINING_JOB.kind, self.namespace, self.name, self.uid
        )

    def owner(self) -> OwnerMeta:
        """The metadata planners see."""
        return OwnerMeta(ref=self.ref(), generation=self.generation, created=self.created)


def a_trainingjob() -> TrainingJobFactory:
    """A valid TrainingJob to refine: `llm` in `ml`, 2 nodes x 8 GPUs."""
    return TrainingJobFactory()


# --------------------------------------------------------------------------------------
# Jobs, pods and nodes as the API server writes them
# --------------------------------------------------------------------------------------


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    found = {"type": kind, "status": status}
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


def _owner_labels(trainingjob: str, owner_label: str, attempt: int) -> dict[str, str]:
    return {owner_label: trainingjob, LABEL_ATTEMPT: str(attempt)}


@dataclass(frozen=True)
class JobObject:
    """The batch/v1 Job of one attempt of a TrainingJob, read back from the API server."""

    trainingjob: str = "llm"
    attempt: int = 0
    namespace: str = "ml"
    created: datetime = T0
    suspend: bool = False
    conditions: tuple[dict[str, str], ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    owner_label: str = LABEL_TRAININGJOB

    def of_attempt(self, attempt: int) -> JobObject:
        return replace(self, attempt=attempt)

    def in_namespace(self, namespace: str) -> JobObject:
        return replace(self, namespace=namespace)

    def suspended(self) -> JobObject:
        return replace(self, suspend=True)

    def with_condition(
        self, kind: str, *, reason: str = "", message: str = "", status: str = "True"
    ) -> JobObject:
        """A condition the Job controller set (Complete, Failed, FailureTarget, ...)."""
        added = _condition(kind, status, reason, message)
        return replace(self, conditions=(*self.conditions, added))

    def annotated(self, annotations: Mapping[str, str]) -> JobObject:
        return replace(self, annotations={**self.annotations, **annotations})

    def made_by_plinth_0_1(self) -> JobObject:
        """Labelled as Plinth 0.1 labelled its children (`plinth.dev/job-name`)."""
        return replace(self, owner_label=LEGACY_LABEL_JOB_NAME)

    def build(self) -> Manifest:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": attempt_job_name(self.trainingjob, self.attempt),
                "namespace": self.namespace,
                "creationTimestamp": format_time(self.created),
                "labels": _owner_labels(self.trainingjob, self.owner_label, self.attempt),
                "annotations": dict(self.annotations),
            },
            "spec": {"suspend": self.suspend},
            "status": {"conditions": [dict(c) for c in self.conditions]},
        }


def a_job(trainingjob: str = "llm", attempt: int = 0) -> JobObject:
    """The Job of `attempt` of TrainingJob `trainingjob`, as the Job controller keeps it."""
    return JobObject(trainingjob=trainingjob, attempt=attempt)


@dataclass(frozen=True)
class PodObject:
    """A worker pod of an attempt, read back from the API server."""

    index: int = 0
    phase: str = "Running"
    trainingjob: str = "llm"
    attempt: int = 0
    namespace: str = "ml"
    node: str | None = "n1"
    gpus: int = 8
    exit_code: int | None = None
    started: datetime = POD_STARTED
    finished: datetime = POD_FINISHED
    conditions: tuple[dict[str, str], ...] = ()
    owned: bool = True
    created: datetime = T0
    deleted: datetime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def of_attempt(self, attempt: int) -> PodObject:
        return replace(self, attempt=attempt)

    def created_at(self, created: datetime) -> PodObject:
        return replace(self, created=created)

    def being_deleted(self, deletion_timestamp: datetime) -> PodObject:
        """metadata.deletionTimestamp set (the deletion's time plus its grace period)."""
        return replace(self, deleted=deletion_timestamp)

    def replacing(self, failures: int = 0, disruptions: int = 0) -> PodObject:
        """A replacement of pods of its index that failed before it, as the Job controller
        counts them with backoffLimitPerIndex (counted, and ignored by the policy)."""
        counts = {"batch.kubernetes.io/job-index-failure-count": str(failures)}
        if disruptions:
            counts["batch.kubernetes.io/job-index-ignored-failure-count"] = str(disruptions)
        return replace(self, annotations={**self.annotations, **counts})

    def in_namespace(self, namespace: str) -> PodObject:
        return replace(self, namespace=namespace)

    def on_node(self, node: str | None) -> PodObject:
        """Bound to `node` (None: not placed)."""
        return replace(self, node=node)

    def with_gpus(self, gpus: int) -> PodObject:
        """Requesting `gpus` GPUs."""
        return replace(self, gpus=gpus)

    def exited(self, code: int) -> PodObject:
        """The worker container terminated with `code`."""
        return replace(self, exit_code=code)

    def with_condition(
        self, kind: str, *, reason: str = "", message: str = "", status: str = "True"
    ) -> PodObject:
        added = _condition(kind, status, reason, message)
        return replace(self, conditions=(*self.conditions, added))

    def not_owned(self) -> PodObject:
        """Someone else's pod: no Plinth labels."""
        return replace(self, owned=False)

    def build(self) -> Manifest:
        state: dict[str, Any] = (
            {"terminated": {"exitCode": self.exit_code, "finishedAt": format_time(self.finished)}}
            if self.exit_code is not None
            else {"running": {}}
        )
        labels = (
            _owner_labels(self.trainingjob, LABEL_TRAININGJOB, self.attempt)
            | {LABEL_ROLE: ROLE_WORKER}
            if self.owned
            else {}
        )
        requests = {GPU_RESOURCE: str(self.gpus)} if self.gpus else {}
        status: dict[str, Any] = {
            "phase": self.phase,
            "startTime": format_time(self.started),
            "containerStatuses": [{"name": WORKER_CONTAINER, "state": state}],
        }
        if self.conditions:
            status["conditions"] = [dict(c) for c in self.conditions]
        metadata: dict[str, Any] = {
            "name": f"{attempt_job_name(self.trainingjob, self.attempt)}-{self.index}",
            "namespace": self.namespace,
            "creationTimestamp": format_time(self.created),
            "labels": labels,
            "annotations": {ANNOTATION_COMPLETION_INDEX: str(self.index), **self.annotations},
        }
        if self.deleted is not None:
            metadata["deletionTimestamp"] = format_time(self.deleted)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "nodeName": self.node,
                "containers": [{"name": WORKER_CONTAINER, "resources": {"requests": requests}}],
            },
            "status": status,
        }


def a_pod(index: int = 0, phase: str = "Running") -> PodObject:
    """Worker `index` of attempt 0 of `llm`, in `phase`, on node n1 with 8 GPUs."""
    return PodObject(index=index, phase=phase)


def a_gpu_node(
    name: str,
    gpus: int = 8,
    product: str = H100,
    *,
    ready: str = "True",
    since: datetime = T0,
    reason: str = "KubeletReady",
) -> Manifest:
    """A Node with `gpus` allocatable GPUs of model `product`, its Ready condition `ready`
    since `since` (the node lifecycle controller writes "Unknown", reason NodeStatusUnknown,
    when the kubelet stops reporting)."""
    condition = {
        "type": "Ready",
        "status": ready,
        "reason": reason,
        "lastTransitionTime": format_time(since),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {GPU_PRODUCT_LABEL: product}},
        "spec": {},
        "status": {"allocatable": {GPU_RESOURCE: str(gpus)}, "conditions": [condition]},
    }


# --------------------------------------------------------------------------------------
# Observations (what observe_trainingjob makes of the objects above)
# --------------------------------------------------------------------------------------


def a_worker(
    index: int, phase: WorkerPhase = WorkerPhase.RUNNING, **changes: Any
) -> ObservedWorker:
    """An observed worker; placed (node gpu-node-<index>, started at T0) unless Pending."""
    placed = phase != WorkerPhase.PENDING
    defaults: dict[str, Any] = {
        "node_name": f"gpu-node-{index}" if placed else None,
        "start_time": T0 if placed else None,
    }
    return ObservedWorker(index=index, phase=phase, **{**defaults, **changes})


def an_attempt(number: int = 0, *workers: ObservedWorker, **changes: Any) -> ObservedAttempt:
    """An observed attempt created at T0 with `workers`."""
    return ObservedAttempt(attempt=number, created=T0, workers=workers, **changes)


def a_node(name: str, *, ready: bool = True, since: datetime = T0, **changes: Any) -> ObservedNode:
    """An observed Node; not Ready since `since` when `ready` is False."""
    reason = "KubeletReady" if ready else "NodeStatusUnknown"
    return ObservedNode(name=name, ready=ready, since=since, **{"reason": reason, **changes})


# --------------------------------------------------------------------------------------
# AutoMLSweeps and their trials
# --------------------------------------------------------------------------------------


def _default_sweep_fields() -> dict[str, Any]:
    return {
        "objectives": [{"metric": "loss", "direction": "minimize"}],
        "algorithm": {"name": "tpe", "seed": 7},
        "parameters": [{"name": "lr", "type": "float", "min": 0.0001, "max": 0.1, "log": True}],
        "budget": {"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 1},
        "trialTemplate": {
            "image": DEFAULT_IMAGE,
            "args": ["--lr=${params.lr}"],
            "nodes": 1,
            "checkpoint": {"uri": "s3://ckpt/${trial.name}"},
        },
    }


@dataclass(frozen=True)
class SweepFactory:
    """An AutoMLSweep `sweep` in namespace `ml` (4 trials, 2 at a time, TPE over lr)."""

    name: str = "sweep"
    fields: Mapping[str, Any] = field(default_factory=_default_sweep_fields)

    def with_fields(self, **fields: Any) -> SweepFactory:
        """Top-level spec fields replaced (camelCase, as in YAML)."""
        return replace(self, fields={**self.fields, **fields})

    def with_budget(self, **budget: Any) -> SweepFactory:
        return self.with_fields(budget={**self.fields["budget"], **budget})

    def spec(self) -> Any:
        return parse_spec("AutoMLSweep", self.fields)

    def owner(self) -> OwnerMeta:
        ref = ObjectRef(TRAININGJOB_API_VERSION, "AutoMLSweep", "ml", self.name, "sweep-uid")
        return OwnerMeta(ref=ref, generation=1, created=T0)


def a_sweep() -> SweepFactory:
    return SweepFactory()


@dataclass(frozen=True)
class TrialJobObject:
    """A trial TrainingJob as the API server holds it, with the status its operator wrote."""

    sweep: str
    number: int
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"lr": 0.01})
    status: Mapping[str, Any] = field(default_factory=dict)
    suspended: bool = False

    def with_status(self, phase: str, **fields: Any) -> TrialJobObject:
        return replace(self, status={"phase": phase, **fields})

    def reporting(self, step: int, **latest: float) -> TrialJobObject:
        """Running, its newest report at `step` with `latest` metric values."""
        metrics = {"step": step, "latest": latest, "min": latest, "max": latest}
        return self.with_status("Running", metrics=metrics, gpuSeconds=3600.0)

    def succeeded(self, **metrics: Mapping[str, float]) -> TrialJobObject:
        return self.with_status(
            "Succeeded",
            metrics={"step": 100, **metrics},
            gpuSeconds=7200.0,
            completionTime=format_time(POD_FINISHED),
        )

    def failed(self, reason: str, message: str) -> TrialJobObject:
        condition = {
            **_condition("Failed", "True", reason, message),
            "lastTransitionTime": format_time(POD_FINISHED),
        }
        return self.with_status("Failed", conditions=[condition])

    def build(self) -> Manifest:
        name = f"{self.sweep}-{self.number}"
        return {
            "apiVersion": TRAININGJOB_API_VERSION,
            "kind": "TrainingJob",
            "metadata": {
                "name": name,
                "namespace": "ml",
                "labels": {
                    "plinth.dev/automlsweep": self.sweep,
                    "plinth.dev/trial": str(self.number),
                },
                "annotations": {
                    "plinth.dev/trial-parameters": json.dumps(dict(self.parameters)),
                    "plinth.dev/trial-sampler-state": "{}",
                },
            },
            "spec": {"image": DEFAULT_IMAGE, "nodes": 1, "suspend": self.suspended},
            "status": dict(self.status),
        }


def a_trial_job(sweep: str = "sweep", number: int = 0, lr: float = 0.01) -> TrialJobObject:
    return TrialJobObject(sweep=sweep, number=number, parameters={"lr": lr})
