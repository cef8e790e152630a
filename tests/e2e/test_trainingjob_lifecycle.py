"""TrainingJobs end to end: the operator process, the real API server, kwok GPU nodes.

What a user would see with `kubectl`: children created and owned, the job Running and
Succeeded, a gang that cannot fit released whole with the reason, suspend and resume (and
the deadline they pause), status that follows the pods to the end, and deletion that leaves
nothing behind.
"""

from __future__ import annotations

import json
import time

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


def set_suspend(cluster: ClusterInfo, namespace: str, name: str, value: bool) -> None:
    patch = json.dumps({"spec": {"suspend": value}})
    kubectl(cluster, "-n", namespace, "patch", "trainingjob", name, "--type=merge", "-p", patch)


def suspend(cluster: ClusterInfo, namespace: str, name: str) -> None:
    set_suspend(cluster, namespace, name, True)


def resume(cluster: ClusterInfo, namespace: str, name: str) -> None:
    set_suspend(cluster, namespace, name, False)


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


def phases_until(
    cluster: ClusterInfo, namespace: str, name: str, final: str, timeout: float
) -> list[str]:
    """Every phase status shows (polled), until it shows `final`."""
    seen: list[str] = []

    def reached() -> bool:
        current = phase(cluster, namespace, name)
        if current and (not seen or seen[-1] != current):
            seen.append(current)
        return current == final

    wait_for(reached, what=final, timeout=timeout, interval=0.2)
    return seen


def test_a_job_suspended_past_its_deadline_runs_and_succeeds(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    """The deadline counts time spent started: a suspension before the first start pauses
    nothing (a queue holding the job is the same)."""
    create_job(
        cluster,
        namespace,
        "held",
        nodes=1,
        activeDeadlineSeconds=30,
        suspend=True,
        podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "10"}},
    )
    wait_for(lambda: phase(cluster, namespace, "held") == "Suspended", what="held", timeout=30)
    time.sleep(40)
    assert phase(cluster, namespace, "held") == "Suspended"
    resume(cluster, namespace, "held")
    seen = phases_until(cluster, namespace, "held", "Succeeded", timeout=60)
    assert "Failed" not in seen
    status = trainingjob(cluster, namespace, "held")["status"]
    assert status["startTime"]
    assert status["workers"]["succeeded"] == 1


def test_suspending_a_running_job_pauses_its_deadline_and_resumes_a_new_attempt(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    create_job(
        cluster,
        namespace,
        "pausable",
        nodes=1,
        activeDeadlineSeconds=30,
        podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "10"}},
    )
    wait_for(lambda: phase(cluster, namespace, "pausable") == "Running", what="Running", timeout=60)
    time.sleep(3)
    suspend(cluster, namespace, "pausable")
    wait_for(
        lambda: phase(cluster, namespace, "pausable") == "Suspended",
        what="Suspended",
        timeout=30,
    )
    wait_for(lambda: not active_pods(cluster, namespace, "pausable"), what="no pod", timeout=30)
    time.sleep(35)  # longer than the deadline: the clock is paused
    resume(cluster, namespace, "pausable")
    phases_until(cluster, namespace, "pausable", "Succeeded", timeout=60)
    status = trainingjob(cluster, namespace, "pausable")["status"]
    assert (status["restarts"], status["preemptions"]) == (0, 0)
    (attempt,) = children(cluster, namespace, "jobs", "pausable")
    assert attempt["metadata"]["name"] == "pausable-r1"


def test_status_follows_the_pods_to_the_end(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    """Once the gang ran, the phase never goes back to Pending; after a deadline failure no
    worker is counted running once the pods are gone."""
    create_job(
        cluster,
        namespace,
        "truthful",
        podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "3"}},
    )
    seen = phases_until(cluster, namespace, "truthful", "Succeeded", timeout=60)
    assert "Pending" not in seen[seen.index("Running") :], seen
    create_job(
        cluster,
        namespace,
        "overdue",
        activeDeadlineSeconds=5,
        podTemplate={"annotations": {"devcluster.plinth.dev/run-forever": "true"}},
    )
    wait_for(lambda: phase(cluster, namespace, "overdue") == "Failed", what="Failed", timeout=60)
    failed = condition(trainingjob(cluster, namespace, "overdue"), "Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"
    wait_for(lambda: not active_pods(cluster, namespace, "overdue"), what="no pod", timeout=30)
    wait_for(
        lambda: (
            trainingjob(cluster, namespace, "overdue")["status"]["workers"].get("running", 0) == 0
        ),
        what="no worker counted running",
        timeout=30,
    )
