"""Reading Jobs and pods into observations: how each kind of failure is recognised.

The shapes below are what the Job controller and the pod garbage collector of Kubernetes
1.37 write (seen on the emulated cluster: see tests/integration/test_kwok_stages.py).
"""

from __future__ import annotations

from typing import Any

from plinth.api.v1alpha1 import parse_spec
from plinth.kube.trainingjob import TrainingJobRef, nodes_that_fit, observe_trainingjob
from plinth.status.trainingjob_observed import FailureKind, WorkerPhase

REF = TrainingJobRef(name="llm", namespace="ml", uid="u-1")


def job(attempt: int, *conditions: dict[str, str], **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"llm-r{attempt}",
            "namespace": "ml",
            "creationTimestamp": "2026-11-25T12:00:00Z",
            "labels": {"plinth.dev/job-name": "llm", "plinth.dev/attempt": str(attempt)},
            "annotations": annotations,
        },
        "spec": {"suspend": False},
        "status": {"conditions": [{"status": "True", **c} for c in conditions]},
    }


def pod(
    index: int,
    phase: str,
    attempt: int = 0,
    exit_code: int | None = None,
    node: str | None = "n1",
    **extra: Any,
) -> dict[str, Any]:
    state = (
        {"terminated": {"exitCode": exit_code, "finishedAt": "2026-11-25T12:01:00Z"}}
        if exit_code is not None
        else {"running": {}}
    )
    return {
        "metadata": {
            "name": f"llm-r{attempt}-{index}",
            "namespace": "ml",
            "labels": {"plinth.dev/job-name": "llm", "plinth.dev/attempt": str(attempt)},
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "worker", "resources": {"requests": {"nvidia.com/gpu": "8"}}}],
        },
        "status": {
            "phase": phase,
            "startTime": "2026-11-25T12:00:10Z",
            "containerStatuses": [{"name": "worker", "state": state}],
            **extra,
        },
    }


def test_a_failed_pod_is_not_judged_before_the_job_controller() -> None:
    observed = observe_trainingjob([job(0)], [pod(0, "Running"), pod(1, "Failed", exit_code=1)])
    assert observed.latest is not None
    assert observed.latest.failure is None


def test_a_crash_names_the_worker_and_its_code() -> None:
    failed = {
        "type": "Failed",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    observed = observe_trainingjob(
        [job(0, failed)], [pod(0, "Failed", exit_code=1), pod(1, "Failed", exit_code=3)]
    )
    failure = observed.latest.failure  # type: ignore[union-attr]
    assert failure is not None
    assert (failure.kind, failure.exit_code) == (FailureKind.CRASHED, 1)
    assert failure.message == "worker 0 exited with code 1"


def test_a_permanent_exit_code_is_read_from_the_pod_failure_policy_verdict() -> None:
    verdict = {
        "type": "FailureTarget",
        "reason": "PodFailurePolicy",
        "message": (
            "Container worker for pod ml/llm-r0-1 failed with exit code 2 "
            "matching FailJob rule at index 1"
        ),
    }
    observed = observe_trainingjob([job(0, verdict)], [])
    failure = observed.latest.failure  # type: ignore[union-attr]
    assert failure is not None
    assert (failure.kind, failure.exit_code) == (FailureKind.PERMANENT, 2)


def test_a_disruption_is_a_preemption_even_once_the_pod_is_gone() -> None:
    verdict = {
        "type": "Failed",
        "reason": "PodFailurePolicy",
        "message": (
            "Pod ml/llm-r0-0 has condition DisruptionTarget matching FailJob rule at index 0"
        ),
    }
    observed = observe_trainingjob([job(0, verdict)], [])
    assert observed.latest.failure.kind == FailureKind.PREEMPTED  # type: ignore[union-attr]


def test_counters_and_gang_times_come_from_the_attempts_annotations() -> None:
    annotations = {
        "plinth.dev/carried-failures": "2",
        "plinth.dev/carried-preemptions": "1",
        "plinth.dev/carried-gpu-seconds": "960.0",
        "plinth.dev/gang-released-at": "2026-11-25T12:05:00Z",
    }
    observed = observe_trainingjob(
        [job(0), job(3, **annotations)], [pod(0, "Pending", attempt=3, node=None)]
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


def node(name: str, gpus: int, product: str = "NVIDIA-H100-80GB-HBM3") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "spec": {},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}},
    }


def test_nodes_that_fit_ignore_the_jobs_own_workers_and_other_gpu_types() -> None:
    spec = parse_spec(
        "TrainingJob",
        {"image": "i", "nodes": 4, "resources": {"gpus": 8, "gpuType": "NVIDIA-H100-80GB-HBM3"}},
    )
    nodes = [node("n1", 8), node("n2", 8), node("n3", 8, "NVIDIA-A100-SXM4-80GB"), node("n4", 8)]
    other = pod(0, "Running", node="n2")
    other["metadata"] = {**other["metadata"], "namespace": "team-b", "labels": {}}
    own = pod(1, "Running", node="n1")
    assert nodes_that_fit(spec, REF, nodes, [own, other]) == 2
