"""The TrainingJob planner: what a user would read in status, and what the operator would do."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from plinth.api.v1alpha1 import TrainingJobSpec, TrainingJobStatus
from plinth.status.gang_admission import ADMITTED, Admission, Verdict
from plinth.status.trainingjob import TrainingJobPlan, plan_trainingjob
from plinth.status.trainingjob_observed import (
    AttemptFailure,
    CarriedCounts,
    FailureKind,
    ObservedAttempt,
    ObservedTrainingJob,
    WorkerPhase,
)
from tests.support.factories import T0, a_trainingjob, a_worker, an_attempt

IDENTITY = a_trainingjob().owner()


def spec(**changes: Any) -> TrainingJobSpec:
    """The default 2-node x 8-GPU job with top-level spec fields changed."""
    return a_trainingjob().with_fields(**changes).spec()


def running(number: int = 0, **changes: Any) -> ObservedAttempt:
    return an_attempt(number, a_worker(0), a_worker(1), **changes)


def plan(
    observed: ObservedAttempt | tuple[ObservedAttempt, ...] | None,
    *,
    job: TrainingJobSpec | None = None,
    previous: TrainingJobStatus | None = None,
    at: datetime = T0 + timedelta(seconds=10),
    workers_that_fit: int | None = None,
    admission: Admission | None = ADMITTED,
) -> TrainingJobPlan:
    """The plan for `observed`, made as the runtime makes it when capacity was read: the
    gang's admission is `admission` (default: the whole gang fits now)."""
    attempts = observed if isinstance(observed, tuple) else ((observed,) if observed else ())
    seen = ObservedTrainingJob(
        attempts=attempts, workers_that_fit=workers_that_fit, admission=admission
    )
    return plan_trainingjob(job or spec(), IDENTITY, previous or TrainingJobStatus(), seen, at)


def condition(result: TrainingJobPlan, kind: str) -> tuple[str, str, str]:
    found = next(c for c in result.status.conditions if c.type == kind)
    return found.status.value, found.reason, found.message


def test_a_new_job_creates_attempt_zero() -> None:
    result = plan(None)
    assert result.apply is not None
    assert (result.apply.attempt, result.apply.suspend) == (0, False)
    assert result.status.phase == "Pending"
    assert result.status.nodes == 2
    assert result.status.gpus == 16
    assert condition(result, "Accepted")[0] == "True"


def test_suspended_and_queued_jobs_start_suspended() -> None:
    assert plan(None, job=spec(suspend=True)).apply.suspend  # type: ignore[union-attr]
    assert plan(None, job=spec(queueName="team-a")).apply.suspend  # type: ignore[union-attr]


def test_all_workers_running_is_running_with_start_time_and_gpu_seconds() -> None:
    result = plan(running())
    assert result.status.phase == "Running"
    assert condition(result, "Running")[0] == "True"
    assert condition(result, "Scheduled")[0] == "True"
    assert result.status.start_time == T0
    assert result.status.workers.running == 2
    assert result.status.gpu_seconds == 0  # running time counts in whole 300 s periods
    assert plan(running(), at=T0 + timedelta(seconds=299)).status.gpu_seconds == 0
    assert plan(running(), at=T0 + timedelta(seconds=750)).status.gpu_seconds == 2 * 600 * 8
    assert result.apply is not None and not result.apply.suspend


def test_a_running_jobs_status_does_not_change_between_periods() -> None:
    first = plan(running(), at=T0 + timedelta(seconds=31))
    later = plan(running(), previous=first.status, at=T0 + timedelta(seconds=59))
    assert later.status == first.status


def test_workers_waiting_for_placement_are_pending_with_the_reason() -> None:
    stuck = a_worker(1, WorkerPhase.PENDING, unschedulable_message="0/4 nodes are available")
    result = plan(an_attempt(0, a_worker(0), stuck), workers_that_fit=1)
    assert result.status.phase == "Pending"
    status, reason, message = condition(result, "Scheduled")
    assert (status, reason) == ("False", "Unschedulable")
    assert "needs 2 nodes x 8 nvidia.com/gpu; 1 fit" in message
    assert result.wants_capacity
    assert result.apply is not None and not result.apply.suspend


def test_a_gang_that_does_not_fit_in_time_is_released_whole() -> None:
    stuck = a_worker(1, WorkerPhase.PENDING, unschedulable_message="Insufficient nvidia.com/gpu")
    later = T0 + timedelta(seconds=301)
    result = plan(an_attempt(0, a_worker(0), stuck), at=later, workers_that_fit=1)
    assert result.apply is not None
    assert result.apply.suspend
    assert result.apply.gang_released_at == later
    status, reason, message = condition(result, "Scheduled")
    assert (status, reason) == ("False", "GangTimeout")
    assert "needs 2 nodes x 8 nvidia.com/gpu; 1 fit" in message


def test_a_released_gang_is_retried_after_the_same_wait() -> None:
    released = T0 + timedelta(seconds=301)
    observed = an_attempt(0, suspended=True, gang_released_at=released)
    waiting = plan(observed, at=released + timedelta(seconds=10))
    assert waiting.apply is not None and waiting.apply.suspend
    retry = plan(observed, at=released + timedelta(seconds=300))
    assert retry.apply is not None
    assert not retry.apply.suspend
    assert retry.apply.gang_released_at is None


def test_gang_timeout_fails_the_job_when_asked() -> None:
    stuck = a_worker(1, WorkerPhase.PENDING, unschedulable_message="Insufficient nvidia.com/gpu")
    job = spec(scheduling={"scheduleTimeoutSeconds": 60, "onTimeout": "fail"})
    result = plan(an_attempt(0, a_worker(0), stuck), job=job, at=T0 + timedelta(seconds=61))
    assert result.status.phase == "Failed"
    assert condition(result, "Failed")[1] == "Unschedulable"
    assert result.apply is not None and result.apply.suspend


NEVER = Admission(Verdict.NEVER, "InsufficientCapacity", "needs 2 nodes x 8 nvidia.com/gpu")
WAIT = Admission(Verdict.WAIT, "WaitingForCapacity", "needs 2 nodes; 1 node has them free")
QUOTA = Admission(Verdict.NEVER, "QuotaExceeded", "ResourceQuota gpus allows 8; needs 16")


def test_a_new_gang_asks_for_the_clusters_capacity_before_creating_anything() -> None:
    first = plan(None, admission=None)
    assert first.wants_capacity and first.apply is None


def test_a_gang_that_cannot_fit_is_created_suspended_and_says_why() -> None:
    for admission, recheck in ((NEVER, 30.0), (WAIT, 5.0)):
        result = plan(None, admission=admission)
        assert result.apply is not None and result.apply.suspend
        assert result.status.phase == "Pending"
        assert condition(result, "Scheduled") == ("False", admission.reason, admission.message)
        assert result.check_again_after == recheck


def test_a_held_gang_is_created_whole_once_it_fits() -> None:
    held = an_attempt(0, suspended=True)
    at = T0 + timedelta(seconds=40)
    assert plan(held, at=at, admission=None).wants_capacity
    still = plan(held, at=at, admission=WAIT)
    assert still.apply is not None and still.apply.suspend
    admitted = plan(held, at=at)
    assert admitted.apply is not None and not admitted.apply.suspend
    assert admitted.apply.gang_window_start == at  # the placement timeout counts from now
    assert condition(admitted, "Scheduled")[1] == "Admitted"


def test_a_gang_never_admitted_fails_after_the_timeout_when_asked() -> None:
    job = spec(scheduling={"scheduleTimeoutSeconds": 30, "onTimeout": "fail"})
    held = an_attempt(0, suspended=True)
    waiting = plan(held, job=job, at=T0 + timedelta(seconds=20), admission=QUOTA)
    assert waiting.status.phase == "Pending" and waiting.check_again_after == 10.0
    failed = plan(held, job=job, at=T0 + timedelta(seconds=31), admission=QUOTA)
    assert failed.status.phase == "Failed"
    status, reason, message = condition(failed, "Failed")
    assert (status, reason) == ("True", "QuotaExceeded")
    assert message == f"Not admitted within 30s: {QUOTA.message}"


def test_workers_the_job_controller_could_not_create_count_as_not_placed() -> None:
    one = an_attempt(0, a_worker(0))
    early = plan(one, at=T0 + timedelta(seconds=10))
    assert condition(early, "Scheduled")[1] == "Scheduling" and not early.wants_capacity
    assert early.settling  # the Job controller is still creating the gang's pods
    late = plan(one, at=T0 + timedelta(seconds=20), admission=QUOTA)
    assert late.wants_capacity and not late.settling
    assert condition(late, "Scheduled")[1:] == ("QuotaExceeded", QUOTA.message)
    released = plan(one, at=T0 + timedelta(seconds=301), admission=QUOTA)
    assert released.apply is not None and released.apply.suspend
    assert condition(released, "Scheduled")[1] == "GangTimeout"


def test_a_gang_whose_pods_keep_appearing_is_progress_not_pods_missing() -> None:
    """In a burst the Job controller creates pods at its client's rate: a gang whose newest
    worker appeared within the grace is still being created (settling, its status may wait);
    once none has appeared for the grace, the missing ones are named."""
    appearing = an_attempt(0, a_worker(0, created=T0 + timedelta(seconds=12)))
    creating = plan(appearing, at=T0 + timedelta(seconds=20))
    assert condition(creating, "Scheduled")[1] == "Scheduling" and creating.settling
    stalled = plan(appearing, at=T0 + timedelta(seconds=28))
    assert condition(stalled, "Scheduled")[1] == "WorkersNotCreated"
    assert "1 of 2 workers created" in condition(stalled, "Scheduled")[2]
    # no cause found (quota, scheduler): told within the status hold, unless pods appear
    assert stalled.settling and stalled.wants_capacity


def test_a_worker_that_cannot_be_placed_for_a_missing_volume_says_so() -> None:
    message = '0/4 nodes are available: persistentvolumeclaim "team-checkpoints" not found.'
    stuck = a_worker(1, WorkerPhase.PENDING, unschedulable_message=message)
    result = plan(an_attempt(0, a_worker(0), stuck), workers_that_fit=4)
    status, reason, text = condition(result, "Scheduled")
    assert (status, reason) == ("False", "PersistentVolumeClaimNotFound")
    assert text == f"worker 1 cannot be placed: {message}"
    assert "nvidia.com/gpu" not in text


def test_a_queued_gangs_timeout_counts_from_kueues_admission() -> None:
    job = spec(queueName="team-a", scheduling={"scheduleTimeoutSeconds": 30, "onTimeout": "fail"})
    stuck = a_worker(1, WorkerPhase.PENDING, unschedulable_message="Insufficient nvidia.com/gpu")
    admitted_at = T0 + timedelta(seconds=100)
    attempt = an_attempt(0, a_worker(0), stuck, started_at=admitted_at)
    soon = plan(attempt, job=job, at=admitted_at + timedelta(seconds=5))
    assert soon.status.phase == "Pending"
    assert condition(soon, "Suspended")[:2] == ("False", "Admitted")
    late = plan(attempt, job=job, at=admitted_at + timedelta(seconds=31))
    assert late.status.phase == "Failed"


def test_a_failed_queued_job_deletes_its_attempt_so_kueue_cannot_restart_it() -> None:
    job = spec(queueName="team-a")
    failed = plan(running(), job=job, at=T0 + timedelta(seconds=5))
    previous = failed.status.model_copy(
        update={"phase": "Failed", "completion_time": T0 + timedelta(seconds=5)}
    )
    after = plan(running(), job=job, previous=previous, at=T0 + timedelta(seconds=6))
    assert after.delete_attempts == (0,) and after.apply is None
    assert after.status.phase == "Failed"


def test_all_workers_done_is_succeeded_then_deleted_after_ttl() -> None:
    done = an_attempt(
        0,
        a_worker(0, WorkerPhase.SUCCEEDED, finish_time=T0 + timedelta(seconds=5)),
        a_worker(1, WorkerPhase.SUCCEEDED, finish_time=T0 + timedelta(seconds=5)),
        completed=True,
        completion_time=T0 + timedelta(seconds=5),
    )
    result = plan(done, job=spec(ttlSecondsAfterFinished=60))
    assert result.status.phase == "Succeeded"
    assert result.status.completion_time == T0 + timedelta(seconds=5)
    assert result.status.gpu_seconds == 2 * 5 * 8
    assert not result.delete_trainingjob
    later = plan(
        done,
        job=spec(ttlSecondsAfterFinished=60),
        previous=result.status,
        at=T0 + timedelta(seconds=66),
    )
    assert later.delete_trainingjob


def crashed(number: int = 0, failures: int = 0, **changes: Any) -> ObservedAttempt:
    failure = AttemptFailure(FailureKind.CRASHED, "worker 1 exited with code 1", exit_code=1)
    done = a_worker(0, WorkerPhase.FAILED, finish_time=T0 + timedelta(seconds=4))
    failed = a_worker(1, WorkerPhase.FAILED, exit_code=1, finish_time=T0 + timedelta(seconds=4))
    carried = CarriedCounts(failures=failures)
    return an_attempt(number, done, failed, failure=failure, carried=carried, **changes)


def test_a_worker_failure_restarts_the_whole_gang_counting_a_restart() -> None:
    result = plan(crashed())
    assert result.status.phase == "Restarting"
    assert result.apply is not None
    assert result.apply.attempt == 1
    assert result.apply.carried.failures == 1
    assert result.apply.carried.gpu_seconds == 2 * 4 * 8
    assert condition(result, "Restarting")[0] == "True"


def test_the_restart_waits_until_the_failed_gang_has_stopped() -> None:
    still_running = replace(crashed(), workers=(a_worker(0), a_worker(1, WorkerPhase.FAILED)))
    result = plan(still_running)
    assert result.apply is not None
    assert (result.apply.attempt, result.apply.suspend) == (0, True)


def test_backoff_limit_reached_fails_the_job() -> None:
    result = plan(crashed(3, failures=3), job=spec(restartPolicy={"backoffLimit": 3}))
    assert result.status.phase == "Failed"
    status, reason, message = condition(result, "Failed")
    assert (status, reason) == ("True", "BackoffLimitExceeded")
    assert "exited with code 1" in message


def test_preemption_restarts_without_using_the_backoff_limit() -> None:
    preempted = AttemptFailure(FailureKind.PREEMPTED, "node gpu-node-1 was lost")
    observed = replace(crashed(), failure=preempted)
    result = plan(observed, job=spec(restartPolicy={"backoffLimit": 0}))
    assert result.apply is not None
    assert result.apply.attempt == 1
    assert (result.apply.carried.failures, result.apply.carried.preemptions) == (0, 1)


def test_a_permanent_exit_code_fails_at_once_naming_the_code() -> None:
    permanent = AttemptFailure(FailureKind.PERMANENT, "worker 1 exited with code 2", exit_code=2)
    result = plan(
        replace(crashed(), failure=permanent), job=spec(restartPolicy={"permanentExitCodes": [2]})
    )
    assert result.status.phase == "Failed"
    assert condition(result, "Failed")[1] == "PermanentExitCode"
    assert "code 2" in condition(result, "Failed")[2]
    assert result.apply is not None
    assert not result.apply.suspend  # no worker left to stop
    assert result.apply.ended is not None  # the end is stamped on the attempt's Job


def test_counters_come_from_the_newest_attempt() -> None:
    carried = CarriedCounts(failures=1, preemptions=2, gpu_seconds=100.0, start_time=T0)
    result = plan((crashed(0), running(3, carried=carried)))
    assert (result.status.restarts, result.status.preemptions) == (1, 2)
    assert result.status.gpu_seconds == 100.0
    assert result.delete_attempts == (0,)


def test_spec_suspend_stops_every_worker() -> None:
    result = plan(running(), job=spec(suspend=True))
    assert result.status.phase == "Suspended"
    assert condition(result, "Suspended")[0] == "True"
    assert result.apply is not None and result.apply.suspend


def test_deadline_exceeded_fails_and_releases_the_gang() -> None:
    result = plan(running(), job=spec(activeDeadlineSeconds=60), at=T0 + timedelta(seconds=61))
    assert result.status.phase == "Failed"
    assert condition(result, "Failed")[1] == "DeadlineExceeded"
    assert result.apply is not None and result.apply.suspend


def test_a_finished_job_never_starts_again() -> None:
    failed = plan(crashed(3, failures=3), job=spec(restartPolicy={"backoffLimit": 3}))
    again = plan((), previous=failed.status, at=T0 + timedelta(seconds=20))
    assert again.apply is None
    assert again.status == failed.status


def test_planning_is_deterministic() -> None:
    assert plan(crashed()) == plan(crashed())


def test_an_elastic_job_runs_once_its_minimum_is_placed() -> None:
    job = spec(nodes=None, elastic={"minNodes": 2, "maxNodes": 4})
    waiting = a_worker(2, WorkerPhase.PENDING, unschedulable_message="Insufficient nvidia.com/gpu")
    observed = an_attempt(0, a_worker(0), a_worker(1), waiting, a_worker(3, WorkerPhase.PENDING))
    result = plan(observed, job=job, at=T0 + timedelta(seconds=900))
    assert result.status.phase == "Running"
    assert result.apply is not None and not result.apply.suspend
    assert (result.status.nodes, result.status.gpus) == (2, 16)


def test_a_gang_whose_first_worker_finished_is_still_running() -> None:
    done = a_worker(0, WorkerPhase.SUCCEEDED, finish_time=T0 + timedelta(seconds=5))
    result = plan(an_attempt(0, done, a_worker(1)))
    assert result.status.phase == "Running"
