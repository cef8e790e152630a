"""TrainingJobs end to end: the operator process, the real API server, kwok GPU nodes.

What a user would see with `kubectl`: children created and owned, the job Running and
Succeeded, a gang that cannot fit released whole with the reason, suspend and resume, and
deletion that leaves nothing behind.
"""

from __future__ import annotations

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, condition, event_reasons, kubectl, kubectl_json
from tests.support.cluster import active_pods, children, create_job, phase, trainingjob


def test_a_two_node_gpu_job_runs_and_succeeds_with_owned_children(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(
        cluster,
        namespace,
        "llm",
        podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "4"}},
    )
    wait_for(lambda: phase(cluster, namespace, "llm") == "Running", what="Running", timeout=60)
    running = trainingjob(cluster, namespace, "llm")
    assert running["status"]["workers"]["running"] == 2
    assert condition(running, "Scheduled")["status"] == "True"  # type: ignore[index]
    wait_for(lambda: phase(cluster, namespace, "llm") == "Succeeded", what="Succeeded", timeout=60)
    job = trainingjob(cluster, namespace, "llm")
    status = job["status"]
    assert (status["nodes"], status["gpus"], status["restarts"]) == (2, 16, 0)
    assert status["workers"]["succeeded"] == 2
    assert condition(job, "Succeeded")["status"] == "True"  # type: ignore[index]
    assert status["completionTime"]
    uid = job["metadata"]["uid"]
    for kind in ("jobs", "services", "secrets"):
        (child,) = children(cluster, namespace, kind, "llm")
        assert child["metadata"]["ownerReferences"][0]["uid"] == uid
    (attempt,) = children(cluster, namespace, "jobs", "llm")
    assert attempt["metadata"]["name"] == "llm-r0"
    assert "AllWorkersSucceeded" in event_reasons(cluster, namespace, "llm")


def test_a_gang_that_cannot_fit_is_released_and_says_why(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(
        cluster,
        namespace,
        "huge",
        nodes=6,
        scheduling={"scheduleTimeoutSeconds": 10},
        podTemplate={"annotations": {"devcluster.plinth.dev/run-forever": "true"}},
    )

    def released() -> bool:
        job = trainingjob(cluster, namespace, "huge")
        scheduled = condition(job, "Scheduled") or {}
        return scheduled.get("reason") == "GangTimeout"

    wait_for(released, what="the gang released", timeout=60)
    message = condition(trainingjob(cluster, namespace, "huge"), "Scheduled")["message"]  # type: ignore[index]
    assert "needs 6 nodes x 8 nvidia.com/gpu; 4 fit" in message
    wait_for(
        lambda: not active_pods(cluster, namespace, "huge"),
        what="no worker holding a GPU",
        timeout=30,
    )
    assert phase(cluster, namespace, "huge") == "Pending"


def test_suspend_stops_every_worker_and_resume_starts_them(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(cluster, namespace, "paused", suspend=True)
    wait_for(
        lambda: phase(cluster, namespace, "paused") == "Suspended", what="Suspended", timeout=30
    )
    (attempt,) = children(cluster, namespace, "jobs", "paused")
    assert attempt["spec"]["suspend"] is True
    assert not active_pods(cluster, namespace, "paused")
    kubectl(
        cluster,
        "-n",
        namespace,
        "patch",
        "trainingjob",
        "paused",
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
    )
    wait_for(
        lambda: phase(cluster, namespace, "paused") == "Succeeded",
        what="resumed and done",
        timeout=60,
    )


def test_deleting_a_job_removes_every_child(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(cluster, namespace, "doomed", suspend=True)
    wait_for(lambda: children(cluster, namespace, "jobs", "doomed"), what="children", timeout=30)
    kubectl(cluster, "-n", namespace, "delete", "trainingjob", "doomed", "--wait=true")

    def all_gone() -> bool:
        return not any(
            children(cluster, namespace, kind, "doomed")
            for kind in ("jobs", "pods", "services", "secrets")
        )

    wait_for(all_gone, what="every child garbage-collected", timeout=60)


def test_a_finished_job_is_deleted_after_its_ttl(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(cluster, namespace, "brief", ttlSecondsAfterFinished=2)
    wait_for(
        lambda: not kubectl_json(cluster, "-n", namespace, "get", "trainingjobs")["items"],
        what="the TrainingJob deleted after its TTL",
        timeout=60,
    )
    wait_for(
        lambda: not children(cluster, namespace, "jobs", "brief"), what="its Job gone", timeout=60
    )


def test_a_queued_job_waits_for_kueue_and_plinth_never_unsuspends_it(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(cluster, namespace, "queued", queueName="team-a")
    wait_for(
        lambda: phase(cluster, namespace, "queued") == "Suspended", what="Suspended", timeout=30
    )
    suspended = condition(trainingjob(cluster, namespace, "queued"), "Suspended")
    assert suspended is not None and suspended["reason"] == "Queued"
    (attempt,) = children(cluster, namespace, "jobs", "queued")
    assert attempt["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert attempt["spec"]["suspend"] is True
    assert not active_pods(cluster, namespace, "queued")
    # Admission, as Kueue performs it: the Job is unsuspended by someone else.
    kubectl(
        cluster,
        "-n",
        namespace,
        "patch",
        "job",
        "queued-r0",
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
    )
    wait_for(
        lambda: phase(cluster, namespace, "queued") == "Succeeded",
        what="admitted and done",
        timeout=60,
    )
