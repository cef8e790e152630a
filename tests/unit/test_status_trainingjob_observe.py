"""Reading Jobs and pods into observations: crash, permanent code, disruption, GPU fit.

The objects come from tests.support.factories, in the shapes the Job controller and the pod
garbage collector of Kubernetes 1.37 write.
"""

from __future__ import annotations

from plinth.status.capacity import ClusterCapacity, nodes_that_fit
from plinth.status.trainingjob_observe import observe_trainingjob
from plinth.status.trainingjob_observed import FailureKind, WorkerPhase
from tests.support.factories import a_gpu_node, a_job, a_pod

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


def test_nodes_that_fit_ignore_the_jobs_own_workers_and_other_gpu_types() -> None:
    nodes = [a_gpu_node("n1"), a_gpu_node("n2"), a_gpu_node("n3", product=A100), a_gpu_node("n4")]
    other = a_pod(0).on_node("n2").in_namespace("team-b").not_owned().build()
    own = a_pod(1).on_node("n1").build()
    capacity = ClusterCapacity(nodes=tuple(nodes), active_pods=(own, other))
    fit = nodes_that_fit(
        capacity, gpus=8, gpu_type="NVIDIA-H100-80GB-HBM3", ignore=lambda pod: pod is own
    )
    assert fit == 2
