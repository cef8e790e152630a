"""Real Kueue on the emulated cluster queues suspended Jobs by GPU quota.

A ClusterQueue with 8 GPUs and two suspended 8-GPU Jobs labelled with its LocalQueue, as
Plinth creates its attempt Jobs: Kueue admits (unsuspends) the first, keeps the second
suspended with its Workload pending, and admits the second once kwok completes the first's
pod. With waitForPodsReady on, the admitted Workload is also marked PodsReady.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from plinth_devcluster import GPU_RESOURCE
from plinth_devcluster.waiting import wait_for
from tests.support.kueue import (
    QUEUE_LABEL,
    Queues,
    condition,
    conditions,
    create_queues,
    delete_queues,
    pending,
    workload_of_job,
)

pytestmark = pytest.mark.cluster

ANNOTATION = "devcluster.plinth.dev/"


@pytest.fixture
def queues(kueue_api: client.ApiClient) -> Iterator[Queues]:
    """A fresh namespace with a LocalQueue feeding an 8-GPU ClusterQueue; all deleted after."""
    core = client.CoreV1Api(kueue_api)
    name = f"kueue-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    made = create_queues(kueue_api, name, gpus=8)
    yield made
    core.delete_namespace(name)
    delete_queues(kueue_api, made)


def gpu_job(name: str, queue: str, run_seconds: int) -> dict[str, Any]:
    """A suspended Job of one 8-GPU pod, queued to `queue`, running `run_seconds` on kwok."""
    resources = {"cpu": "1", "memory": "1Gi", GPU_RESOURCE: "8"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: queue}},
        "spec": {
            "suspend": True,
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {f"{ANNOTATION}run-seconds": str(run_seconds)}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "worker",
                            "image": "registry.example/trainer:1",
                            "resources": {"requests": resources, "limits": resources},
                        }
                    ],
                },
            },
        },
    }


def create_job(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    client.BatchV1Api(api).create_namespaced_job(namespace, manifest)  # type: ignore[arg-type]


def job(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The Job as plain JSON (spec and status)."""
    found: dict[str, Any] = client.BatchV1Api(api).api_client.sanitize_for_serialization(
        client.BatchV1Api(api).read_namespaced_job(name, namespace)
    )
    return found


def suspended(api: client.ApiClient, namespace: str, name: str) -> bool:
    return bool(job(api, namespace, name)["spec"].get("suspend"))


def succeeded(api: client.ApiClient, namespace: str, name: str) -> bool:
    return int(job(api, namespace, name).get("status", {}).get("succeeded") or 0) >= 1


def workload(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def made() -> bool:
        found[:] = [w for w in [workload_of_job(api, namespace, name)] if w is not None]
        return bool(found)

    wait_for(made, what=f"Kueue's Workload for Job {name}", timeout=60)
    return found[0]


def workload_has(api: client.ApiClient, namespace: str, name: str, kind: str) -> bool:
    found = workload_of_job(api, namespace, name)
    return found is not None and condition(found, kind)


def test_kueue_admits_8_gpu_jobs_one_at_a_time(kueue_api: client.ApiClient, queues: Queues) -> None:
    namespace = queues.namespace
    create_job(kueue_api, namespace, gpu_job("first", queues.local_queue, 15))
    wait_for(
        lambda: not suspended(kueue_api, namespace, "first"), what="first admitted", timeout=60
    )
    assert workload_has(kueue_api, namespace, "first", "Admitted")

    create_job(kueue_api, namespace, gpu_job("second", queues.local_queue, 1))
    wait_for(
        lambda: pending(workload(kueue_api, namespace, "second")),
        what="second's Workload pending",
        timeout=30,
    )
    waiting = conditions(workload(kueue_api, namespace, "second"))["QuotaReserved"]
    assert waiting["reason"] == "Pending", waiting
    assert suspended(kueue_api, namespace, "second")
    assert not succeeded(kueue_api, namespace, "first")

    wait_for(
        lambda: workload_has(kueue_api, namespace, "first", "PodsReady"),
        what="first PodsReady (waitForPodsReady)",
        timeout=30,
    )
    wait_for(lambda: succeeded(kueue_api, namespace, "first"), what="first done", timeout=60)
    wait_for(
        lambda: not suspended(kueue_api, namespace, "second"), what="second admitted", timeout=60
    )
    assert workload_has(kueue_api, namespace, "second", "Admitted")
    wait_for(lambda: succeeded(kueue_api, namespace, "second"), what="second done", timeout=60)
