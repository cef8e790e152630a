"""The TrainingJob planner: spec, previous status and observed children in; actions and status out.

Pure and level-based: given the same inputs it returns the same plan, so a reconcile killed
at any point and run again converges. The plan says which attempt (an Indexed Job) should
exist and whether it is suspended, which older attempts to delete, the status to write and
when to look again. Gang semantics: a worker failure ends the attempt and the next attempt
restarts every worker from the last checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from plinth.api.v1alpha1 import (
    TrainingJobConditionType,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
)
from plinth.api.v1alpha1.common import ConditionStatus
from plinth.api.v1alpha1.trainingjob import ScheduleTimeoutAction, WorkerCounts
from plinth.status.acceptance import accepted_update
from plinth.status.conditions import ConditionUpdate, set_condition
from plinth.status.trainingjob_observed import (
    CarriedCounts,
    FailureKind,
    ObservedAttempt,
    ObservedTrainingJob,
    WorkerPhase,
)

GPU_RESOURCE = "nvidia.com/gpu"
#: How often a running job's GPU time is refreshed in status.
RUNNING_RECHECK_SECONDS = 30.0

Cond = TrainingJobConditionType
TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE


@dataclass(frozen=True)
class JobIdentity:
    """The TrainingJob's own metadata the planner needs."""

    name: str
    generation: int | None
    created: datetime


@dataclass(frozen=True)
class AttemptToApply:
    """The attempt that should exist now, and how."""

    attempt: int
    suspend: bool
    carried: CarriedCounts
    gang_released_at: datetime | None = None
    gang_window_start: datetime | None = None


@dataclass(frozen=True)
class TrainingJobPlan:
    """What the reconcile should do."""

    status: TrainingJobStatus
    apply: AttemptToApply | None = None
    delete_attempts: tuple[int, ...] = ()
    delete_trainingjob: bool = False
    check_again_after: float | None = None
    #: Whether the planner wants `nodes_that_fit` looked up (a gang is stuck).
    wants_capacity: bool = False


@dataclass(frozen=True)
class _Outcome:
    """The phase, the conditions to set, and the actions, before they become a status."""

    phase: TrainingJobPhase
    updates: tuple[ConditionUpdate, ...]
    apply: AttemptToApply | None = None
    check_again_after: float | None = None
    wants_capacity: bool = False
    completion_time: datetime | None = None


def _update(kind: Cond, status: ConditionStatus, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(type=kind.value, status=status, reason=reason, message=message)


def gang_shape(spec: TrainingJobSpec) -> str:
    """E.g. '4 nodes x 8 nvidia.com/gpu' (or '2 nodes' without GPUs)."""
    nodes = f"{spec.max_nodes} node{'s' if spec.max_nodes != 1 else ''}"
    return f"{nodes} x {spec.resources.gpus} {GPU_RESOURCE}" if spec.resources.gpus else nodes


def _held_seconds(start: datetime, end: datetime | None, now: datetime) -> float:
    """Seconds from start to end; a worker still running counts in whole recheck periods,
    so status changes once per period instead of at every reconcile."""
    if end is not None:
        return max((end - start).total_seconds(), 0.0)
    elapsed = max((now - start).total_seconds(), 0.0)
    return elapsed - elapsed % RUNNING_RECHECK_SECONDS


def attempt_gpu_seconds(spec: TrainingJobSpec, attempt: ObservedAttempt, now: datetime) -> float:
    """GPU time held by one attempt's workers: from start to finish (or now) x GPUs per pod."""
    total = 0.0
    for worker in attempt.workers:
        if worker.start_time is None:
            continue
        end = worker.finish_time or (None if worker.active else worker.start_time)
        total += _held_seconds(worker.start_time, end, now)
    return round(total * spec.resources.gpus, 1)


def gang_size(spec: TrainingJobSpec, latest: ObservedAttempt | None) -> int:
    """spec.nodes; for an elastic job, the workers placed now (its current size)."""
    if spec.elastic is None:
        return spec.max_nodes
    return sum(w.scheduled and w.active for w in latest.workers) if latest else 0


def worker_counts(attempt: ObservedAttempt | None) -> WorkerCounts:
    workers = attempt.workers if attempt else ()
    return WorkerCounts(
        pending=sum(w.phase == WorkerPhase.PENDING for w in workers),
        running=sum(w.phase == WorkerPhase.RUNNING for w in workers),
        succeeded=sum(w.phase == WorkerPhase.SUCCEEDED for w in workers),
        failed=sum(w.phase == WorkerPhase.FAILED for w in workers),
    )


def _carried_forward(
    spec: TrainingJobSpec, latest: ObservedAttempt, kind: FailureKind, now: datetime
) -> CarriedCounts:
    carried = latest.carried
    return CarriedCounts(
        failures=carried.failures + (kind == FailureKind.CRASHED),
        preemptions=carried.preemptions + (kind == FailureKind.PREEMPTED),
        gpu_seconds=carried.gpu_seconds + attempt_gpu_seconds(spec, latest, now),
        start_time=carried.start_time or latest.first_start,
    )


def _failed(reason: str, message: str, now: datetime, apply: AttemptToApply | None) -> _Outcome:
    return _Outcome(
        phase=TrainingJobPhase.FAILED,
        updates=(
            _update(Cond.FAILED, TRUE, reason, message),
            _update(Cond.RUNNING, FALSE, reason, "The job has failed."),
            _update(Cond.RESTARTING, FALSE, reason, "The job has failed."),
        ),
        apply=apply,
        completion_time=now,
    )


def _stop_attempt(latest: ObservedAttempt) -> AttemptToApply | None:
    """Suspend the latest attempt if it still has pods, so a finished job holds no GPU."""
    if not latest.active_workers:
        return None
    return AttemptToApply(attempt=latest.attempt, suspend=True, carried=latest.carried)


def _restart_or_fail(spec: TrainingJobSpec, latest: ObservedAttempt, now: datetime) -> _Outcome:
    failure = latest.failure
    assert failure is not None
    policy = spec.restart_policy
    carried = _carried_forward(spec, latest, failure.kind, now)
    if failure.kind == FailureKind.PERMANENT:
        return _failed(failure.kind.value, failure.message, now, _stop_attempt(latest))
    if failure.kind == FailureKind.CRASHED and carried.failures > policy.backoff_limit:
        message = f"{failure.message}; backoffLimit {policy.backoff_limit} reached"
        return _failed("BackoffLimitExceeded", message, now, _stop_attempt(latest))
    if policy.max_preemptions is not None and carried.preemptions > policy.max_preemptions:
        message = f"{failure.message}; maxPreemptions {policy.max_preemptions} reached"
        return _failed("PreemptionLimitExceeded", message, now, _stop_attempt(latest))
    restarting = _update(
        Cond.RESTARTING,
        TRUE,
        failure.kind.value,
        f"Attempt {latest.attempt} ended: {failure.message}. Restarting the whole gang from "
        "the last checkpoint.",
    )
    if latest.active_workers:
        active = len(latest.active_workers)
        waiting = f"Waiting for {active} worker(s) of attempt {latest.attempt} to stop."
        return _Outcome(
            phase=TrainingJobPhase.RESTARTING,
            updates=(restarting, _update(Cond.RUNNING, FALSE, failure.kind.value, waiting)),
            apply=AttemptToApply(attempt=latest.attempt, suspend=True, carried=latest.carried),
            check_again_after=2.0,
        )
    next_attempt = AttemptToApply(
        attempt=latest.attempt + 1, suspend=spec.suspend, carried=carried, gang_window_start=now
    )
    return _Outcome(
        phase=TrainingJobPhase.RESTARTING,
        updates=(restarting, _update(Cond.RUNNING, FALSE, failure.kind.value, "Restarting.")),
        apply=next_attempt,
        check_again_after=1.0,
    )


def _succeeded(latest: ObservedAttempt, now: datetime) -> _Outcome:
    message = f"All {len(latest.workers)} workers of attempt {latest.attempt} exited 0."
    return _Outcome(
        phase=TrainingJobPhase.SUCCEEDED,
        updates=(
            _update(Cond.SUCCEEDED, TRUE, "AllWorkersSucceeded", message),
            _update(Cond.RUNNING, FALSE, "Completed", message),
            _update(Cond.RESTARTING, FALSE, "Completed", message),
        ),
        completion_time=latest.completion_time or now,
    )


def _keep(latest: ObservedAttempt, suspend: bool, **changes: object) -> AttemptToApply:
    base = AttemptToApply(
        attempt=latest.attempt,
        suspend=suspend,
        carried=latest.carried,
        gang_released_at=latest.gang_released_at,
        gang_window_start=latest.gang_window_start or latest.created,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _suspended(latest: ObservedAttempt, reason: str, message: str) -> _Outcome:
    return _Outcome(
        phase=TrainingJobPhase.SUSPENDED,
        updates=(
            _update(Cond.SUSPENDED, TRUE, reason, message),
            _update(Cond.RUNNING, FALSE, reason, message),
        ),
        apply=_keep(latest, suspend=True),
    )


def _gang_message(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, latest: ObservedAttempt
) -> str:
    fit = observed.nodes_that_fit
    placed = sum(w.scheduled for w in latest.workers)
    fits = f"{fit} fit" if fit is not None else f"{placed} placed"
    detail = next(
        (w.unschedulable_message for w in latest.workers if w.unschedulable_message), None
    )
    return f"needs {gang_shape(spec)}; {fits}" + (f" ({detail})" if detail else "")


def _released_gang(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, latest: ObservedAttempt, now: datetime
) -> _Outcome:
    """The gang was released for not fitting; retry once the same time has passed."""
    released_at = latest.gang_released_at
    assert released_at is not None
    timeout = spec.scheduling.schedule_timeout_seconds
    retry_at = released_at + timedelta(seconds=timeout)
    if now >= retry_at:
        return _Outcome(
            phase=TrainingJobPhase.PENDING,
            updates=(
                _update(Cond.SCHEDULED, FALSE, "Retrying", "Placing the gang again."),
                _update(Cond.SUSPENDED, FALSE, "Retrying", "Placing the gang again."),
            ),
            apply=_keep(latest, suspend=False, gang_released_at=None, gang_window_start=now),
            check_again_after=float(timeout),
        )
    message = (
        f"Released all workers after {timeout}s: {_gang_message(spec, observed, latest)}. "
        f"Retrying at {retry_at.isoformat()}."
    )
    return _Outcome(
        phase=TrainingJobPhase.PENDING,
        updates=(
            _update(Cond.SCHEDULED, FALSE, "GangTimeout", message),
            _update(Cond.RUNNING, FALSE, "GangTimeout", message),
        ),
        apply=_keep(latest, suspend=True),
        check_again_after=(retry_at - now).total_seconds(),
        wants_capacity=True,
    )


def _placing(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, latest: ObservedAttempt, now: datetime
) -> _Outcome:
    """Some workers are not placed yet: wait, or release the gang after the timeout."""
    timeout = spec.scheduling.schedule_timeout_seconds
    window_start = latest.gang_window_start or latest.created
    deadline = window_start + timedelta(seconds=timeout)
    stuck = any(w.unschedulable_message for w in latest.workers)
    message = _gang_message(spec, observed, latest)
    if spec.scheduling.gang and stuck and now >= deadline:
        if spec.scheduling.on_timeout == ScheduleTimeoutAction.FAIL:
            return _failed(
                "Unschedulable",
                f"Not placed within {timeout}s: {message}",
                now,
                _keep(latest, suspend=True),
            )
        return _Outcome(
            phase=TrainingJobPhase.PENDING,
            updates=(
                _update(
                    Cond.SCHEDULED,
                    FALSE,
                    "GangTimeout",
                    f"Released all workers after {timeout}s: {message}.",
                ),
                _update(Cond.RUNNING, FALSE, "GangTimeout", message),
            ),
            apply=_keep(latest, suspend=True, gang_released_at=now),
            check_again_after=float(timeout),
            wants_capacity=True,
        )
    reason = "Unschedulable" if stuck else "Scheduling"
    return _Outcome(
        phase=TrainingJobPhase.PENDING,
        updates=(
            _update(Cond.SCHEDULED, FALSE, reason, message),
            _update(Cond.RUNNING, FALSE, reason, "Waiting for every worker to be placed."),
        ),
        apply=_keep(latest, suspend=False),
        check_again_after=max((deadline - now).total_seconds(), 1.0) if stuck else None,
        wants_capacity=stuck,
    )


def _active(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, latest: ObservedAttempt, now: datetime
) -> _Outcome:
    if spec.suspend:
        return _suspended(latest, "SuspendedBySpec", "spec.suspend is true: all workers stopped.")
    if latest.gang_released_at is not None:
        return _released_gang(spec, observed, latest, now)
    if spec.queue_name and latest.suspended:
        return _Outcome(
            phase=TrainingJobPhase.SUSPENDED,
            updates=(
                _update(
                    Cond.SUSPENDED,
                    TRUE,
                    "Queued",
                    f"Waiting for admission by Kueue queue {spec.queue_name}.",
                ),
            ),
            apply=_keep(latest, suspend=True),
        )
    needed = spec.min_nodes  # every node of a fixed-size job; minNodes of an elastic one
    placed = sum(w.scheduled for w in latest.workers)
    if placed < needed:
        return _placing(spec, observed, latest, now)
    scheduled = _update(
        Cond.SCHEDULED, TRUE, "WorkersPlaced", f"{placed} of {len(latest.workers)} workers placed."
    )
    not_suspended = _update(Cond.SUSPENDED, FALSE, "Running", "The job is not suspended.")
    started = sum(w.phase in (WorkerPhase.RUNNING, WorkerPhase.SUCCEEDED) for w in latest.workers)
    if started >= needed and any(w.phase == WorkerPhase.RUNNING for w in latest.workers):
        running = _update(
            Cond.RUNNING,
            TRUE,
            "WorkersRunning",
            f"{started} workers running (attempt {latest.attempt}).",
        )
        not_restarting = _update(Cond.RESTARTING, FALSE, "Running", "The gang is running.")
        return _Outcome(
            phase=TrainingJobPhase.RUNNING,
            updates=(scheduled, running, not_restarting, not_suspended),
            apply=_keep(latest, suspend=False),
            check_again_after=RUNNING_RECHECK_SECONDS,
        )
    starting = _update(
        Cond.RUNNING, FALSE, "ContainersStarting", "Workers are placed and starting."
    )
    return _Outcome(
        phase=TrainingJobPhase.PENDING,
        updates=(scheduled, starting, not_suspended),
        apply=_keep(latest, suspend=False),
    )


def _deadline_passed(spec: TrainingJobSpec, start: datetime | None, now: datetime) -> bool:
    limit = spec.active_deadline_seconds
    return limit is not None and start is not None and now >= start + timedelta(seconds=limit)


def _first_attempt(spec: TrainingJobSpec, previous: TrainingJobStatus, now: datetime) -> _Outcome:
    carried = CarriedCounts(
        failures=previous.restarts,
        preemptions=previous.preemptions,
        gpu_seconds=previous.gpu_seconds,
        start_time=previous.start_time,
    )
    attempt = previous.restarts + previous.preemptions
    suspend = spec.suspend or bool(spec.queue_name)
    message = f"Creating attempt {attempt}: {gang_shape(spec)}."
    return _Outcome(
        phase=TrainingJobPhase.SUSPENDED if spec.suspend else TrainingJobPhase.PENDING,
        updates=(_update(Cond.CREATED, FALSE, "Creating", message),),
        apply=AttemptToApply(
            attempt=attempt, suspend=suspend, carried=carried, gang_window_start=now
        ),
        check_again_after=1.0,
    )


def _outcome(
    spec: TrainingJobSpec,
    identity: JobIdentity,
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
    now: datetime,
) -> _Outcome:
    latest = observed.latest
    if latest is None:
        return _first_attempt(spec, previous, now)
    if latest.completed:
        return _succeeded(latest, now)
    start = latest.carried.start_time or latest.first_start
    if _deadline_passed(spec, start or identity.created, now):
        message = f"activeDeadlineSeconds {spec.active_deadline_seconds} passed"
        return _failed("DeadlineExceeded", message, now, _stop_attempt(latest))
    if latest.failure is not None:
        return _restart_or_fail(spec, latest, now)
    return _active(spec, observed, latest, now)


def _is_terminal(phase: TrainingJobPhase | None) -> bool:
    return phase in (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)


def _ttl_deadline(spec: TrainingJobSpec, completion: datetime | None) -> datetime | None:
    """When a finished job is deleted (None: kept)."""
    ttl = spec.ttl_seconds_after_finished
    return None if ttl is None or completion is None else completion + timedelta(seconds=ttl)


def _status(
    spec: TrainingJobSpec,
    *,
    identity: JobIdentity,
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
    outcome: _Outcome,
    now: datetime,
) -> TrainingJobStatus:
    latest = observed.latest
    conditions = set_condition(previous.conditions, accepted_update(None), identity.generation, now)
    if latest is not None:
        created = _update(
            Cond.CREATED,
            TRUE,
            "AttemptCreated",
            f"Attempt {latest.attempt} is Job {identity.name}-r{latest.attempt}.",
        )
        conditions = set_condition(conditions, created, identity.generation, now)
    for update in outcome.updates:
        conditions = set_condition(conditions, update, identity.generation, now)
    carried = latest.carried if latest else CarriedCounts()
    current_gpu_seconds = attempt_gpu_seconds(spec, latest, now) if latest else 0.0
    return previous.model_copy(
        update={
            "phase": outcome.phase,
            "conditions": conditions,
            "observed_generation": identity.generation,
            "nodes": gang_size(spec, latest),
            "gpus": gang_size(spec, latest) * spec.resources.gpus,
            "workers": worker_counts(latest),
            "restarts": carried.failures,
            "preemptions": carried.preemptions,
            "start_time": carried.start_time or (latest.first_start if latest else None),
            "completion_time": outcome.completion_time or previous.completion_time,
            "gpu_seconds": round(carried.gpu_seconds + current_gpu_seconds, 1),
        }
    )


def plan_trainingjob(
    spec: TrainingJobSpec,
    identity: JobIdentity,
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
    now: datetime,
) -> TrainingJobPlan:
    """Decide what the TrainingJob's children should be and what its status says."""
    latest = observed.latest
    if _is_terminal(previous.phase) and previous.completion_time is not None:
        until_ttl = _seconds_until_ttl(spec, previous.completion_time, now)
        return TrainingJobPlan(
            status=previous,
            apply=_stop_attempt(latest) if latest else None,
            delete_attempts=_superseded_attempts(observed),
            delete_trainingjob=until_ttl == 0.0,
            check_again_after=until_ttl,
        )
    outcome = _outcome(spec, identity, previous, observed, now)
    status = _status(
        spec, identity=identity, previous=previous, observed=observed, outcome=outcome, now=now
    )
    return TrainingJobPlan(
        status=status,
        apply=outcome.apply,
        delete_attempts=_superseded_attempts(observed),
        check_again_after=outcome.check_again_after,
        wants_capacity=outcome.wants_capacity,
    )


def _superseded_attempts(observed: ObservedTrainingJob) -> tuple[int, ...]:
    """Attempts older than the newest: a new attempt only starts once they hold nothing."""
    latest = observed.latest
    if latest is None:
        return ()
    return tuple(a.attempt for a in observed.attempts if a.attempt < latest.attempt)


def _seconds_until_ttl(
    spec: TrainingJobSpec, completion: datetime | None, now: datetime
) -> float | None:
    deadline = _ttl_deadline(spec, completion)
    return None if deadline is None else max((deadline - now).total_seconds(), 0.0)


def invalid_spec_status(
    previous: TrainingJobStatus, identity: JobIdentity, error: str, now: datetime
) -> TrainingJobStatus:
    """The status of a TrainingJob whose spec the operator cannot act on."""
    conditions = set_condition(
        previous.conditions, accepted_update(error), identity.generation, now
    )
    return previous.model_copy(
        update={
            "phase": TrainingJobPhase.FAILED,
            "conditions": conditions,
            "observed_generation": identity.generation,
        }
    )
