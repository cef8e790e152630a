"""Reading Jobs and pods into observations: crash, permanent code, disruption, GPU fit.

The objects come from tests.support.factories, in the shapes the Job controller and the pod
garbage collector of Kubernetes 1.37 write.
"""

from __future__ import annotations

from datetime import timedelta

from plinth.builders.trainingjob import attempt_annotations
from plinth.handlers.trainingjob import node_ref
from plinth.status.capacity import ClusterCapacity, free_gpus_by_node, workers_that_fit
from plinth.status.trainingjob import AttemptToApply
from plinth.status.trainingjob_observe import observe_nodes, observe_trainingjob
from plinth.status.trainingjob_observed import AttemptEnd, CarriedCounts, FailureKind, WorkerPhase
from tests.support.factories import POD_STARTED, T0, a_gpu_node, a_job, a_pod

A100 = "NVIDIA-A100-SXM4-80GB"


def test_a_failed_pod_is_not_judged_before_the_job_controller() -> None:
    observed = observe_trainingjob(
        [a_job().build()], [a_pod(0).build(), a_pod(1, "Failed").exited(1).build()]
    )
    assert observed.latest is not None
    assert observed.latest.failure is None


def test_a_crash_names_the_worker_and_its_code() -> None:
    job = a_job().with_condition(
        "Failed",
        reason="BackoffLimitExceeded",
        message="Job has reached the specified backoff limit",
    )
    observed = observe_trainingjob(
        [job.build()],
        [a_pod(0, "Failed").exited(1).build(), a_pod(1, "Failed").exited(3).build()],
    )
    failure = observed.latest.failure  # type: ignore[union-attr]
    assert failure is not None
    assert (failure.kind, failure.exit_code) == (FailureKind.CRASHED, 1)
    assert failure.message == "worker 0 exited with code 1"


def test_a_permanent_exit_code_is_read_from_the_pod_failure_policy_verdict() -> None:
    job = a_job().with_condition(
        "FailureTarget",
        reason="PodFailurePolicy",
        message=(
            "Container worker for pod ml/llm-r0-1 failed with exit code 2 "
            "matching FailJob rule at index 1"
        ),
    )
    observed = observe_trainingjob([job.build()], [])
    failure = observed.latest.failure  # type: ignore[union-attr]
    assert failure is not None
    assert (failure.kind, failure.exit_code) == (FailureKind.PERMANENT, 2)


def test_a_disruption_is_a_preemption_even_once_the_pod_is_gone() -> None:
    job = a_job().with_condition(
        "Failed",
        reason="PodFailurePolicy",
        message="Pod ml/llm-r0-0 has condition DisruptionTarget matching FailJob rule at index 0",
    )
    observed = observe_trainingjob([job.build()], [])
    assert observed.latest.failure.kind == FailureKind.PREEMPTED  # type: ignore[union-attr]


def test_a_disrupted_pod_makes_the_failure_a_preemption() -> None:
    job = a_job().with_condition("Failed", reason="BackoffLimitExceeded", message="")
    evicted = a_pod(1, "Failed").exited(137).with_condition("DisruptionTarget", reason="Evicted")
    observed = observe_trainingjob([job.build()], [a_pod(0).build(), evicted.build()])
    assert observed.latest.failure.kind == FailureKind.PREEMPTED  # type: ignore[union-attr]


def test_counters_and_gang_times_come_from_the_attempts_annotations() -> None:
    annotations = {
        "plinth.dev/carried-failures": "2",
        "plinth.dev/carried-preemptions": "1",
        "plinth.dev/carried-gpu-seconds": "960.0",
        "plinth.dev/gang-released-at": "2026-11-25T12:05:00Z",
    }
    observed = observe_trainingjob(
        [a_job().build(), a_job(attempt=3).annotated(annotations).build()],
        [a_pod(0, "Pending").of_attempt(3).on_node(None).build()],
    )
    latest = observed.latest
    assert latest is not None and latest.attempt == 3
    assert (latest.carried.failures, latest.carried.preemptions, latest.carried.gpu_seconds) == (
        2,
        1,
        960.0,
    )
    assert latest.gang_released_at is not None
    assert [w.phase for w in latest.workers] == [WorkerPhase.PENDING]
    assert [a.attempt for a in observed.attempts] == [0, 3]


def test_workers_that_fit_ignore_the_jobs_own_workers_and_other_gpu_types() -> None:
    nodes = [a_gpu_node("n1"), a_gpu_node("n2"), a_gpu_node("n3", product=A100), a_gpu_node("n4")]
    other = a_pod(0).on_node("n2").in_namespace("team-b").not_owned().build()
    own = a_pod(1).on_node("n1").build()
    capacity = ClusterCapacity(nodes=tuple(nodes), active_pods=(own, other))
    free = free_gpus_by_node(capacity, ignore=lambda pod: pod is own)

    def fit(gpus: int) -> int:
        h100 = "NVIDIA-H100-80GB-HBM3"
        return workers_that_fit(capacity, gpus=gpus, gpu_type=h100, node_selector={}, free=free)

    assert fit(8) == 2
    assert fit(1) == 16  # workers of 1 GPU share a node: n1 and n4 take 8 each


def test_a_replacement_pod_says_how_many_of_its_index_left_before_it() -> None:
    replacement = (
        a_pod(2).replacing(failures=1, disruptions=2).created_at(T0 + timedelta(minutes=5))
    )
    observed = observe_trainingjob(
        [a_job().build()],
        [replacement.build(), a_pod(2, "Failed").exited(137).build(), a_pod(0).build()],
    )
    latest = observed.latest
    assert latest is not None
    member = latest.members[1]
    assert (member.index, member.phase, member.index_failures, member.index_disruptions) == (
        2,
        WorkerPhase.RUNNING,
        1,
        2,
    )
    assert [w.index for w in latest.workers] == [0, 2, 2]


def test_a_pod_on_a_silent_node_is_not_ready_and_may_be_stuck_terminating() -> None:
    stuck = (
        a_pod(1)
        .with_condition("Ready", status="False")
        .being_deleted(T0 + timedelta(minutes=2))
        .build()
    )
    (worker,) = observe_trainingjob([a_job().build()], [stuck]).latest.workers  # type: ignore[union-attr]
    assert (worker.phase, worker.ready, worker.terminating) == (WorkerPhase.RUNNING, False, True)
    assert worker.deleted_at == T0 + timedelta(minutes=2)
    assert worker.ran_at == POD_STARTED  # running: its container started


def test_a_failed_pod_is_not_taken_for_one_that_ran() -> None:
    (worker,) = observe_trainingjob(  # type: ignore[union-attr]
        [a_job().build()], [a_pod(0, "Failed").exited(128).build()]
    ).latest.workers
    assert worker.ran_at is None and not worker.has_run


def test_nodes_read_for_a_plan_say_whether_they_report() -> None:
    since = T0 + timedelta(seconds=90)
    silent = a_gpu_node("n1", ready="Unknown", since=since, reason="NodeStatusUnknown")
    nodes = observe_nodes(
        {node_ref("n1"): silent, node_ref("n2"): a_gpu_node("n2"), node_ref("n3"): None}
    )
    assert (nodes["n1"].ready, nodes["n1"].since, nodes["n1"].reason) == (
        False,
        since,
        "NodeStatusUnknown",
    )
    assert nodes["n2"].ready and nodes["n2"].exists
    assert not nodes["n3"].exists


def test_what_the_planner_stamps_on_an_attempt_reads_back_the_same() -> None:
    end = AttemptEnd(
        "Preempted", "worker 1 lost: node n1 not Ready", T0 + timedelta(minutes=9), 1.5
    )
    stamped = AttemptToApply(
        attempt=1,
        suspend=True,
        carried=CarriedCounts(1, 2, 640.0, T0, active_seconds=120.0),
        gang_started_at=T0 + timedelta(minutes=1),
        active_since=T0 + timedelta(minutes=1),
        ended=end,
        banked_gpu_seconds=32.0,
        banked_at=T0 + timedelta(minutes=3),
    )
    job = a_job(attempt=1).annotated(attempt_annotations(stamped)).build()
    latest = observe_trainingjob([job], []).latest
    assert latest is not None
    assert latest.carried == stamped.carried
    assert (latest.gang_started_at, latest.active_since, latest.ended) == (
        stamped.gang_started_at,
        stamped.active_since,
        end,
    )
    assert (latest.banked_gpu_seconds, latest.banked_at) == (32.0, stamped.banked_at)
