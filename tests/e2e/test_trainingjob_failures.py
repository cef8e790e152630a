"""TrainingJob failures end to end: crashes, permanent exit codes, eviction, node loss, a node
whose kubelet goes silent, and elastic members that leave.

kwok plays the workers; pod annotations (devcluster.plinth.dev/...) make them fail with an
exit code or keep running. What is asserted is what `kubectl get trainingjob` shows.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from plinth_devcluster import ClusterInfo, revive_node, silence_node
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import (
    OperatorProcess,
    condition,
    event_reasons,
    kubectl,
    kubectl_json,
)
from tests.support.cluster import (
    RUN_FOREVER,
    active_pods,
    children,
    create_job,
    phase,
    trainingjob,
)


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
    """The status says the gang of `attempt` runs (a status written after that attempt's
    Job was created; until then it still tells the attempt before), and its Job exists."""
    status = status_of(cluster, namespace, name)
    running = next(
        (c for c in status.get("conditions", ()) if c["type"] == "Running"), {"status": ""}
    )
    return (
        status.get("phase") == "Running"
        and running["status"] == "True"
        and f"(attempt {attempt})" in running.get("message", "")
        and any(
            j["metadata"]["name"] == f"{name}-r{attempt}"
            for j in children(cluster, namespace, "jobs", name)
        )
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


def pods_by_index(cluster: ClusterInfo, namespace: str, name: str) -> dict[int, dict[str, Any]]:
    """The active worker pods, by node rank."""
    return {
        int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]): pod
        for pod in active_pods(cluster, namespace, name)
    }


def cordon(api_client: client.ApiClient, node: str, unschedulable: bool = True) -> None:
    client.CoreV1Api(api_client).patch_node(node, {"spec": {"unschedulable": unschedulable}})


def test_an_elastic_job_carries_on_when_members_leave(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, api_client: client.ApiClient
) -> None:
    """Members deleted or drained are replaced while the others keep running (the same pods):
    torchrun's c10d rendezvous takes a membership change, not a crash. Below maxNodes the job
    runs at the smaller size and grows back once a replacement is placed."""
    create_job(
        cluster,
        namespace,
        "elastic",
        nodes=None,
        elastic={"minNodes": 2, "maxNodes": 3, "maxRestarts": 3},
        restartPolicy={"backoffLimit": 0},
        podTemplate={"annotations": RUN_FOREVER},
    )

    def size(nodes: int) -> bool:
        status = status_of(cluster, namespace, "elastic")
        return status.get("phase") == "Running" and status.get("nodes") == nodes

    wait_for(lambda: size(3), what="3 members Running", timeout=60)
    first = pods_by_index(cluster, namespace, "elastic")
    host = first[0]["metadata"]["uid"]
    drained = first[2]["spec"]["nodeName"]
    cordoned = [drained]
    cordon(api_client, drained)
    try:
        evict(api_client, namespace, first[2]["metadata"]["name"])  # kubectl drain
        wait_for(
            lambda: status_of(cluster, namespace, "elastic").get("membershipChanges") == 1,
            what="a membership change",
            timeout=30,
        )
        wait_for(lambda: size(3), what="member 2 replaced", timeout=60)
        kubectl(cluster, "-n", namespace, "delete", "pod", first[1]["metadata"]["name"])
        wait_for(
            lambda: status_of(cluster, namespace, "elastic").get("membershipChanges") == 2,
            what="a second membership change",
            timeout=30,
        )
        wait_for(lambda: size(3), what="member 1 replaced", timeout=60)
        # Every other node is taken now: a member that leaves cannot be replaced at once.
        now = pods_by_index(cluster, namespace, "elastic")
        evict(api_client, namespace, now[2]["metadata"]["name"])
        wait_for(lambda: size(2), what="running at the smaller size", timeout=60)
        cordon(api_client, drained, unschedulable=False)
        cordoned.remove(drained)
        wait_for(lambda: size(3), what="grown back to maxNodes", timeout=60)
    finally:
        for node in cordoned:
            cordon(api_client, node, unschedulable=False)
    job = trainingjob(cluster, namespace, "elastic")
    status = job["status"]
    assert (status["restarts"], status["preemptions"], status["membershipChanges"]) == (0, 0, 3)
    assert condition(job, "Failed") is None
    assert pods_by_index(cluster, namespace, "elastic")[0]["metadata"]["uid"] == host
    assert [j["metadata"]["name"] for j in children(cluster, namespace, "jobs", "elastic")] == [
        "elastic-r0"
    ]


def node_ready(api_client: client.ApiClient, name: str) -> bool:
    node = client.CoreV1Api(api_client).read_node(name)
    ready = {c.type: c.status for c in node.status.conditions or ()}.get("Ready")
    taints = {t.key for t in node.spec.taints or ()}
    return ready == "True" and not taints & {
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/not-ready",
    }


def test_a_silent_node_is_a_preemption_and_the_gang_moves_without_waiting_for_it(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, api_client: client.ApiClient
) -> None:
    """A worker's kubelet stops reporting: its pod still says Running, and once deleted it
    can never finish terminating. Within the controller manager's grace (50 s) plus
    nodeLostTimeoutSeconds, Plinth counts a preemption and the gang runs on other nodes."""
    create_job(
        cluster,
        namespace,
        "silent",
        restartPolicy={"backoffLimit": 0, "nodeLostTimeoutSeconds": 10},
        podTemplate={"annotations": RUN_FOREVER},
    )
    wait_for(lambda: running_attempt(cluster, namespace, "silent", 0), what="Running", timeout=60)
    lost = pods_by_index(cluster, namespace, "silent")[1]
    node_name = lost["spec"]["nodeName"]
    silence_node(api_client, node_name)
    try:
        wait_for(
            lambda: running_attempt(cluster, namespace, "silent", 1),
            what="attempt 1 Running",
            timeout=150,
        )
        status = status_of(cluster, namespace, "silent")
        assert (status["restarts"], status["preemptions"]) == (0, 1)
        assert status["workers"]["running"] == 2
        assert status["workers"].get("unknown", 0) == 0
        moved = pods_by_index(cluster, namespace, "silent")
        assert node_name not in {pod["spec"]["nodeName"] for pod in moved.values()}
        assert "Preempted" in event_reasons(cluster, namespace, "silent")
        # The lost worker never confirmed its end: it is still there, terminating.
        stuck = kubectl_json(
            cluster, "-n", namespace, "get", "pod", lost["metadata"]["name"], "--ignore-not-found"
        )
        assert stuck["metadata"].get("deletionTimestamp")
        assert stuck["status"]["phase"] == "Running"
    finally:
        revive_node(api_client, node_name)
        wait_for(lambda: node_ready(api_client, node_name), what="the node Ready", timeout=90)

    def stuck_pod_gone() -> bool:
        name = lost["metadata"]["name"]
        return not kubectl_json(
            cluster, "-n", namespace, "get", "pods", "--field-selector", f"metadata.name={name}"
        )["items"]

    wait_for(stuck_pod_gone, what="the node, back, to finish the deletion", timeout=60)
