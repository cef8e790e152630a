"""Reading a TrainingJob's Jobs, pods and (when a plan asks) Nodes, as the API server writes
them, into the frozen observations the planner takes.

Pure parsing at the edge: the planner in `status.trainingjob` sees only the values of
`status.trainingjob_observed`. Counters that must survive gang restarts, and facts about an
attempt that its pods cannot keep, are stamped on each attempt's Job as annotations and read
back here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

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
    ANNOTATION_INDEX_FAILURE_COUNT,
    ANNOTATION_INDEX_IGNORED_FAILURE_COUNT,
    DISRUPTION_CONDITION,
    LABEL_ATTEMPT,
    LABEL_TRAININGJOB,
    LEGACY_LABEL_JOB_NAME,
    WORKER_CONTAINER,
    ObjectRef,
    OwnerMeta,
    parse_time,
)
from plinth.status.capacity import ClusterCapacity, free_gpus_by_node
from plinth.status.gang_admission import GangDemand, admit_gang, room_for
from plinth.status.trainingjob_observed import (
    AttemptEnd,
    AttemptFailure,
    CarriedCounts,
    FailureKind,
    ObservedAttempt,
    ObservedNode,
    ObservedTrainingJob,
    ObservedWorker,
    WorkerPhase,
)

_EXIT_CODE = re.compile(r"exit code (\d+)")


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (obj.get("status") or {}).get("conditions") or ()
    return {str(c.get("type")): c for c in found}


def _is_true(conditions: Mapping[str, Mapping[str, Any]], kind: str) -> bool:
    return conditions.get(kind, {}).get("status") == "True"


def _state(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == WORKER_CONTAINER:
            return dict(status.get("state") or {})
    return {}


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(_state(pod).get("terminated") or {})


def _ran_at(pod: Mapping[str, Any], phase: WorkerPhase) -> datetime | None:
    """When the worker container started, if it ran: running now, or exited 0."""
    state = _state(pod)
    if phase == WorkerPhase.RUNNING:
        started = (state.get("running") or {}).get("startedAt")
    elif phase == WorkerPhase.SUCCEEDED:
        started = (state.get("terminated") or {}).get("startedAt")
    else:
        return None
    return parse_time(started) or parse_time((pod.get("status") or {}).get("startTime"))


def _unschedulable_message(conditions: Mapping[str, Mapping[str, Any]]) -> str | None:
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return str(scheduled.get("message") or "Unschedulable")
    return None


def _count(annotations: Mapping[str, str], key: str) -> int:
    try:
        return max(int(annotations.get(key, 0)), 0)
    except ValueError:
        return 0


def observe_worker(pod: Mapping[str, Any]) -> ObservedWorker:
    """A worker pod as the planner sees it."""
    metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    annotations = metadata.get("annotations") or {}
    conditions = _conditions(pod)
    terminated = _terminated(pod)
    waiting = dict(_state(pod).get("waiting") or {})
    phase = WorkerPhase(status.get("phase") or "Pending")
    return ObservedWorker(
        index=int(annotations.get(ANNOTATION_COMPLETION_INDEX, 0)),
        phase=phase,
        node_name=spec.get("nodeName") or None,
        unschedulable_message=_unschedulable_message(conditions),
        exit_code=terminated.get("exitCode"),
        start_time=parse_time(status.get("startTime")),
        finish_time=parse_time(terminated.get("finishedAt")),
        ran_at=_ran_at(pod, phase),
        ready="Ready" not in conditions or _is_true(conditions, "Ready"),
        deleted_at=parse_time(metadata.get("deletionTimestamp")),
        created=parse_time(metadata.get("creationTimestamp")),
        disrupted=_is_true(conditions, DISRUPTION_CONDITION),
        index_failures=_count(annotations, ANNOTATION_INDEX_FAILURE_COUNT),
        index_disruptions=_count(annotations, ANNOTATION_INDEX_IGNORED_FAILURE_COUNT),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
    )


def attempt_of(obj: Mapping[str, Any]) -> int:
    """The attempt number a Job or pod belongs to (its plinth.dev/attempt label)."""
    return int((obj["metadata"].get("labels") or {}).get(LABEL_ATTEMPT, 0))


def _carried(annotations: Mapping[str, str]) -> CarriedCounts:
    return CarriedCounts(
        failures=int(annotations.get(ANNOTATION_CARRIED_FAILURES, 0)),
        preemptions=int(annotations.get(ANNOTATION_CARRIED_PREEMPTIONS, 0)),
        gpu_seconds=float(annotations.get(ANNOTATION_CARRIED_GPU_SECONDS, 0.0)),
        start_time=parse_time(annotations.get(ANNOTATION_FIRST_START)),
        active_seconds=float(annotations.get(ANNOTATION_CARRIED_ACTIVE_SECONDS, 0.0)),
    )


def _ended(annotations: Mapping[str, str]) -> AttemptEnd | None:
    reason, at = annotations.get(ANNOTATION_ENDED_REASON), annotations.get(ANNOTATION_ENDED_AT)
    if not reason or not at:
        return None
    return AttemptEnd(
        reason=reason,
        message=annotations.get(ANNOTATION_ENDED_MESSAGE, ""),
        at=parse_time(at) or datetime.now(UTC),
        gpu_seconds=float(annotations.get(ANNOTATION_ENDED_GPU_SECONDS, 0.0)),
    )


def _failure(
    job_conditions: Mapping[str, Mapping[str, Any]], workers: Iterable[ObservedWorker]
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
    if any(w.disrupted for w in workers) or DISRUPTION_CONDITION in message:
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


def observe_attempt(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> ObservedAttempt:
    """One attempt's Job and its pods as the planner sees them."""
    pods = list(pods)
    metadata = job["metadata"]
    annotations = metadata.get("annotations") or {}
    conditions = _conditions(job)
    workers = tuple(sorted((observe_worker(p) for p in pods), key=_worker_order))
    completed = _is_true(conditions, "Complete")
    return ObservedAttempt(
        attempt=attempt_of(job),
        created=parse_time(metadata.get("creationTimestamp")) or datetime.now(UTC),
        suspended=bool((job.get("spec") or {}).get("suspend")),
        completed=completed,
        completion_time=parse_time((job.get("status") or {}).get("completionTime")),
        failure=None if completed else _failure(conditions, workers),
        carried=_carried(annotations),
        gang_released_at=parse_time(annotations.get(ANNOTATION_GANG_RELEASED_AT)),
        gang_window_start=parse_time(annotations.get(ANNOTATION_GANG_WINDOW_START)),
        gang_started_at=parse_time(annotations.get(ANNOTATION_GANG_STARTED_AT)),
        active_since=parse_time(annotations.get(ANNOTATION_ACTIVE_SINCE)),
        ended=_ended(annotations),
        banked_gpu_seconds=float(annotations.get(ANNOTATION_BANKED_GPU_SECONDS, 0.0)),
        banked_at=parse_time(annotations.get(ANNOTATION_BANKED_AT)),
        started_at=parse_time((job.get("status") or {}).get("startTime")),
        workers=workers,
    )


def _worker_order(worker: ObservedWorker) -> tuple[int, datetime, int]:
    """By index, then oldest first (a replacement after the pod it replaces)."""
    created = worker.created or datetime.min.replace(tzinfo=UTC)
    return (worker.index, created, worker.index_failures + worker.index_disruptions)


def observe_trainingjob(
    jobs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    workers_that_fit: int | None = None,
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
    return ObservedTrainingJob(attempts=attempts, workers_that_fit=workers_that_fit)


def observe_node(name: str, node: Mapping[str, Any] | None) -> ObservedNode:
    """A Node as the planner sees it (None: it does not exist)."""
    if node is None:
        return ObservedNode(name=name, exists=False, ready=False)
    ready = _conditions(node).get("Ready", {})
    return ObservedNode(
        name=name,
        ready=ready.get("status") == "True",
        since=parse_time(ready.get("lastTransitionTime")),
        reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""),
    )


def observe_nodes(objects: Mapping[ObjectRef, Mapping[str, Any] | None]) -> dict[str, ObservedNode]:
    """The Nodes among the objects a plan asked for, by name."""
    return {
        ref.name: observe_node(ref.name, found)
        for ref, found in objects.items()
        if ref.kind == "Node"
    }


def _belongs_to(owner: OwnerMeta) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a pod is one of the owner's workers (labelled with its name, any label era)."""

    def test(pod: Mapping[str, Any]) -> bool:
        metadata = pod["metadata"]
        labels = metadata.get("labels") or {}
        name = labels.get(LABEL_TRAININGJOB, labels.get(LEGACY_LABEL_JOB_NAME))
        return metadata.get("namespace") == owner.namespace and name == owner.name

    return test


def with_reads(
    observed: ObservedTrainingJob,
    *,
    owner: OwnerMeta,
    demand: GangDemand,
    capacity: ClusterCapacity | None,
    objects: Mapping[ObjectRef, Mapping[str, Any] | None] | None,
) -> ObservedTrainingJob:
    """The observations, with what the runtime read because a first plan asked: how many of
    the gang's workers the nodes could take now and whether the whole gang may be created
    now (the job's own workers do not count: they would be released to place the gang),
    and the Nodes of suspect workers."""
    if capacity is not None:
        own = _belongs_to(owner)
        free = free_gpus_by_node(capacity, ignore=own)
        fit = room_for(capacity, demand, free)
        admission = admit_gang(capacity, demand, own=own, free=free)
        observed = replace(observed, workers_that_fit=fit, admission=admission)
    if objects is not None:
        observed = replace(observed, nodes=observe_nodes(objects))
    return observed
