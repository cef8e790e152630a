"""TrainingJobs under real Kueue (v0.17.0, built from its module): a ClusterQueue's GPU quota
admits one gang at a time, the schedule timeout counts from Kueue's admission, and a job
that fails under a queue frees its GPUs although Kueue would restart a suspended Job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from kubernetes import client

import plinth_devcluster as devcluster
from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import condition, install_crds, kubectl, start_operator
from tests.support.cluster import (
    RUN_FOREVER,
    active_pods,
    children,
    create_job,
    fresh_namespace,
    phase,
    trainingjob,
)
from tests.support.kueue import Queues, create_queues, delete_queues


@dataclass(frozen=True)
class KueueWorld:
    cluster: ClusterInfo
    api: client.ApiClient


@pytest.fixture(scope="module")
def kueue_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KueueWorld]:
    """A 4 x 8-GPU cluster with Kueue, Plinth's CRDs and an operator."""
    state = tmp_path_factory.mktemp("kueue-e2e")
    name = "plinth-kueue-e2e"
    info = devcluster.up(name, state_dir=state, nodes=4, addons=("kueue",))
    try:
        install_crds(info)
        process = start_operator(info.kubeconfig, state / "operator.log")
        try:
            with devcluster.api_client(info.kubeconfig) as api:
                yield KueueWorld(info, api)
        finally:
            process.stop()
    finally:
        devcluster.down(name, state_dir=state)


@pytest.fixture
def space(kueue_world: KueueWorld) -> Iterator[str]:
    with fresh_namespace(kueue_world.cluster, "queued") as name:
        yield name


@contextmanager
def queues_of(
    world: KueueWorld, namespace: str, gpus: int, *, preempt: bool = False
) -> Iterator[Queues]:
    """A ClusterQueue with a `gpus` quota and a LocalQueue in `namespace`, removed after."""
    queues = create_queues(world.api, namespace, gpus=gpus, preempt_lower_priority=preempt)
    try:
        yield queues
    finally:
        delete_queues(world.api, queues)


def reason(cluster: ClusterInfo, namespace: str, name: str, kind: str) -> str | None:
    found = condition(trainingjob(cluster, namespace, name), kind) or {}
    return found.get("reason") if found.get("status") in ("True", "False") else None


def test_a_gpu_quota_admits_one_gang_and_the_next_when_it_ends(
    kueue_world: KueueWorld, space: str
) -> None:
    cluster = kueue_world.cluster
    with queues_of(kueue_world, space, gpus=16) as queues:
        for name in ("first", "second"):
            create_job(
                cluster,
                space,
                name,
                queueName=queues.local_queue,
                podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "8"}},
            )
        wait_for(
            lambda: "Running" in {phase(cluster, space, n) for n in ("first", "second")},
            what="one gang admitted and running",
            timeout=60,
        )
        running = next(n for n in ("first", "second") if phase(cluster, space, n) == "Running")
        waiting = "second" if running == "first" else "first"
        assert phase(cluster, space, waiting) == "Suspended"
        assert reason(cluster, space, waiting, "Suspended") == "Queued"
        assert not active_pods(cluster, space, waiting)
        wait_for(
            lambda: phase(cluster, space, running) == "Succeeded", what="first done", timeout=60
        )
        wait_for(
            lambda: phase(cluster, space, waiting) == "Succeeded",
            what="the second admitted and done",
            timeout=90,
        )
        suspended = condition(trainingjob(cluster, space, waiting), "Suspended") or {}
        assert suspended.get("status") == "False"


def test_the_timeout_counts_from_admission_and_a_failed_gang_frees_its_gpus(
    kueue_world: KueueWorld, space: str
) -> None:
    cluster = kueue_world.cluster
    with queues_of(kueue_world, space, gpus=40) as queues:
        # Holds the whole quota for a while: the gang below waits in the queue meanwhile.
        create_job(
            cluster,
            space,
            "holder",
            nodes=4,
            queueName=queues.local_queue,
            podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "20"}},
        )
        wait_for(lambda: phase(cluster, space, "holder") == "Running", what="holder", timeout=60)
        create_job(
            cluster,
            space,
            "big",
            nodes=5,
            queueName=queues.local_queue,
            scheduling={"scheduleTimeoutSeconds": 10, "onTimeout": "fail"},
            podTemplate={"annotations": RUN_FOREVER},
        )
        wait_for(
            lambda: reason(cluster, space, "big", "Suspended") == "Queued",
            what="queued",
            timeout=30,
        )
        # Queued for longer than its timeout: that time does not count.
        wait_for(lambda: phase(cluster, space, "holder") == "Succeeded", what="done", timeout=60)
        assert phase(cluster, space, "big") != "Failed"
        wait_for(
            lambda: reason(cluster, space, "big", "Suspended") == "Admitted",
            what="admitted by Kueue",
            timeout=60,
        )
        wait_for(lambda: phase(cluster, space, "big") == "Failed", what="Failed", timeout=60)
        failed = condition(trainingjob(cluster, space, "big"), "Failed") or {}
        assert "Not placed within 10s" in failed.get("message", "")
        wait_for(
            lambda: not active_pods(cluster, space, "big"),
            what="no worker Running or Pending",
            timeout=60,
        )
        assert reason(cluster, space, "big", "Suspended") != "Queued"


def priority_class(world: KueueWorld, name: str, value: int) -> None:
    body = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
    }
    kubectl(world.cluster, "apply", "-f", "-", input_text=json.dumps(body))


def test_a_gang_kueue_preempts_is_counted_and_resumes_with_a_new_attempt(
    kueue_world: KueueWorld, space: str
) -> None:
    cluster = kueue_world.cluster
    priority_class(kueue_world, "plinth-test-low", 100)
    priority_class(kueue_world, "plinth-test-high", 1000)
    with queues_of(kueue_world, space, gpus=8, preempt=True) as queues:
        create_job(
            cluster,
            space,
            "low",
            nodes=1,
            queueName=queues.local_queue,
            priorityClassName="plinth-test-low",
            podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "25"}},
        )
        wait_for(lambda: phase(cluster, space, "low") == "Running", what="low", timeout=60)
        create_job(
            cluster,
            space,
            "high",
            nodes=1,
            queueName=queues.local_queue,
            priorityClassName="plinth-test-high",
            podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "5"}},
        )

        def preempted() -> bool:
            status = trainingjob(cluster, space, "low").get("status") or {}
            return int(status.get("preemptions", 0)) == 1

        wait_for(preempted, what="the low-priority gang preempted", timeout=60)
        assert trainingjob(cluster, space, "low")["status"]["restarts"] == 0
        wait_for(lambda: phase(cluster, space, "high") == "Succeeded", what="high", timeout=90)
        wait_for(
            lambda: phase(cluster, space, "low") == "Succeeded",
            what="the preempted gang resumed and done",
            timeout=120,
        )
        attempts = children(cluster, space, "jobs", "low")
        assert max(int(j["metadata"]["labels"]["plinth.dev/attempt"]) for j in attempts) == 1
