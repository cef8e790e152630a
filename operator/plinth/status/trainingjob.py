"""The TrainingJob planner: spec, previous status and observed children in; actions and status out.

Pure and level-based: given the same inputs it returns the same plan, so a reconcile killed
at any point and run again converges. The plan says which attempt (an Indexed Job) should
exist and whether it is suspended, which older attempts to delete, the status to write and
when to look again; what it must remember about an attempt (when its gang first ran, how it
ended) it stamps on that attempt's Job, so the next reconcile reads it back instead of
trusting the previous status.

Attempts. A worker failure ends the attempt and the next one restarts every worker from the
last checkpoint. An attempt also ends when a worker's node stops reporting for longer than
`restartPolicy.nodeLostTimeoutSeconds` (a preemption: the gang moves without waiting for that
pod to confirm its end), and when a job that has started is suspended (resuming starts a new
attempt; neither a failure nor a preemption). An elastic job's member that leaves is a
membership change, not the end of the attempt, while minNodes remain and at most
`elastic.maxRestarts` have left; the member is replaced when it can be placed.

Status. Every counter is recomputed from the observations at every reconcile, final states
included; within an attempt the phase never goes back to Pending once the gang has run, and
Running is claimed only while workers run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from plinth.api.v1alpha1 import (
    TrainingJobConditionType,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
)
from plinth.api.v1alpha1.common import ConditionStatus
from plinth.api.v1alpha1.trainingjob import ScheduleTimeoutAction
from plinth.api.wellknown import (
    ANNOTATION_TRIAL_STOPPED,
    GPU_RESOURCE,
    LABEL_AUTOMLSWEEP,
    OwnerMeta,
)
from plinth.status.acceptance import accepted_update
from plinth.status.conditions import ConditionUpdate, set_condition
from plinth.status.gang_admission import ADMITTED, QUOTA_REASONS, Admission, Verdict
from plinth.status.placement import container_problem, unschedulable_cause
from plinth.status.trainingjob_facts import (
    RUNNING_RECHECK_SECONDS,
    Facts,
    active_seconds,
    attempt_active_seconds,
    clock_running,
    current_gpu_seconds,
    facts_of,
    first_run,
    gang_size,
    member_losses,
    needed,
    regroup_deadline,
    unbanked,
    worker_counts,
)
from plinth.status.trainingjob_observed import (
    AttemptEnd,
    AttemptFailure,
    CarriedCounts,
    FailureKind,
    ObservedAttempt,
    ObservedTrainingJob,
    WorkerPhase,
)

#: How often to look again while a stopped attempt's workers are going.
STOPPING_RECHECK_SECONDS = 2.0
#: How often a gang waiting for admission is judged again: one that fits once other work
#: ends, and one that can never fit the cluster as it is (nodes may be added).
ADMISSION_RECHECK_SECONDS = {Verdict.WAIT: 5.0, Verdict.NEVER: 30.0}
#: Seconds the Job controller gets to create an unsuspended attempt's next pod before a
#: missing one counts as not placed (a ResourceQuota may refuse it), counted from the
#: admission or from the newest worker created, whichever is later: in a burst of hundreds
#: of jobs the controller manager creates pods at its client's rate (tens per second) and
#: a gang's workers appear one by one over many seconds (measured at 200 x 4 and 1,000 x 8),
#: which is progress, not a refusal.
POD_CREATION_GRACE_SECONDS = 15.0
#: The reason of a gang whose workers are placed and whose containers are starting.
STARTING = "ContainersStarting"
#: The reason of a gang whose pods the Job controller has not created, no cause found.
WORKERS_NOT_CREATED = "WorkersNotCreated"
#: The reason of a job held or stopped by spec.suspend (a trial its sweep stopped names the
#: sweep instead: `_stopped_by_sweep`).
SUSPENDED_BY_SPEC = "SuspendedBySpec"

Cond = TrainingJobConditionType
TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE
SUCCEEDED = "Succeeded"


@dataclass(frozen=True)
class AttemptToApply:
    """The attempt that should exist now, and how (what its Job carries and is stamped with)."""

    attempt: int
    suspend: bool
    carried: CarriedCounts
    gang_released_at: datetime | None = None
    gang_window_start: datetime | None = None
    gang_started_at: datetime | None = None
    active_since: datetime | None = None
    ended: AttemptEnd | None = None
    banked_gpu_seconds: float = 0.0
    banked_at: datetime | None = None


@dataclass(frozen=True)
class TrainingJobPlan:
    """What the reconcile should do."""

    status: TrainingJobStatus
    apply: AttemptToApply | None = None
    delete_attempts: tuple[int, ...] = ()
    delete_trainingjob: bool = False
    check_again_after: float | None = None
    #: Whether the planner wants the capacity read: to admit a gang, or to say how many
    #: workers fit (a gang is stuck).
    wants_capacity: bool = False
    #: With `wants_capacity`: whether this plan may admit a gang onto it (False: it only
    #: explains one that waits).
    admits: bool = True
    #: Nodes the planner wants read: those of workers whose node may have gone silent.
    wants_nodes: tuple[str, ...] = ()
    #: The gang is being created, placed and started, nothing in its way (`Plan.settling`).
    settling: bool = False


@dataclass(frozen=True)
class _Outcome:
    """The phase, the conditions to set, and the actions, before they become a status."""

    phase: TrainingJobPhase
    updates: tuple[ConditionUpdate, ...]
    apply: AttemptToApply | None = None
    check_again_after: float | None = None
    wants_capacity: bool = False
    admits: bool = True
    completion_time: datetime | None = None
    #: A step of a gang starting with nothing in its way (`TrainingJobPlan.settling`).
    settling: bool = False


def _update(kind: Cond, status: ConditionStatus, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(type=kind.value, status=status, reason=reason, message=message)


def _sooner(*delays: float | None) -> float | None:
    given = [d for d in delays if d is not None]
    return min(given) if given else None


def gang_shape(spec: TrainingJobSpec) -> str:
    """E.g. '4 nodes x 8 nvidia.com/gpu' (or '2 nodes' without GPUs)."""
    nodes = f"{spec.max_nodes} node{'s' if spec.max_nodes != 1 else ''}"
    return f"{nodes} x {spec.resources.gpus} {GPU_RESOURCE}" if spec.resources.gpus else nodes


# --------------------------------------------------------------------------------------
# Keeping, stopping and replacing the attempt
# --------------------------------------------------------------------------------------


def _bank(facts: Facts, suspend: bool) -> tuple[float, datetime | None]:
    """What the attempt's Job says of GPU time its deleted pods held. Suspending an attempt
    in place deletes its pods but keeps the attempt, so their GPU time is banked first: when
    the attempt is being suspended, or is suspended and has pods not banked yet that ran."""
    latest = facts.attempt
    fresh = [w for w in unbanked(latest) if w.start_time is not None]
    if suspend and latest.ended is None and (not latest.suspended or fresh):
        return current_gpu_seconds(facts), facts.now
    return latest.banked_gpu_seconds, latest.banked_at


def _evidence_kept(facts: Facts, suspend: bool, changes: Mapping[str, object]) -> bool:
    """Whether the gang's start need not be stamped on its Job now: the job's first run
    (status.startTime records it too) with every worker still running, so the pods show it,
    and the attempt not being suspended or ended (which is written to the Job anyway). In a
    burst of new jobs a stamp as each gang starts would be one more write per job; it is
    written as soon as a worker stops, is lost or is going, while its pod still shows it."""
    members = facts.members
    return (
        first_run(facts.attempt)
        and not suspend
        and "ended" not in changes
        and not facts.lost
        and len(members) >= needed(facts.spec)
        and all(m.phase == WorkerPhase.RUNNING and m.deleted_at is None for m in members)
    )


def _keep(facts: Facts, suspend: bool, **changes: object) -> AttemptToApply:
    """The newest attempt as it is, with what was learnt about it stamped."""
    latest = facts.attempt
    banked, banked_at = _bank(facts, suspend)
    unstamped = _evidence_kept(facts, suspend, changes)
    base = AttemptToApply(
        attempt=latest.attempt,
        suspend=suspend,
        carried=latest.carried,
        gang_released_at=latest.gang_released_at,
        gang_window_start=latest.gang_window_start or latest.created,
        gang_started_at=latest.gang_started_at if unstamped else facts.gang_started_at,
        active_since=latest.active_since if unstamped else facts.active_since,
        ended=latest.ended,
        banked_gpu_seconds=banked,
        banked_at=banked_at,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _stop(facts: Facts, end: AttemptEnd, *, suspend: bool = True) -> AttemptToApply:
    """The attempt stamped with its end and, if it still has pods, suspended (so that an
    ended attempt holds no GPU)."""
    latest = facts.attempt
    stop = suspend and bool(latest.active_workers)
    return _keep(facts, suspend=latest.suspended or stop, ended=end)


def _end(facts: Facts, reason: str, message: str, now: datetime) -> AttemptEnd:
    """The stamp of an attempt ending now (or the one it already carries)."""
    latest = facts.attempt
    return latest.ended or AttemptEnd(reason, message, now, current_gpu_seconds(facts))


def _carried_forward(facts: Facts, kind: FailureKind, now: datetime) -> CarriedCounts:
    latest = facts.attempt
    carried = latest.carried
    return CarriedCounts(
        failures=carried.failures + (kind == FailureKind.CRASHED),
        preemptions=carried.preemptions + (kind == FailureKind.PREEMPTED),
        gpu_seconds=round(carried.gpu_seconds + current_gpu_seconds(facts), 1),
        start_time=facts.start_time,
        active_seconds=round(carried.active_seconds + attempt_active_seconds(facts, now), 1),
    )


def _next_attempt(facts: Facts, kind: FailureKind, now: datetime) -> AttemptToApply:
    """The attempt after the newest: numbered on, counters carried, the deadline clock
    running from now if the job has started and the new attempt is not suspended. It is
    created suspended while Plinth admits gangs itself: admitted on the next reconcile, when
    the whole gang fits."""
    spec = facts.spec
    carried = _carried_forward(facts, kind, now)
    suspend = spec.suspend or bool(spec.queue_name) or admission_applies(spec)
    return AttemptToApply(
        attempt=facts.attempt.attempt + 1,
        suspend=suspend,
        carried=carried,
        gang_window_start=now,
        active_since=now if carried.start_time is not None and not suspend else None,
    )


def admission_applies(spec: TrainingJobSpec) -> bool:
    """Whether Plinth judges the gang before its pods exist: a GPU gang that neither Kueue
    (queueName) admits nor spec.suspend holds."""
    return (
        bool(spec.resources.gpus)
        and spec.scheduling.gang
        and not spec.queue_name
        and not spec.suspend
    )


def _gate(spec: TrainingJobSpec, observed: ObservedTrainingJob) -> Admission | None:
    """The admission of a new gang: judged from the cluster's capacity (None: not read yet)."""
    return observed.admission if admission_applies(spec) else ADMITTED


def initial_attempt(
    spec: TrainingJobSpec, previous: TrainingJobStatus, window_start: datetime | None
) -> AttemptToApply:
    """The attempt a job without one starts with: numbered after what status already counts
    (its Jobs may have been deleted), suspended by spec.suspend or until Kueue admits it."""
    carried = CarriedCounts(
        failures=previous.restarts,
        preemptions=previous.preemptions,
        gpu_seconds=previous.gpu_seconds,
        start_time=previous.start_time,
    )
    return AttemptToApply(
        attempt=previous.restarts + previous.preemptions,
        suspend=spec.suspend or bool(spec.queue_name),
        carried=carried,
        gang_window_start=window_start,
    )


# --------------------------------------------------------------------------------------
# Final outcomes
# --------------------------------------------------------------------------------------


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


def _fail(facts: Facts, reason: str, message: str, now: datetime) -> _Outcome:
    """Fail the job, stopping the attempt."""
    return _failed(reason, message, now, _stop(facts, _end(facts, reason, message, now)))


def _all_succeeded(facts: Facts) -> bool:
    """Every node rank exited 0 (index 0 for an elastic job, as its Job's successPolicy says)."""
    latest, spec = facts.attempt, facts.spec
    if latest.completed or (latest.ended is not None and latest.ended.reason == SUCCEEDED):
        return True
    done = {m.index for m in facts.succeeded}
    return 0 in done if spec.elastic else len(done) == spec.max_nodes


def _succeeded(facts: Facts, now: datetime) -> _Outcome:
    latest = facts.attempt
    finished = [m.finish_time for m in facts.succeeded if m.finish_time is not None]
    completion = latest.completion_time or (max(finished) if finished else now)
    message = f"All {len(facts.members)} workers of attempt {latest.attempt} exited 0."
    if facts.spec.elastic:
        message = f"Worker 0 of attempt {latest.attempt} exited 0."
    end = _end(facts, SUCCEEDED, message, completion)
    return _Outcome(
        phase=TrainingJobPhase.SUCCEEDED,
        updates=(
            _update(Cond.SUCCEEDED, TRUE, "AllWorkersSucceeded", message),
            _update(Cond.RUNNING, FALSE, "Completed", message),
            _update(Cond.RESTARTING, FALSE, "Completed", message),
        ),
        apply=_stop(facts, end, suspend=False),
        completion_time=end.at,
    )


# --------------------------------------------------------------------------------------
# How an attempt ends
# --------------------------------------------------------------------------------------


def _elastic_verdict(facts: Facts, now: datetime) -> AttemptFailure | None:
    """An elastic attempt ends when worker 0 (the c10d rendezvous host) leaves, when more
    members left than elastic.maxRestarts, or when fewer than minNodes remain and no
    replacement was placed within scheduleTimeoutSeconds; any other loss is a membership
    change the survivors carry on through."""
    spec, latest = facts.spec, facts.attempt
    assert spec.elastic is not None
    if latest.suspended:
        return None  # stopped on purpose (a gang release, a queue): nobody left
    host = member_losses(facts, 0)
    if host.total:
        return AttemptFailure(host.kind, "worker 0 (the rendezvous host) left the gang")
    losses = member_losses(facts)
    limit = spec.elastic.max_restarts
    if losses.total > limit:
        message = f"{losses.total} members left the gang, more than elastic.maxRestarts {limit}"
        return AttemptFailure(losses.kind, message)
    if facts.started and len(facts.placed) < needed(spec) and now >= regroup_deadline(facts):
        timeout = spec.scheduling.schedule_timeout_seconds
        message = (
            f"only {len(facts.placed)} of minNodes {needed(spec)} members remained for {timeout}s"
        )
        return AttemptFailure(losses.kind if losses.total else FailureKind.PREEMPTED, message)
    return None


def _verdict(facts: Facts) -> AttemptFailure | None:
    """Why the newest attempt ended, if it did: the Job controller's verdict, a lost node,
    or a suspension of a job that has started."""
    spec, latest = facts.spec, facts.attempt
    if latest.failure is not None:
        return latest.failure
    if facts.lost and spec.elastic is None:
        worker, why = min(facts.lost.items(), key=lambda item: item[0].index)
        return AttemptFailure(FailureKind.PREEMPTED, f"worker {worker.index} lost: {why}")
    if spec.suspend and facts.job_started:
        message = f"spec.suspend stopped attempt {latest.attempt}"
        return AttemptFailure(FailureKind.SUSPENDED, message)
    if spec.queue_name and latest.suspended and facts.started:
        message = f"Kueue suspended attempt {latest.attempt} (queue {spec.queue_name})"
        return AttemptFailure(FailureKind.PREEMPTED, message)
    return None


def _end_of(facts: Facts, now: datetime) -> AttemptEnd | None:
    """The newest attempt's end: stamped earlier, or judged now."""
    if facts.attempt.ended is not None:
        return facts.attempt.ended
    failure = facts.attempt.failure
    permanent = failure is not None and failure.kind == FailureKind.PERMANENT
    if facts.spec.elastic is not None and not permanent:
        failure = _elastic_verdict(facts, now) or failure
    failure = failure or _verdict(facts)
    if failure is None:
        return None
    return _end(facts, failure.kind.value, failure.message, now)


def _after_end(facts: Facts, end: AttemptEnd, now: datetime) -> _Outcome:
    """Fail the job, or stop the attempt and start the next once its workers are gone."""
    latest = facts.attempt
    failure = end.failure
    if failure is None:  # a final verdict stamped before its status was written
        return _fail(facts, end.reason, end.message, now)
    final = _final_failure(facts, failure, now)
    if final is not None:
        return final
    if failure.kind == FailureKind.SUSPENDED:
        return _after_suspension(facts, end, now)
    restarting = _update(
        Cond.RESTARTING,
        TRUE,
        failure.kind.value,
        f"Attempt {latest.attempt} ended: {failure.message}. Restarting the whole gang from "
        "the last checkpoint.",
    )
    waiting = _still_stopping(facts)
    if waiting:
        message = f"Waiting for {waiting} worker(s) of attempt {latest.attempt} to stop."
        return _Outcome(
            phase=TrainingJobPhase.RESTARTING,
            updates=(restarting, _update(Cond.RUNNING, FALSE, failure.kind.value, message)),
            apply=_stop(facts, end),
            check_again_after=STOPPING_RECHECK_SECONDS,
        )
    return _Outcome(
        phase=TrainingJobPhase.RESTARTING,
        updates=(restarting, _update(Cond.RUNNING, FALSE, failure.kind.value, "Restarting.")),
        apply=_next_attempt(facts, failure.kind, now),
        check_again_after=1.0,
    )


def _final_failure(facts: Facts, failure: AttemptFailure, now: datetime) -> _Outcome | None:
    """The job fails: a permanent exit code, or the restart policy's limits reached."""
    policy = facts.spec.restart_policy
    carried = _carried_forward(facts, failure.kind, now)
    if failure.kind == FailureKind.PERMANENT:
        return _fail(facts, failure.kind.value, failure.message, now)
    if failure.kind == FailureKind.CRASHED and carried.failures > policy.backoff_limit:
        message = f"{failure.message}; backoffLimit {policy.backoff_limit} reached"
        return _fail(facts, "BackoffLimitExceeded", message, now)
    if policy.max_preemptions is not None and carried.preemptions > policy.max_preemptions:
        message = f"{failure.message}; maxPreemptions {policy.max_preemptions} reached"
        return _fail(facts, "PreemptionLimitExceeded", message, now)
    return None


def _still_stopping(facts: Facts) -> int:
    """Workers of an ended attempt the next one waits for: every worker that may hold its
    node, except those on lost nodes (they never confirm their end) and except under Kueue,
    which admits the next attempt only once the old one's quota is free."""
    if facts.spec.queue_name:
        return 0
    return sum(w not in facts.lost for w in facts.attempt.active_workers)


def _after_suspension(facts: Facts, end: AttemptEnd, now: datetime) -> _Outcome:
    """A started job suspended: its attempt stays stopped until spec.suspend is false again,
    then the next attempt starts from the last checkpoint (counting nothing)."""
    latest = facts.attempt
    if facts.spec.suspend:
        message = (
            f"spec.suspend is true: attempt {latest.attempt} stopped, the deadline paused; "
            f"resuming starts attempt {latest.attempt + 1} from the last checkpoint."
        )
        return _suspended(_stop(facts, end), SUSPENDED_BY_SPEC, message)
    resumed = _update(Cond.SUSPENDED, FALSE, "Resumed", "spec.suspend is false.")
    waiting = _still_stopping(facts)
    if waiting:
        message = f"Resuming: waiting for {waiting} worker(s) of attempt {latest.attempt} to stop."
        return _Outcome(
            phase=TrainingJobPhase.PENDING,
            updates=(resumed, _update(Cond.RUNNING, FALSE, "Resuming", message)),
            apply=_stop(facts, end),
            check_again_after=STOPPING_RECHECK_SECONDS,
        )
    message = f"Resuming with attempt {latest.attempt + 1} from the last checkpoint."
    return _Outcome(
        phase=TrainingJobPhase.PENDING,
        updates=(resumed, _update(Cond.RUNNING, FALSE, "Resuming", message)),
        apply=_next_attempt(facts, FailureKind.SUSPENDED, now),
        check_again_after=1.0,
    )


# --------------------------------------------------------------------------------------
# An attempt that has not ended
# --------------------------------------------------------------------------------------


def _stopped_by_sweep(outcome: _Outcome, identity: OwnerMeta) -> _Outcome:
    """A trial its AutoMLSweep stopped (suspended, the reason in its annotation) says so:
    reason StoppedBySweep and the sweep's words, instead of a bare spec.suspend."""
    why = identity.annotations.get(ANNOTATION_TRIAL_STOPPED)
    if not why or outcome.phase != TrainingJobPhase.SUSPENDED:
        return outcome
    sweep = identity.labels.get(LABEL_AUTOMLSWEEP, "its AutoMLSweep")
    told = tuple(
        replace(u, reason="StoppedBySweep", message=f"Trial of {sweep}, {why}. {u.message}")
        if u.reason == SUSPENDED_BY_SPEC
        else u
        for u in outcome.updates
    )
    return replace(outcome, updates=told)


def _suspended(apply: AttemptToApply, reason: str, message: str) -> _Outcome:
    """Suspended, and so neither running, restarting nor placed (what those conditions said
    about the attempt before no longer holds once its workers are gone)."""
    return _Outcome(
        phase=TrainingJobPhase.SUSPENDED,
        updates=(
            _update(Cond.SUSPENDED, TRUE, reason, message),
            _update(Cond.RUNNING, FALSE, reason, message),
            _update(Cond.RESTARTING, FALSE, reason, message),
            _update(Cond.SCHEDULED, FALSE, reason, message),
        ),
        apply=apply,
    )


def _gang_message(spec: TrainingJobSpec, observed: ObservedTrainingJob, facts: Facts) -> str:
    fit = observed.workers_that_fit
    fits = f"{fit} fit" if fit is not None else f"{len(facts.placed)} placed"
    detail = next((m.unschedulable_message for m in facts.live if m.unschedulable_message), None)
    return f"needs {gang_shape(spec)}; {fits}" + (f" ({detail})" if detail else "")


def _awaiting_admission(apply: AttemptToApply, admission: Admission) -> _Outcome:
    """No pod of the attempt exists (its Job is suspended) until the whole gang fits."""
    return _Outcome(
        phase=TrainingJobPhase.PENDING,
        updates=(
            _update(Cond.SCHEDULED, FALSE, admission.reason, admission.message),
            _update(
                Cond.RUNNING,
                FALSE,
                admission.reason,
                f"No worker is created until this is resolved: {admission.reason}.",
            ),
        ),
        apply=apply,
        check_again_after=ADMISSION_RECHECK_SECONDS.get(admission.verdict),
    )


def _admit(facts: Facts, observed: ObservedTrainingJob, now: datetime) -> _Outcome:
    """An attempt held for admission: create its whole gang once it fits; under
    onTimeout: fail, fail when it has not fitted within scheduleTimeoutSeconds."""
    spec, latest = facts.spec, facts.attempt
    admission = observed.admission
    if admission is None:
        return _Outcome(phase=TrainingJobPhase.PENDING, updates=(), wants_capacity=True)
    timeout = spec.scheduling.schedule_timeout_seconds
    if admission.admitted:
        message = f"The whole gang fits: creating {gang_shape(spec)}."
        return _Outcome(
            phase=TrainingJobPhase.PENDING,
            updates=(
                _update(Cond.SCHEDULED, FALSE, "Admitted", message),
                _update(Cond.RUNNING, FALSE, "Admitted", message),
            ),
            apply=_keep(facts, suspend=False, gang_window_start=now),
            check_again_after=float(timeout),
            settling=True,
        )
    deadline = (latest.gang_window_start or latest.created) + timedelta(seconds=timeout)
    if spec.scheduling.on_timeout == ScheduleTimeoutAction.FAIL:
        if now >= deadline:
            message = f"Not admitted within {timeout}s: {admission.message}"
            return _fail(facts, admission.reason, message, now)
        outcome = _awaiting_admission(_keep(facts, suspend=True), admission)
        left = (deadline - now).total_seconds()
        return replace(outcome, check_again_after=_sooner(outcome.check_again_after, left))
    return _awaiting_admission(_keep(facts, suspend=True), admission)


def _released_gang(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, facts: Facts, now: datetime
) -> _Outcome:
    """The gang was released for not fitting; retry once the same time has passed."""
    released_at = facts.attempt.gang_released_at
    assert released_at is not None
    timeout = spec.scheduling.schedule_timeout_seconds
    retry_at = released_at + timedelta(seconds=timeout)
    admission = _gate(spec, observed)
    if now >= retry_at and admission is None:
        return _Outcome(phase=TrainingJobPhase.PENDING, updates=(), wants_capacity=True)
    if now >= retry_at and admission is not None and not admission.admitted:
        return _awaiting_admission(_keep(facts, suspend=True, gang_released_at=None), admission)
    if now >= retry_at:
        return _Outcome(
            phase=TrainingJobPhase.PENDING,
            updates=(
                _update(Cond.SCHEDULED, FALSE, "Retrying", "Placing the gang again."),
                _update(Cond.SUSPENDED, FALSE, "Retrying", "Placing the gang again."),
                _update(Cond.RUNNING, FALSE, "Retrying", "Placing the gang again."),
            ),
            apply=_keep(facts, suspend=False, gang_released_at=None, gang_window_start=now),
            check_again_after=float(timeout),
        )
    message = (
        f"Released all workers after {timeout}s: {_gang_message(spec, observed, facts)}. "
        f"Retrying at {retry_at.isoformat()}."
    )
    return _Outcome(
        phase=TrainingJobPhase.PENDING,
        updates=(
            _update(Cond.SCHEDULED, FALSE, "GangTimeout", message),
            _update(Cond.RUNNING, FALSE, "GangTimeout", message),
        ),
        apply=_keep(facts, suspend=True),
        check_again_after=(retry_at - now).total_seconds(),
        wants_capacity=True,
    )


def _window_start(spec: TrainingJobSpec, latest: ObservedAttempt, now: datetime) -> datetime:
    """When the attempt's time to place its gang began: when Plinth admitted it, or, under
    Kueue, when Kueue admitted it (the Job's startTime, reset at every unsuspension; now,
    when the Job controller has not set it yet), so time spent queued is not counted."""
    start = latest.gang_window_start or latest.created
    if spec.queue_name:
        return max(start, latest.started_at or now)
    return start


def _placement(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, facts: Facts, missing: bool
) -> tuple[str, str]:
    """The reason and message of a gang not yet placed, naming the real cause: a worker's
    own (a missing volume, no matching node), the namespace's quota, pods the Job
    controller could not create, or else the cluster's GPUs."""
    for member in facts.live:
        problem = unschedulable_cause(member.unschedulable_message or "")
        if problem is not None:
            return problem.reason, f"worker {member.index} cannot be placed: {problem.message}"
    admission = observed.admission
    if admission is not None and admission.reason in QUOTA_REASONS:
        return admission.reason, admission.message
    if missing:
        created = len(facts.live) + len(facts.succeeded)
        message = (
            f"{created} of {needed(spec)} workers created; the Job controller has not "
            f"created the others ({_gang_message(spec, observed, facts)})"
        )
        return WORKERS_NOT_CREATED, message
    stuck = any(m.unschedulable_message for m in facts.live)
    return ("Unschedulable" if stuck else "Scheduling"), _gang_message(spec, observed, facts)


def _admitted_by_queue(spec: TrainingJobSpec) -> tuple[ConditionUpdate, ...]:
    if not spec.queue_name:
        return ()
    message = f"Admitted by Kueue queue {spec.queue_name}."
    return (_update(Cond.SUSPENDED, FALSE, "Admitted", message),)


def _placing(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, facts: Facts, now: datetime
) -> _Outcome:
    """Some workers are not placed yet: wait, or release the gang after the timeout."""
    latest = facts.attempt
    timeout = spec.scheduling.schedule_timeout_seconds
    window_start = _window_start(spec, latest, now)
    deadline = window_start + timedelta(seconds=timeout)
    created = len(facts.live) + len(facts.succeeded)
    newest = max((m.created for m in facts.members if m.created), default=window_start)
    grace = max(window_start, newest) + timedelta(seconds=POD_CREATION_GRACE_SECONDS)
    missing = created < needed(spec) and now >= grace
    stuck = missing or any(m.unschedulable_message for m in facts.live)
    reason, message = _placement(spec, observed, facts, missing)
    if spec.scheduling.gang and stuck and now >= deadline:
        if spec.scheduling.on_timeout == ScheduleTimeoutAction.FAIL:
            failed_reason = (
                reason if reason not in ("Scheduling", "Unschedulable") else "Unschedulable"
            )
            failed = _fail(facts, failed_reason, f"Not placed within {timeout}s: {message}", now)
            return replace(failed, updates=(*failed.updates, *_admitted_by_queue(spec)))
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
            apply=_keep(facts, suspend=True, gang_released_at=now),
            check_again_after=float(timeout),
            wants_capacity=True,
            admits=False,
        )
    if stuck:
        check_again: float | None = max((deadline - now).total_seconds(), 1.0)
    elif created < needed(spec):
        check_again = max((grace - now).total_seconds(), 1.0)
    else:
        check_again = None
    return _Outcome(
        phase=TrainingJobPhase.PENDING,
        updates=(
            _update(Cond.SCHEDULED, FALSE, reason, message),
            _update(Cond.RUNNING, FALSE, reason, "Waiting for every worker to be placed."),
            *_admitted_by_queue(spec),
        ),
        apply=_keep(facts, suspend=False),
        check_again_after=check_again,
        wants_capacity=stuck,
        admits=False,
        # pods not created for no cause found (no quota, no scheduler verdict): in a burst
        # the controller manager is still creating them; told within the status hold
        settling=not stuck or reason == WORKERS_NOT_CREATED,
    )


def _provisional(facts: Facts) -> tuple[str, str]:
    """What a fixed-size gang's stopped worker will likely be judged (the condition's reason
    from the start, so the restart's Event names it): a disruption, a permanent code, a crash."""
    failed = next((m for m in facts.members if m.phase == WorkerPhase.FAILED), None)
    if failed is None:
        return "WorkersStopped", ""
    if failed.disrupted:
        kind = FailureKind.PREEMPTED
    elif failed.exit_code in facts.spec.restart_policy.permanent_exit_codes:
        kind = FailureKind.PERMANENT
    else:
        kind = FailureKind.CRASHED
    return kind.value, f" (worker {failed.index} exited with code {failed.exit_code})"


def _not_running(facts: Facts, now: datetime) -> _Outcome:
    """The gang has run in this attempt but does not run now: an elastic job regrouping
    (members left, replacements not placed or not started yet), or workers that stopped and
    await the Job controller's verdict. Never Pending again within the attempt."""
    spec, latest = facts.spec, facts.attempt
    running, want = len(facts.running), needed(spec)
    check: float | None = None
    if spec.elastic is not None and len(facts.placed) < want:
        until = regroup_deadline(facts)
        reason = "MembersLost"
        message = (
            f"{len(facts.placed)} of minNodes {want} members remain in attempt "
            f"{latest.attempt}; waiting until {until.isoformat()} for replacements to be placed."
        )
        check = max((until - now).total_seconds(), 1.0)
    elif spec.elastic is not None:
        reason = "Rendezvous"
        message = f"{running} of minNodes {want} members running; the others are starting."
    else:
        reason, why = _provisional(facts)
        message = (
            f"{running} of {want} workers of attempt {latest.attempt} running{why}; waiting "
            "for the Job controller's verdict."
        )
    return _Outcome(
        phase=TrainingJobPhase.RESTARTING,
        updates=(
            _update(Cond.RUNNING, FALSE, reason, message),
            _update(Cond.RESTARTING, TRUE, reason, message),
        ),
        apply=_keep(facts, suspend=False),
        check_again_after=check,
    )


def _held(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, facts: Facts, now: datetime
) -> _Outcome | None:
    """An attempt that does not run on purpose: suspended before the job started, its gang
    released for not fitting, or waiting for Kueue's admission."""
    latest = facts.attempt
    if spec.suspend:  # a job that has not started: only held
        message = "spec.suspend is true: the job is held before it starts."
        return _suspended(_keep(facts, suspend=True), SUSPENDED_BY_SPEC, message)
    if latest.gang_released_at is not None:
        return _released_gang(spec, observed, facts, now)
    if spec.queue_name and latest.suspended:
        message = f"Waiting for admission by Kueue queue {spec.queue_name}."
        return _Outcome(
            phase=TrainingJobPhase.SUSPENDED,
            updates=(
                _update(Cond.SUSPENDED, TRUE, "Queued", message),
                _update(Cond.RUNNING, FALSE, "Queued", message),
            ),
            apply=_keep(facts, suspend=True),
        )
    if latest.suspended and latest.ended is None and admission_applies(spec):
        return _admit(facts, observed, now)
    return None


def _starting(facts: Facts) -> ConditionUpdate:
    """Workers placed, the gang not yet running: starting, or a container that cannot
    start (an image that cannot be pulled, a missing Secret or ConfigMap key)."""
    for member in facts.live:
        problem = container_problem(member.waiting_reason, member.waiting_message)
        if problem is not None:
            message = f"worker {member.index} cannot start: {problem.message}"
            return _update(Cond.RUNNING, FALSE, problem.reason, message)
    return _update(Cond.RUNNING, FALSE, STARTING, "Workers are placed and starting.")


def _active(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, facts: Facts, now: datetime
) -> _Outcome:
    held = _held(spec, observed, facts, now)
    if held is not None:
        return held
    latest = facts.attempt
    placed, want = len(facts.placed) + len(facts.succeeded), needed(spec)
    if not facts.started and placed < want:
        return _placing(spec, observed, facts, now)
    scheduled = _update(
        Cond.SCHEDULED, TRUE, "WorkersPlaced", f"{placed} of {len(facts.members)} workers placed."
    )
    not_suspended = _update(Cond.SUSPENDED, FALSE, "Running", "The job is not suspended.")
    if not facts.started:
        starting = _starting(facts)
        return _Outcome(
            phase=TrainingJobPhase.PENDING,
            updates=(scheduled, starting, not_suspended),
            apply=_keep(facts, suspend=False),
            settling=starting.reason == STARTING,
        )
    running = len(facts.running)
    if running and running + len(facts.succeeded) >= want:
        message = f"{running} workers running (attempt {latest.attempt})."
        return _Outcome(
            phase=TrainingJobPhase.RUNNING,
            updates=(
                scheduled,
                _update(Cond.RUNNING, TRUE, "WorkersRunning", message),
                _update(Cond.RESTARTING, FALSE, "Running", "The gang is running."),
                not_suspended,
            ),
            apply=_keep(facts, suspend=False),
            check_again_after=RUNNING_RECHECK_SECONDS,
        )
    return _not_running(facts, now)


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------


def _first_attempt(
    spec: TrainingJobSpec,
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
    now: datetime,
) -> _Outcome:
    phase = TrainingJobPhase.SUSPENDED if spec.suspend else TrainingJobPhase.PENDING
    admission = _gate(spec, observed)
    if admission is None:
        return _Outcome(phase=phase, updates=(), wants_capacity=True)
    apply = initial_attempt(spec, previous, now)
    message = f"Creating attempt {apply.attempt}: {gang_shape(spec)}."
    if not admission.admitted:
        return _awaiting_admission(replace(apply, suspend=True), admission)
    return _Outcome(
        phase=phase,
        updates=(_update(Cond.RUNNING, FALSE, "Creating", message),),
        apply=apply,
        check_again_after=1.0,
        settling=not apply.suspend,
    )


def _deadline(facts: Facts, now: datetime) -> tuple[bool, float | None]:
    """Whether the time spent started passed activeDeadlineSeconds; else when it will."""
    limit = facts.spec.active_deadline_seconds
    if limit is None:
        return False, None
    used = active_seconds(facts, now)
    if used >= limit:
        return True, None
    return False, (limit - used if clock_running(facts) else None)


def _outcome(
    spec: TrainingJobSpec,
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
    facts: Facts | None,
    now: datetime,
) -> _Outcome:
    if facts is None:
        return _first_attempt(spec, previous, observed, now)
    if _all_succeeded(facts):
        return _succeeded(facts, now)
    passed, deadline_in = _deadline(facts, now)
    if passed:
        message = f"activeDeadlineSeconds {spec.active_deadline_seconds} passed"
        return _fail(facts, "DeadlineExceeded", message, now)
    end = _end_of(facts, now)
    outcome = _after_end(facts, end, now) if end else _active(spec, observed, facts, now)
    check = _sooner(outcome.check_again_after, deadline_in, facts.health.recheck_after)
    return replace(outcome, check_again_after=check)


def _counters(
    spec: TrainingJobSpec, facts: Facts | None, carried: CarriedCounts, now: datetime
) -> dict[str, object]:
    """Every counter of the status, from the observations alone."""
    gpu = current_gpu_seconds(facts) if facts else 0.0
    changes = member_losses(facts).total if facts and spec.elastic else 0
    nodes = gang_size(facts) if facts else (0 if spec.elastic else spec.max_nodes)
    return {
        "nodes": nodes,
        "gpus": nodes * spec.resources.gpus,
        "workers": worker_counts(facts),
        "restarts": carried.failures,
        "preemptions": carried.preemptions,
        "membership_changes": changes,
        "start_time": facts.start_time if facts else carried.start_time,
        "gpu_seconds": round(carried.gpu_seconds + gpu, 1),
    }


def _status(
    spec: TrainingJobSpec,
    *,
    identity: OwnerMeta,
    previous: TrainingJobStatus,
    facts: Facts | None,
    outcome: _Outcome,
    now: datetime,
) -> TrainingJobStatus:
    conditions = set_condition(previous.conditions, accepted_update(None), identity.generation, now)
    # The status is written after the plan's writes: an attempt applied now exists then.
    attempt = facts.attempt.attempt if facts else (outcome.apply.attempt if outcome.apply else None)
    if attempt is not None:
        created = _update(
            Cond.CREATED,
            TRUE,
            "AttemptCreated",
            f"Attempt {attempt} is Job {identity.name}-r{attempt}.",
        )
        conditions = set_condition(conditions, created, identity.generation, now)
    for update in outcome.updates:
        conditions = set_condition(conditions, update, identity.generation, now)
    carried = facts.attempt.carried if facts else (outcome.apply or _NO_APPLY).carried
    return previous.model_copy(
        update={
            "phase": outcome.phase,
            "conditions": conditions,
            "observed_generation": identity.generation,
            "completion_time": outcome.completion_time or previous.completion_time,
            **_counters(spec, facts, carried, now),
        }
    )


_NO_APPLY = AttemptToApply(attempt=0, suspend=False, carried=CarriedCounts())


def _is_terminal(phase: TrainingJobPhase | None) -> bool:
    return phase in (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)


def _finished(
    spec: TrainingJobSpec, previous: TrainingJobStatus, facts: Facts | None, now: datetime
) -> tuple[TrainingJobStatus, AttemptToApply | None]:
    """A finished job keeps its phase and conditions; its counters still follow the pods
    (workers that stop after the end are no longer counted running), and its last attempt
    is stamped with its end and holds no GPU."""
    if facts is None:
        return previous, None
    status = previous.model_copy(update=_counters(spec, facts, facts.attempt.carried, now))
    reason = str(previous.phase)
    end = _end(facts, reason, "", previous.completion_time or now)
    return status, _stop(facts, end, suspend=previous.phase == TrainingJobPhase.FAILED)


def _seconds_until_ttl(
    spec: TrainingJobSpec, completion: datetime | None, now: datetime
) -> float | None:
    """Seconds until a finished job is deleted (None: kept)."""
    ttl = spec.ttl_seconds_after_finished
    if ttl is None or completion is None:
        return None
    return max((completion + timedelta(seconds=ttl) - now).total_seconds(), 0.0)


def _queue_keeps_running(
    spec: TrainingJobSpec, previous: TrainingJobStatus, facts: Facts | None
) -> bool:
    """A failed job under Kueue whose last attempt still has workers: Kueue unsuspends a
    Job its queue admitted, so suspending it cannot free the GPUs. The attempt's Job is
    deleted instead (its pods go with it, Kueue frees the quota); status keeps the counts."""
    return (
        bool(spec.queue_name)
        and previous.phase == TrainingJobPhase.FAILED
        and facts is not None
        and bool(facts.attempt.active_workers)
    )


def _superseded_attempts(observed: ObservedTrainingJob) -> tuple[int, ...]:
    """Attempts older than the newest: a new attempt only starts once they hold nothing."""
    latest = observed.latest
    if latest is None:
        return ()
    return tuple(a.attempt for a in observed.attempts if a.attempt < latest.attempt)


def _facts(
    spec: TrainingJobSpec,
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
    now: datetime,
) -> Facts | None:
    latest: ObservedAttempt | None = observed.latest
    if latest is None:
        return None
    return facts_of(
        spec,
        observed,
        latest,
        now,
        shown_gpu_seconds=previous.gpu_seconds,
        job_start=previous.start_time,
    )


def plan_trainingjob(
    spec: TrainingJobSpec,
    identity: OwnerMeta,
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
    now: datetime,
) -> TrainingJobPlan:
    """Decide what the TrainingJob's children should be and what its status says."""
    facts = _facts(spec, previous, observed, now)
    wants_nodes = facts.health.wants_nodes if facts else ()
    if _is_terminal(previous.phase) and previous.completion_time is not None:
        until_ttl = _seconds_until_ttl(spec, previous.completion_time, now)
        status, stop = _finished(spec, previous, facts, now)
        recheck = facts.health.recheck_after if facts else None
        deletes = _superseded_attempts(observed)
        if _queue_keeps_running(spec, previous, facts):
            assert facts is not None
            stop, deletes = None, (*deletes, facts.attempt.attempt)
        return TrainingJobPlan(
            status=status,
            apply=stop,
            delete_attempts=deletes,
            delete_trainingjob=until_ttl == 0.0,
            check_again_after=_sooner(until_ttl, recheck),
            wants_nodes=wants_nodes,
        )
    outcome = _stopped_by_sweep(_outcome(spec, previous, observed, facts, now), identity)
    status = _status(
        spec, identity=identity, previous=previous, facts=facts, outcome=outcome, now=now
    )
    return TrainingJobPlan(
        status=status,
        apply=outcome.apply,
        delete_attempts=_superseded_attempts(observed),
        check_again_after=outcome.check_again_after,
        wants_capacity=outcome.wants_capacity,
        admits=outcome.admits,
        wants_nodes=wants_nodes,
        # a step of a starting gang is held only within one phase (a restart is told at once)
        settling=outcome.settling and previous.phase in (None, outcome.phase),
    )
