"""Crash safety: the operator SIGKILLed at random moments while 20 TrainingJobs run.

Each kill lands wherever the operator happens to be (mid-apply, mid-status-patch, between
creating an attempt and recording it). Restarted, it must converge: every job ends in the
state its workers dictate, no job ever has more active workers than nodes, and no Job or pod
is left without its TrainingJob.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, condition, kubectl, kubectl_json, start_operator
from tests.support.cluster import create_job

JOBS = 20
SEED = 20261125
#: Kills happen while jobs start, fail, restart and finish, and go on after they finished.
MIN_KILLS = 8


def kind_of(index: int) -> str:
    return ("succeeds", "crashes", "permanent", "succeeds")[index % 4]


def pod_template(kind: str) -> dict[str, Any]:
    annotations = {"devcluster.plinth.dev/run-seconds": "6"}
    if kind == "crashes":
        annotations |= {"devcluster.plinth.dev/exit-code": "1"}
    if kind == "permanent":
        annotations |= {"devcluster.plinth.dev/exit-code": "2"}
    return {"annotations": annotations}


def expected(kind: str) -> tuple[str, str, int]:
    """(phase, reason of the deciding condition, restarts) a job of `kind` must end with."""
    return {
        "succeeds": ("Succeeded", "AllWorkersSucceeded", 0),
        "crashes": ("Failed", "BackoffLimitExceeded", 1),
        "permanent": ("Failed", "PermanentExitCode", 0),
    }[kind]


def items(cluster: ClusterInfo, namespace: str, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = kubectl_json(cluster, "-n", namespace, "get", kind)["items"]
    return found


def most_active_workers(cluster: ClusterInfo, namespace: str) -> int:
    active: dict[str, int] = {}
    for pod in items(cluster, namespace, "pods"):
        if pod["status"].get("phase") in ("Pending", "Running") and not pod["metadata"].get(
            "deletionTimestamp"
        ):
            job = pod["metadata"]["labels"]["plinth.dev/trainingjob"]
            active[job] = active.get(job, 0) + 1
    return max(active.values(), default=0)


def finished(cluster: ClusterInfo, namespace: str) -> bool:
    jobs = items(cluster, namespace, "trainingjobs")
    return len(jobs) == JOBS and all(
        j.get("status", {}).get("phase") in ("Succeeded", "Failed") for j in jobs
    )


def test_random_operator_kills_converge_to_the_right_end_states(
    installed_crds: ClusterInfo, namespace: str, tmp_path: Path
) -> None:
    cluster, chance = installed_crds, random.Random(SEED)
    log = tmp_path / "operator.log"
    operator: OperatorProcess = start_operator(cluster.kubeconfig, log)
    kinds = {f"job-{i:02d}": kind_of(i) for i in range(JOBS)}
    for name, kind in kinds.items():
        create_job(
            cluster,
            namespace,
            name,
            nodes=2,
            resources={"gpus": 1},
            restartPolicy={"backoffLimit": 1, "permanentExitCodes": [2]},
            podTemplate=pod_template(kind),
        )
    kills, most_workers, deadline = 0, 0, time.monotonic() + 240
    try:
        while (
            kills < MIN_KILLS or not finished(cluster, namespace)
        ) and time.monotonic() < deadline:
            time.sleep(chance.uniform(0.2, 2.0))
            operator.stop(signal.SIGKILL)
            kills += 1
            most_workers = max(most_workers, most_active_workers(cluster, namespace))
            operator = start_operator(cluster.kubeconfig, log)
        wait_for(lambda: finished(cluster, namespace), what="every job finished", timeout=120)
    finally:
        operator.stop()
    print(f"operator killed {kills} times")
    assert most_workers <= 2, "a job had more active workers than nodes"
    for job in items(cluster, namespace, "trainingjobs"):
        name, status = job["metadata"]["name"], job["status"]
        phase, reason, restarts = expected(kinds[name])
        assert (status["phase"], status["restarts"]) == (phase, restarts), (name, status)
        assert condition(job, phase)["reason"] == reason, (name, status)  # type: ignore[index]
    owners = {job["metadata"]["uid"] for job in items(cluster, namespace, "trainingjobs")}
    for kind in ("jobs", "pods", "services", "secrets"):
        for child in items(cluster, namespace, kind):
            labels = child["metadata"].get("labels") or {}
            if "plinth.dev/trainingjob" in labels and kind != "pods":
                assert child["metadata"]["ownerReferences"][0]["uid"] in owners, child["metadata"][
                    "name"
                ]
    attempts_per_job: dict[str, int] = {}
    for attempt in items(cluster, namespace, "jobs"):
        job_name = attempt["metadata"]["labels"]["plinth.dev/trainingjob"]
        attempts_per_job[job_name] = attempts_per_job.get(job_name, 0) + 1
    assert set(attempts_per_job.values()) == {1}, attempts_per_job
    kubectl(cluster, "-n", namespace, "delete", "trainingjobs", "--all", "--wait=true")
