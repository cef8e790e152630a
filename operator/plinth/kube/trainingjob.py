"""TrainingJob children on the API server: read Jobs and Pods into observations, apply plans.

Parsing happens here, at the edge: the planner in `status.trainingjob` sees only the frozen
values of `status.trainingjob_observed`. Counters that must survive gang restarts are
stamped on each attempt's Job as annotations when it is created and read back from there.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plinth.api.v1alpha1 import TrainingJobSpec
from plinth.builders.common import GPU_PRODUCT_LABEL, GPU_RESOURCE
from plinth.builders.trainingjob import (
    ANNOTATION_COMPLETION_INDEX,
    DISRUPTION_CONDITION,
    LABEL_ATTEMPT,
    LABEL_JOB_NAME,
    METRICS_TOKEN_KEY,
    WORKER_CONTAINER,
    TrainingJobContext,
    build_trainingjob_children,
    job_name,
    metrics_secret_name,
)
from plinth.kube.client import Kube, Manifest
from plinth.status.trainingjob import AttemptToApply, TrainingJobPlan
from plinth.status.trainingjob_observed import (
    AttemptFailure,
    CarriedCounts,
    FailureKind,
    ObservedAttempt,
    ObservedTrainingJob,
    ObservedWorker,
    WorkerPhase,
)

ANNOTATION_PREFIX = "plinth.dev/"
CARRIED_FAILURES = f"{ANNOTATION_PREFIX}carried-failures"
CARRIED_PREEMPTIONS = f"{ANNOTATION_PREFIX}carried-preemptions"
CARRIED_GPU_SECONDS = f"{ANNOTATION_PREFIX}carried-gpu-seconds"
FIRST_START = f"{ANNOTATION_PREFIX}first-start"
GANG_RELEASED_AT = f"{ANNOTATION_PREFIX}gang-released-at"
GANG_WINDOW_START = f"{ANNOTATION_PREFIX}gang-window-start"
_EXIT_CODE = re.compile(r"exit code (\d+)")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (as the API server writes it), or None."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (obj.get("status") or {}).get("conditions") or ()
    return {str(c.get("type")): c for c in found}


def _is_true(conditions: Mapping[str, Mapping[str, Any]], kind: str) -> bool:
    return conditions.get(kind, {}).get("status") == "True"


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == WORKER_CONTAINER:
            return dict((status.get("state") or {}).get("terminated") or {})
    return {}


def _unschedulable_message(conditions: Mapping[str, Mapping[str, Any]]) -> str | None:
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return str(scheduled.get("message") or "Unschedulable")
    return None


def observe_worker(pod: Mapping[str, Any]) -> ObservedWorker:
    """A worker pod as the planner sees it."""
    metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    conditions = _conditions(pod)
    terminated = _terminated(pod)
    return ObservedWorker(
        index=int((metadata.get("annotations") or {}).get(ANNOTATION_COMPLETION_INDEX, 0)),
        phase=WorkerPhase(status.get("phase") or "Pending"),
        node_name=spec.get("nodeName") or None,
        unschedulable_message=_unschedulable_message(conditions),
        exit_code=terminated.get("exitCode"),
        start_time=parse_time(status.get("startTime")),
        finish_time=parse_time(terminated.get("finishedAt")),
        terminating=bool(metadata.get("deletionTimestamp")),
    )


def attempt_of(obj: Mapping[str, Any]) -> int:
    """The attempt number a Job or pod belongs to (its plinth.dev/attempt label)."""
    return int((obj["metadata"].get("labels") or {}).get(LABEL_ATTEMPT, 0))


def _carried(annotations: Mapping[str, str]) -> CarriedCounts:
    return CarriedCounts(
        failures=int(annotations.get(CARRIED_FAILURES, 0)),
        preemptions=int(annotations.get(CARRIED_PREEMPTIONS, 0)),
        gpu_seconds=float(annotations.get(CARRIED_GPU_SECONDS, 0.0)),
        start_time=parse_time(annotations.get(FIRST_START)),
    )


def _failure(
    job_conditions: Mapping[str, Mapping[str, Any]],
    workers: Iterable[ObservedWorker],
    disrupted: bool,
) -> AttemptFailure | None:
    failed = next(
        (
            job_conditions[kind]
            for kind in ("FailureTarget", "Failed")
            if _is_true(job_conditions, kind)
        ),
        None,
    )
    if failed is None:
        return None  # the Job controller has not judged the failure yet (rules, codes)
    failed_workers = [w for w in workers if w.phase == WorkerPhase.FAILED]
    message = str(failed.get("message") or "")
    if disrupted or DISRUPTION_CONDITION in message:
        return AttemptFailure(FailureKind.PREEMPTED, message or "a worker was preempted")
    if failed.get("reason") == "PodFailurePolicy" and (code := _EXIT_CODE.search(message)):
        exit_code = int(code.group(1))
        return AttemptFailure(
            FailureKind.PERMANENT, f"a worker exited with permanent code {exit_code}", exit_code
        )
    crashed = next((w for w in failed_workers if w.exit_code), None)
    if crashed is not None:
        text = f"worker {crashed.index} exited with code {crashed.exit_code}"
        return AttemptFailure(FailureKind.CRASHED, text, crashed.exit_code)
    return AttemptFailure(FailureKind.CRASHED, message or "a worker failed")


def _is_disrupted(pod: Mapping[str, Any]) -> bool:
    return _is_true(_conditions(pod), DISRUPTION_CONDITION)


def observe_attempt(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> ObservedAttempt:
    """One attempt's Job and its pods as the planner sees them."""
    pods = list(pods)
    metadata = job["metadata"]
    annotations = metadata.get("annotations") or {}
    conditions = _conditions(job)
    workers = tuple(sorted((observe_worker(p) for p in pods), key=lambda w: w.index))
    completed = _is_true(conditions, "Complete")
    return ObservedAttempt(
        attempt=attempt_of(job),
        created=parse_time(metadata.get("creationTimestamp")) or datetime.now(UTC),
        suspended=bool((job.get("spec") or {}).get("suspend")),
        completed=completed,
        completion_time=parse_time((job.get("status") or {}).get("completionTime")),
        failure=None if completed else _failure(conditions, workers, any(map(_is_disrupted, pods))),
        carried=_carried(annotations),
        gang_released_at=parse_time(annotations.get(GANG_RELEASED_AT)),
        gang_window_start=parse_time(annotations.get(GANG_WINDOW_START)),
        workers=workers,
    )


def observe_trainingjob(
    jobs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    nodes_that_fit: int | None = None,
) -> ObservedTrainingJob:
    """Group a TrainingJob's Jobs and pods by attempt."""
    pods_by_attempt: dict[int, list[Mapping[str, Any]]] = {}
    for pod in pods:
        pods_by_attempt.setdefault(attempt_of(pod), []).append(pod)
    attempts = tuple(
        sorted(
            (observe_attempt(job, pods_by_attempt.get(attempt_of(job), ())) for job in jobs),
            key=lambda a: a.attempt,
        )
    )
    return ObservedTrainingJob(attempts=attempts, nodes_that_fit=nodes_that_fit)


@dataclass(frozen=True)
class TrainingJobRef:
    """Which TrainingJob the children belong to."""

    name: str
    namespace: str
    uid: str


def _free_gpus(node: Mapping[str, Any], used: Mapping[str, int]) -> int:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return int(allocatable.get(GPU_RESOURCE, 0)) - used.get(node["metadata"]["name"], 0)


def _pod_gpus(pod: Mapping[str, Any]) -> int:
    containers = (pod.get("spec") or {}).get("containers") or ()
    return sum(
        int(((c.get("resources") or {}).get("requests") or {}).get(GPU_RESOURCE, 0))
        for c in containers
    )


def _belongs_to(pod: Mapping[str, Any], ref: TrainingJobRef) -> bool:
    metadata = pod["metadata"]
    labels = metadata.get("labels") or {}
    return metadata.get("namespace") == ref.namespace and labels.get(LABEL_JOB_NAME) == ref.name


def nodes_that_fit(
    spec: TrainingJobSpec,
    ref: TrainingJobRef,
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
) -> int:
    """How many nodes could take a worker of `spec` (by GPUs and GPU type), not counting
    what the job's own workers hold (they would be released to place the gang)."""
    used: dict[str, int] = {}
    for pod in pods:
        if _belongs_to(pod, ref):
            continue
        if node_name := (pod.get("spec") or {}).get("nodeName"):
            used[node_name] = used.get(node_name, 0) + _pod_gpus(pod)
    wanted = spec.resources.gpus
    gpu_type = spec.resources.gpu_type
    return sum(
        1
        for node in nodes
        if not (node.get("spec") or {}).get("unschedulable")
        and (
            gpu_type is None
            or (node["metadata"].get("labels") or {}).get(GPU_PRODUCT_LABEL) == gpu_type
        )
        and _free_gpus(node, used) >= wanted
    )


def _annotations(apply: AttemptToApply) -> dict[str, str]:
    carried = apply.carried
    annotations = {
        CARRIED_FAILURES: str(carried.failures),
        CARRIED_PREEMPTIONS: str(carried.preemptions),
        CARRIED_GPU_SECONDS: f"{carried.gpu_seconds:.1f}",
    }
    optional = {
        FIRST_START: carried.start_time,
        GANG_RELEASED_AT: apply.gang_released_at,
        GANG_WINDOW_START: apply.gang_window_start,
    }
    annotations.update({key: format_time(value) for key, value in optional.items() if value})
    return annotations


def ensure_token(kube: Kube, ref: TrainingJobRef, *, read: bool = True) -> str:
    """The job's metrics token: the one in its Secret, or a new one (applied with the Secret).

    With `read=False` (no attempt exists, so no pod can hold a token yet) a new token is
    made without asking the API server.
    """
    if not read:
        return secrets.token_urlsafe(32)
    existing = kube.read_secret_value(
        ref.namespace, metrics_secret_name(ref.name), METRICS_TOKEN_KEY
    )
    return existing or secrets.token_urlsafe(32)


def attempt_manifests(
    spec: TrainingJobSpec,
    ref: TrainingJobRef,
    apply: AttemptToApply,
    token: str,
    metrics_base_url: str | None,
) -> list[Manifest]:
    """The Service, Secret and Job of the attempt the plan wants, with its carried counters."""
    context = TrainingJobContext(
        name=ref.name,
        namespace=ref.namespace,
        uid=ref.uid,
        attempt=apply.attempt,
        suspend=apply.suspend,
        metrics_base_url=metrics_base_url,
        token=token,
    )
    children = build_trainingjob_children(spec, context)
    job = children.job
    job["metadata"].setdefault("annotations", {}).update(_annotations(apply))
    return [children.service, children.secret, job]


def _attempt_patch(spec: TrainingJobSpec, ref: TrainingJobRef, apply: AttemptToApply) -> Manifest:
    """The mutable part of an existing attempt's Job: suspend and the gang annotations.

    A Job's pod template is immutable, so an existing attempt is patched, never re-applied.
    Under Kueue (queueName) Kueue owns `suspend`, so Plinth leaves it alone.
    """
    annotations: dict[str, str | None] = {GANG_RELEASED_AT: None, GANG_WINDOW_START: None}
    annotations.update(_annotations(apply))
    spec_patch: Manifest = {} if spec.queue_name else {"suspend": apply.suspend}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(ref.name, apply.attempt),
            "namespace": ref.namespace,
            "annotations": annotations,
        },
        "spec": spec_patch,
    }


def carry_out(
    kube: Kube,
    spec: TrainingJobSpec,
    *,
    ref: TrainingJobRef,
    plan: TrainingJobPlan,
    observed: ObservedTrainingJob,
    token: str,
    metrics_base_url: str | None,
) -> None:
    """Create or update the attempt the plan wants and delete the attempts it supersedes."""
    if plan.apply is not None:
        existing = {attempt.attempt for attempt in observed.attempts}
        manifests = attempt_manifests(spec, ref, plan.apply, token, metrics_base_url)
        for manifest in manifests[:-1]:
            kube.apply(manifest)
        if plan.apply.attempt in existing:
            kube.merge_patch(_attempt_patch(spec, ref, plan.apply))
        else:
            kube.apply(manifests[-1])
    for attempt in plan.delete_attempts:
        kube.delete("batch/v1", "Job", ref.namespace, job_name(ref.name, attempt))
