"""The TrainingJob lifecycle against failures users of other operators reported (issue 10):
the deadline and suspension, elastic members that leave, nodes whose kubelet goes silent,
and status that must agree with the pods. Single plans from observations built with the
factories, and short scenarios on the emulated world of tests.support.trainingjob_world.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from plinth.api.v1alpha1 import TrainingJobPhase, TrainingJobSpec, TrainingJobStatus
from plinth.api.wellknown import ANNOTATION_TRIAL_STOPPED, LABEL_AUTOMLSWEEP
from plinth.status.trainingjob import TrainingJobPlan, plan_trainingjob
from plinth.status.trainingjob_observed import (
    AttemptEnd,
    AttemptFailure,
    CarriedCounts,
    FailureKind,
    ObservedAttempt,
    ObservedNode,
    ObservedTrainingJob,
    WorkerPhase,
)
from tests.support.factories import T0, a_node, a_trainingjob, a_worker, an_attempt
from tests.support.trainingjob_world import GRACE, World

OWNER = a_trainingjob().owner()
RUNNING, PENDING, SUCCEEDED, FAILED = (
    WorkerPhase.RUNNING,
    WorkerPhase.PENDING,
    WorkerPhase.SUCCEEDED,
    WorkerPhase.FAILED,
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def plan(
    job: TrainingJobSpec,
    *attempts: ObservedAttempt,
    now: datetime,
    previous: TrainingJobStatus | None = None,
    nodes: dict[str, ObservedNode] | None = None,
) -> TrainingJobPlan:
    observed = ObservedTrainingJob(attempts=attempts, nodes=nodes)
    return plan_trainingjob(job, OWNER, previous or TrainingJobStatus(), observed, now)


def condition(result: TrainingJobPlan, kind: str) -> tuple[str, str, str]:
    found = next(c for c in result.status.conditions if c.type == kind)
    return found.status.value, found.reason, found.message


def run_until(world: World, phase: TrainingJobPhase, *, steps: int = 6) -> TrainingJobPlan:
    """Let the controllers, the kubelets and the operator react until status says `phase`."""
    decision = world.reconcile()
    for _ in range(steps):
        if decision.status.phase == phase:
            return decision
        world.tick()
        world.start_pods()
        decision = world.reconcile()
    assert decision.status.phase == phase, decision.status
    return decision


# --------------------------------------------------------------------------------------
# 1. The deadline counts time spent started; suspension pauses it
# --------------------------------------------------------------------------------------


def one_node(**fields: Any) -> TrainingJobSpec:
    return a_trainingjob().with_nodes(1).with_fields(**fields).spec()


def test_a_job_kept_suspended_past_its_deadline_runs_and_succeeds() -> None:
    world = World(spec=one_node(activeDeadlineSeconds=30, suspend=True))
    assert run_until(world, TrainingJobPhase.SUSPENDED).status.start_time is None
    world.advance(60)
    held = world.reconcile()
    assert held.status.phase == TrainingJobPhase.SUSPENDED
    assert held.check_again_after is None  # no clock runs for a job that never started
    world.set_suspend(False)
    running = run_until(world, TrainingJobPhase.RUNNING)
    assert running.status.start_time == world.now
    world.advance(10)
    (pod,) = world.running_pods()
    world.end_pod(pod, 0)
    done = run_until(world, TrainingJobPhase.SUCCEEDED)
    assert condition(done, "Succeeded")[0] == "True"


def test_the_deadline_counts_only_time_spent_started() -> None:
    world = World(spec=one_node(activeDeadlineSeconds=60))
    run_until(world, TrainingJobPhase.RUNNING)
    world.advance(40)
    world.set_suspend(True)
    assert run_until(world, TrainingJobPhase.SUSPENDED).status.start_time is not None
    world.advance(1000)
    assert world.reconcile().status.phase == TrainingJobPhase.SUSPENDED
    world.set_suspend(False)
    running = run_until(world, TrainingJobPhase.RUNNING)
    assert world.latest is not None and world.latest.attempt == 1
    assert running.check_again_after is not None and running.check_again_after <= 20
    world.advance(15)
    assert world.reconcile().status.phase == TrainingJobPhase.RUNNING
    world.advance(6)
    failed = world.reconcile()
    assert failed.status.phase == TrainingJobPhase.FAILED
    assert condition(failed, "Failed")[1] == "DeadlineExceeded"


def test_suspending_a_started_job_stops_its_attempt_and_resuming_starts_the_next() -> None:
    world = World(spec=one_node())
    started = run_until(world, TrainingJobPhase.RUNNING).status.start_time
    world.set_suspend(True)
    suspended = world.reconcile()
    assert suspended.status.phase == TrainingJobPhase.SUSPENDED
    status, reason, message = condition(suspended, "Suspended")
    assert (status, reason) == ("True", "SuspendedBySpec")
    assert "resuming starts attempt 1 from the last checkpoint" in message
    for stale in ("Running", "Restarting", "Scheduled"):  # none holds with the workers gone
        assert condition(suspended, stale)[:2] == ("False", "SuspendedBySpec"), stale
    assert suspended.apply is not None and suspended.apply.suspend
    assert suspended.apply.ended is not None and suspended.apply.ended.reason == "Suspended"
    world.set_suspend(False)
    resumed = run_until(world, TrainingJobPhase.RUNNING)
    assert world.latest is not None and world.latest.attempt == 1
    assert (resumed.status.restarts, resumed.status.preemptions) == (0, 0)
    assert resumed.status.start_time == started


def test_suspending_a_job_that_has_not_started_only_holds_it() -> None:
    placing = an_attempt(0, a_worker(0, PENDING, unschedulable_message="Insufficient GPU"))
    result = plan(one_node(suspend=True), placing, now=at(30))
    assert result.status.phase == TrainingJobPhase.SUSPENDED
    assert result.apply is not None
    assert (result.apply.attempt, result.apply.suspend, result.apply.ended) == (0, True, None)


def test_a_trial_its_sweep_stopped_says_so_instead_of_a_bare_suspend() -> None:
    trial = replace(
        OWNER,
        labels={LABEL_AUTOMLSWEEP: "lr"},
        annotations={ANNOTATION_TRIAL_STOPPED: "stopped by asha at step 10 (loss 3.2)"},
    )
    running = an_attempt(0, a_worker(0, RUNNING))
    observed = ObservedTrainingJob(attempts=(running,))
    result = plan_trainingjob(one_node(suspend=True), trial, TrainingJobStatus(), observed, at(30))
    assert result.status.phase == TrainingJobPhase.SUSPENDED
    found = next(c for c in result.status.conditions if c.type == "Suspended")
    assert (found.status.value, found.reason) == ("True", "StoppedBySweep")
    assert found.message.startswith("Trial of lr, stopped by asha at step 10 (loss 3.2). spec")
    assert result.apply is not None and result.apply.suspend
    resumed = plan_trainingjob(one_node(), trial, result.status, observed, at(40))
    assert condition(resumed, "Suspended")[1] != "StoppedBySweep"


# --------------------------------------------------------------------------------------
# 2. An elastic member that leaves is a membership change
# --------------------------------------------------------------------------------------


def elastic(min_nodes: int = 2, max_nodes: int = 3, max_restarts: int = 3) -> TrainingJobSpec:
    return (
        a_trainingjob()
        .elastic(min_nodes, max_nodes, max_restarts=max_restarts)
        .with_restart_policy(backoffLimit=0)
        .spec()
    )


def test_an_elastic_job_keeps_its_members_when_one_is_deleted_or_evicted() -> None:
    world = World(spec=elastic())
    run_until(world, TrainingJobPhase.RUNNING)
    survivors = {pod.index: pod for pod in world.running_pods()}
    assert sorted(survivors) == [0, 1, 2]
    world.end_pod(survivors[2], 137)  # kubectl delete pod: killed, no disruption condition
    world.tick()
    after_delete = world.reconcile()
    assert after_delete.status.phase == TrainingJobPhase.RUNNING
    assert after_delete.apply is not None
    assert (after_delete.apply.attempt, after_delete.apply.suspend) == (0, False)
    assert after_delete.status.membership_changes == 1
    assert (after_delete.status.restarts, after_delete.status.preemptions) == (0, 0)
    world.end_pod(survivors[1], 137, disrupted=True)  # drained: evicted
    world.tick()
    world.start_pods()
    after_drain = world.reconcile()
    assert after_drain.status.phase == TrainingJobPhase.RUNNING
    assert after_drain.status.membership_changes == 2
    assert after_drain.status.nodes == 3  # both replaced
    assert survivors[0] in world.running_pods()  # the same pod, never restarted
    assert world.latest is not None and world.latest.attempt == 0


def test_an_elastic_job_carries_on_at_the_smaller_size_until_a_replacement_is_placed() -> None:
    waiting = a_worker(
        2, PENDING, unschedulable_message="Insufficient nvidia.com/gpu", index_disruptions=1
    )
    smaller = an_attempt(0, a_worker(0), a_worker(1), waiting, gang_started_at=T0)
    result = plan(elastic(), smaller, now=at(600))
    assert result.status.phase == TrainingJobPhase.RUNNING
    assert (result.status.nodes, result.status.gpus) == (2, 16)
    assert result.status.membership_changes == 1
    assert result.apply is not None and not result.apply.suspend
    regrown = replace(smaller, workers=(a_worker(0), a_worker(1), a_worker(2, index_disruptions=1)))
    assert plan(elastic(), regrown, now=at(660)).status.nodes == 3


def test_pods_a_gang_release_deleted_are_not_members_leaving() -> None:
    released = a_worker(0, FAILED, exit_code=137, created=T0)  # deleted by the release
    retried = an_attempt(0, released, a_worker(1, PENDING, created=at(400)), banked_at=at(100))
    result = plan(elastic(), retried, now=at(401))
    assert result.status.membership_changes == 0
    assert result.apply is not None and result.apply.ended is None


def test_losing_the_rendezvous_host_restarts_the_gang() -> None:
    host = a_worker(0, FAILED, exit_code=137, disrupted=True, finish_time=at(50))
    attempt = an_attempt(0, host, a_worker(1), a_worker(2), gang_started_at=T0)
    result = plan(elastic(), attempt, now=at(60))
    assert result.status.phase == TrainingJobPhase.RESTARTING
    assert "worker 0 (the rendezvous host) left" in condition(result, "Restarting")[2]
    assert result.apply is not None and result.apply.suspend
    assert result.apply.ended is not None and result.apply.ended.reason == "Preempted"


def test_more_members_leaving_than_max_restarts_ends_the_attempt() -> None:
    job = a_trainingjob().elastic(2, 3, max_restarts=1).with_restart_policy(backoffLimit=2).spec()
    replaced = a_worker(2, index_failures=1)
    left = a_worker(1, FAILED, exit_code=1, finish_time=at(50))
    attempt = an_attempt(0, a_worker(0), left, replaced, gang_started_at=T0)
    result = plan(job, attempt, now=at(60))
    assert result.status.phase == TrainingJobPhase.RESTARTING
    assert (
        "2 members left the gang, more than elastic.maxRestarts 1"
        in (condition(result, "Restarting")[2])
    )
    assert result.apply is not None and result.apply.ended is not None
    assert result.apply.ended.reason == FailureKind.CRASHED


def test_fewer_than_min_nodes_waits_for_replacements_then_restarts() -> None:
    gone = a_worker(1, PENDING, unschedulable_message="Insufficient", created=at(100))
    gone = replace(gone, index_disruptions=1, node_name=None, start_time=None)
    attempt = an_attempt(0, a_worker(0), gone, gang_started_at=T0)
    job = elastic(min_nodes=2, max_nodes=2)
    waiting = plan(job, attempt, now=at(130))
    assert waiting.status.phase == TrainingJobPhase.RESTARTING
    assert condition(waiting, "Restarting")[1] == "MembersLost"
    assert condition(waiting, "Running")[0] == "False"
    assert waiting.check_again_after == 270  # scheduleTimeoutSeconds after the re-creation
    assert waiting.apply is not None and waiting.apply.ended is None
    ended = plan(job, attempt, now=at(400))
    assert ended.apply is not None and ended.apply.ended is not None
    assert "only 1 of minNodes 2 members remained for 300s" in ended.apply.ended.message


# --------------------------------------------------------------------------------------
# 3. A node whose kubelet goes silent
# --------------------------------------------------------------------------------------


def two_nodes(**policy: Any) -> TrainingJobSpec:
    return a_trainingjob().with_restart_policy(nodeLostTimeoutSeconds=60, **policy).spec()


def test_a_worker_marked_not_ready_makes_the_plan_read_its_node() -> None:
    silent = an_attempt(0, a_worker(0), a_worker(1, ready=False), gang_started_at=T0)
    first = plan(two_nodes(), silent, now=at(100))
    assert first.wants_nodes == ("gpu-node-1",)
    healthy = an_attempt(0, a_worker(0), a_worker(1), gang_started_at=T0)
    assert plan(two_nodes(), healthy, now=at(100)).wants_nodes == ()


def test_a_worker_on_a_silent_node_is_a_preemption_once_the_bound_passed() -> None:
    silent = an_attempt(0, a_worker(0), a_worker(1, ready=False), gang_started_at=T0)
    nodes = {"gpu-node-1": a_node("gpu-node-1", ready=False, since=at(100))}
    within = plan(two_nodes(), silent, now=at(130), nodes=nodes)
    assert within.status.phase == TrainingJobPhase.RUNNING
    assert within.check_again_after == 30
    lost = plan(two_nodes(), silent, now=at(160), nodes=nodes)
    assert lost.status.phase == TrainingJobPhase.RESTARTING
    message = condition(lost, "Restarting")[2]
    assert "worker 1 lost: node gpu-node-1 not Ready since" in message
    assert lost.status.workers.unknown == 1
    assert lost.status.workers.running == 1
    assert lost.apply is not None and lost.apply.suspend
    assert lost.apply.ended is not None and lost.apply.ended.reason == "Preempted"


def test_the_gang_moves_without_waiting_for_a_pod_that_cannot_finish_terminating() -> None:
    stuck = a_worker(1, ready=False, deleted_at=at(220))
    ended = AttemptEnd("Preempted", "worker 1 lost: node gpu-node-1 not Ready", at(160), 960.0)
    stopped = an_attempt(0, stuck, suspended=True, ended=ended, gang_started_at=T0)
    nodes = {"gpu-node-1": a_node("gpu-node-1", ready=False, since=at(100))}
    result = plan(two_nodes(backoffLimit=0), stopped, now=at(300), nodes=nodes)
    assert result.apply is not None
    assert result.apply.attempt == 1
    assert (result.apply.carried.failures, result.apply.carried.preemptions) == (0, 1)
    assert result.apply.carried.gpu_seconds == 960.0


def test_a_worker_placed_on_a_silent_node_that_never_starts_is_lost_too() -> None:
    placed = a_worker(1, PENDING, node_name="gpu-node-1", created=T0)
    attempt = an_attempt(0, a_worker(0), placed)
    assert plan(two_nodes(), attempt, now=at(59)).wants_nodes == ()  # pulling an image, maybe
    assert plan(two_nodes(), attempt, now=at(60)).wants_nodes == ("gpu-node-1",)
    healthy = {"gpu-node-1": a_node("gpu-node-1")}
    assert plan(two_nodes(), attempt, now=at(600), nodes=healthy).apply.ended is None  # type: ignore[union-attr]
    silent = {"gpu-node-1": a_node("gpu-node-1", ready=False, since=at(20))}
    lost = plan(two_nodes(), attempt, now=at(90), nodes=silent)
    assert lost.status.phase == TrainingJobPhase.RESTARTING
    assert condition(lost, "Restarting")[1] == "Preempted"


def test_a_node_that_no_longer_exists_loses_its_worker_at_once() -> None:
    silent = an_attempt(0, a_worker(0), a_worker(1, ready=False), gang_started_at=T0)
    gone = {"gpu-node-1": ObservedNode("gpu-node-1", exists=False, ready=False)}
    result = plan(two_nodes(), silent, now=at(101), nodes=gone)
    assert "node gpu-node-1 no longer exists" in condition(result, "Restarting")[2]


def test_a_slow_pod_on_a_ready_node_is_left_alone() -> None:
    slow = an_attempt(0, a_worker(0), a_worker(1, ready=False), gang_started_at=T0)
    nodes = {"gpu-node-1": a_node("gpu-node-1")}
    result = plan(two_nodes(), slow, now=at(1000), nodes=nodes)
    assert result.status.phase == TrainingJobPhase.RUNNING
    assert result.apply is not None and result.apply.ended is None


def test_a_silent_node_moves_the_gang_to_other_nodes_within_the_bound() -> None:
    world = World(spec=two_nodes(backoffLimit=0))
    run_until(world, TrainingJobPhase.RUNNING)
    lost_node = world.running_pods()[1].node
    assert lost_node is not None
    world.silence(lost_node)
    world.advance(30)
    assert world.reconcile().status.phase == TrainingJobPhase.RUNNING
    world.advance(31)
    moved = run_until(world, TrainingJobPhase.RUNNING)
    assert (moved.status.restarts, moved.status.preemptions) == (0, 1)
    assert world.latest is not None and world.latest.attempt == 1
    assert lost_node not in {pod.node for pod in world.running_pods()}
    assert world.now - world.silent[lost_node] <= timedelta(seconds=61) + GRACE


# --------------------------------------------------------------------------------------
# 5. Status agrees with the pods
# --------------------------------------------------------------------------------------


def test_workers_that_all_exited_0_are_succeeded_not_pending() -> None:
    done = an_attempt(
        0,
        a_worker(0, SUCCEEDED, finish_time=at(30)),
        a_worker(1, SUCCEEDED, finish_time=at(31)),
        gang_started_at=T0,
    )
    result = plan(a_trainingjob().spec(), done, now=at(32))
    assert result.status.phase == TrainingJobPhase.SUCCEEDED
    assert result.status.completion_time == at(31)
    assert result.status.workers.succeeded == 2


def test_a_gang_that_ran_is_never_pending_again_within_its_attempt() -> None:
    failing = an_attempt(
        0, a_worker(0, FAILED, exit_code=1), a_worker(1, SUCCEEDED), gang_started_at=T0
    )
    result = plan(a_trainingjob().spec(), failing, now=at(40))
    assert result.status.phase == TrainingJobPhase.RESTARTING
    assert condition(result, "Running")[:2] == ("False", "WorkerFailed")
    assert "worker 0 exited with code 1" in condition(result, "Restarting")[2]
    assert result.status.workers.running == 0


def test_a_failed_job_counts_no_running_worker_once_its_pods_are_gone() -> None:
    job = one_node(activeDeadlineSeconds=30)
    running = an_attempt(0, a_worker(0, ran_at=T0), gang_started_at=T0, active_since=T0)
    failed = plan(job, running, now=at(31))
    assert failed.status.phase == TrainingJobPhase.FAILED
    assert failed.apply is not None and failed.apply.ended is not None
    stopped = replace(running, workers=(), suspended=True, ended=failed.apply.ended)
    later = plan(job, stopped, now=at(40), previous=failed.status)
    assert later.status.phase == TrainingJobPhase.FAILED
    assert later.status.workers.running == 0
    assert later.status.gpu_seconds == failed.status.gpu_seconds


def test_start_time_waits_until_every_worker_has_run() -> None:
    never_ran = a_worker(1, FAILED, exit_code=128)  # accepted (startTime set), never started
    one_ran = an_attempt(0, a_worker(0, ran_at=at(5)), never_ran)
    assert plan(a_trainingjob().spec(), one_ran, now=at(10)).status.start_time is None
    both = an_attempt(0, a_worker(0, ran_at=at(5)), a_worker(1, ran_at=at(8)))
    result = plan(a_trainingjob().spec(), both, now=at(10))
    assert result.status.start_time == at(8)
    # the job's first start is what status records; its Job is not stamped (one write less
    # per job) while every worker runs and shows it
    assert result.apply is not None and result.apply.gang_started_at is None
    one_stopped = an_attempt(0, a_worker(0, ran_at=at(5)), a_worker(1, FAILED, ran_at=at(8)))
    stopping = plan(a_trainingjob().spec(), one_stopped, now=at(20), previous=result.status)
    assert stopping.status.start_time == at(8)
    assert stopping.apply is not None and stopping.apply.gang_started_at == at(8)


def test_counters_are_recomputed_from_the_pods_not_carried_from_status() -> None:
    attempt = an_attempt(
        2,
        a_worker(0),
        a_worker(1, PENDING),
        carried=CarriedCounts(failures=1, preemptions=1, gpu_seconds=80.0, start_time=T0),
    )
    stale = TrainingJobStatus(restarts=5, preemptions=7, start_time=at(-100))
    result = plan(a_trainingjob().spec(), attempt, now=at(10), previous=stale)
    status = result.status
    assert (status.restarts, status.preemptions, status.start_time) == (1, 1, T0)
    assert (status.workers.running, status.workers.pending) == (1, 1)


def test_a_crash_while_stopping_for_a_permanent_code_keeps_the_first_verdict() -> None:
    permanent = AttemptFailure(FailureKind.PERMANENT, "a worker exited with permanent code 2", 2)
    attempt = an_attempt(0, a_worker(0), a_worker(1, FAILED, exit_code=2), failure=permanent)
    result = plan(a_trainingjob().spec(), attempt, now=at(10))
    assert result.status.phase == TrainingJobPhase.FAILED
    assert result.apply is not None and result.apply.suspend
