"""TrainingJob failures end to end: crashes, permanent exit codes, eviction and node loss.

kwok plays the workers; pod annotations (devcluster.plinth.dev/...) make them fail with an
exit code or keep running. What is asserted is what `kubectl get trainingjob` shows.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, condition, event_reasons, kubectl
from tests.support.cluster import (
    active_pods,
    children,
    create_job,
    phase,
    trainingjob,
)

RUN_FOREVER = {"devcluster.plinth.dev/run-forever": "true"}


def failing(code: int, index: int = 1) -> dict[str, Any]:
    return {
        "annotations": {
            "devcluster.plinth.dev/exit-code": str(code),
            "devcluster.plinth.dev/fail-index": str(index),
        }
    }


def status_of(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = trainingjob(cluster, namespace, name).get("status", {})
    return found


def test_a_crashing_worker_restarts_the_gang_until_the_backoff_limit(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(
        cluster,
        namespace,
        "crashy",
        restartPolicy={"backoffLimit": 2},
        podTemplate=failing(1),
    )
    wait_for(lambda: phase(cluster, namespace, "crashy") == "Failed", what="Failed", timeout=120)
    job = trainingjob(cluster, namespace, "crashy")
    failed = condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "worker 1 exited with code 1" in failed["message"]
    assert (job["status"]["restarts"], job["status"]["preemptions"]) == (2, 0)
    assert [j["metadata"]["name"] for j in children(cluster, namespace, "jobs", "crashy")] == [
        "crashy-r2"
    ]
    assert "WorkerFailed" in event_reasons(cluster, namespace, "crashy")


def test_a_permanent_exit_code_fails_at_once(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(
        cluster,
        namespace,
        "typo",
        restartPolicy={"backoffLimit": 5, "permanentExitCodes": [2]},
        podTemplate=failing(2),
    )
    wait_for(lambda: phase(cluster, namespace, "typo") == "Failed", what="Failed", timeout=60)
    status = status_of(cluster, namespace, "typo")
    failed = condition({"status": status}, "Failed")
    assert failed is not None
    assert failed["reason"] == "PermanentExitCode"
    assert "code 2" in failed["message"]
    assert status["restarts"] == 0
    assert not active_pods(cluster, namespace, "typo")


def evict(api_client: client.ApiClient, namespace: str, pod: str) -> None:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
    client.CoreV1Api(api_client).create_namespaced_pod_eviction(pod, namespace, body)


def running_attempt(cluster: ClusterInfo, namespace: str, name: str, attempt: int) -> bool:
    status = status_of(cluster, namespace, name)
    return status.get("phase") == "Running" and any(
        j["metadata"]["name"] == f"{name}-r{attempt}"
        for j in children(cluster, namespace, "jobs", name)
    )


def test_an_evicted_worker_is_a_preemption_not_a_failure(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, api_client: client.ApiClient
) -> None:
    create_job(
        cluster,
        namespace,
        "evicted",
        restartPolicy={"backoffLimit": 0},
        podTemplate={"annotations": RUN_FOREVER},
    )
    wait_for(lambda: running_attempt(cluster, namespace, "evicted", 0), what="Running", timeout=60)
    victim = active_pods(cluster, namespace, "evicted")[0]["metadata"]["name"]
    evict(api_client, namespace, victim)
    wait_for(
        lambda: running_attempt(cluster, namespace, "evicted", 1),
        what="attempt 1 Running",
        timeout=90,
    )
    status = status_of(cluster, namespace, "evicted")
    assert (status["restarts"], status["preemptions"]) == (0, 1)
    assert len(active_pods(cluster, namespace, "evicted")) <= 2


def test_a_lost_node_is_a_preemption_and_the_gang_moves(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, api_client: client.ApiClient
) -> None:
    create_job(
        cluster,
        namespace,
        "nodeloss",
        nodes=1,
        restartPolicy={"backoffLimit": 0},
        podTemplate={"annotations": RUN_FOREVER},
    )
    wait_for(lambda: running_attempt(cluster, namespace, "nodeloss", 0), what="Running", timeout=60)
    (worker,) = active_pods(cluster, namespace, "nodeloss")
    node_name = worker["spec"]["nodeName"]
    core = client.CoreV1Api(api_client)
    node = core.read_node(node_name)
    core.delete_node(node_name)
    try:
        wait_for(
            lambda: running_attempt(cluster, namespace, "nodeloss", 1),
            what="attempt 1 Running",
            timeout=150,
        )
        status = status_of(cluster, namespace, "nodeloss")
        assert (status["restarts"], status["preemptions"]) == (0, 1)
        (moved,) = active_pods(cluster, namespace, "nodeloss")
        assert moved["spec"]["nodeName"] != node_name
    finally:
        restored = api_client.sanitize_for_serialization(node)
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            restored["metadata"].pop(key, None)
        kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(restored))
