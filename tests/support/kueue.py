"""Real Kueue on the emulated cluster, for tests: a cluster started with it, and the objects
a test needs to queue work (ResourceFlavor, ClusterQueue with a GPU quota, LocalQueue), read
and created through the Kueue v1beta2 API.

`kueue_cluster(tmp_path_factory)` starts a cluster of its own with Kueue (not the session's:
Kueue takes over every Job that carries a `kueue.x-k8s.io/queue-name` label, which Plinth's
attempt Jobs do). `create_queues` makes one flavor, one ClusterQueue and one LocalQueue; the
TrainingJob end-to-end tests reuse it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

import plinth_devcluster as devcluster
from plinth.api.wellknown import LABEL_KUEUE_QUEUE_NAME
from plinth_devcluster import GPU_RESOURCE, ClusterInfo

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
QUEUE_LABEL = LABEL_KUEUE_QUEUE_NAME
CLUSTER_NAME = "plinth-kueue-test"


@contextmanager
def kueue_cluster(
    tmp_path_factory: pytest.TempPathFactory, *, nodes: int = 2
) -> Iterator[ClusterInfo]:
    """An emulated cluster (`nodes` x 8 GPUs) with Kueue running, stopped afterwards."""
    state_dir = tmp_path_factory.mktemp("kueue-devcluster")
    info = devcluster.up(CLUSTER_NAME, state_dir=state_dir, nodes=nodes, addons=("kueue",))
    try:
        yield info
    finally:
        devcluster.down(CLUSTER_NAME, state_dir=state_dir)


@dataclass(frozen=True)
class Queues:
    """The names of one flavor, ClusterQueue and LocalQueue made by `create_queues`."""

    flavor: str
    cluster_queue: str
    local_queue: str
    namespace: str


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def kueue_object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def create_flavor(api: client.ApiClient, name: str) -> None:
    """A ResourceFlavor with no node labels: any node."""
    body = kueue_object("ResourceFlavor", name, {})
    custom(api).create_cluster_custom_object(GROUP, VERSION, "resourceflavors", body)


def create_cluster_queue(
    api: client.ApiClient,
    name: str,
    flavor: str,
    *,
    gpus: int = 8,
    cpu: str = "1000",
    memory: str = "4Ti",
    preempt_lower_priority: bool = False,
) -> None:
    """A ClusterQueue for every namespace, with a `gpus` GPU quota (and cpu, memory) in
    `flavor`; with `preempt_lower_priority`, a workload evicts lower-priority ones of the
    same queue to fit."""
    quotas = {"cpu": cpu, "memory": memory, GPU_RESOURCE: str(gpus)}
    spec: dict[str, Any] = {
        "namespaceSelector": {},
        "resourceGroups": [
            {
                "coveredResources": list(quotas),
                "flavors": [
                    {
                        "name": flavor,
                        "resources": [
                            {"name": resource, "nominalQuota": quota}
                            for resource, quota in quotas.items()
                        ],
                    }
                ],
            }
        ],
    }
    if preempt_lower_priority:
        spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
    body = kueue_object("ClusterQueue", name, spec)
    custom(api).create_cluster_custom_object(GROUP, VERSION, "clusterqueues", body)


def create_local_queue(
    api: client.ApiClient, namespace: str, name: str, cluster_queue: str
) -> None:
    body = kueue_object("LocalQueue", name, {"clusterQueue": cluster_queue})
    custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, "localqueues", body)


def create_queues(
    api: client.ApiClient,
    namespace: str,
    *,
    gpus: int = 8,
    prefix: str | None = None,
    preempt_lower_priority: bool = False,
) -> Queues:
    """A flavor and a ClusterQueue named after `prefix` (default: the namespace), with a
    `gpus` GPU quota, and a LocalQueue in `namespace` that feeds it."""
    base = prefix or namespace
    queues = Queues(f"{base}-flavor", f"{base}-cq", "queue", namespace)
    create_flavor(api, queues.flavor)
    create_cluster_queue(
        api,
        queues.cluster_queue,
        queues.flavor,
        gpus=gpus,
        preempt_lower_priority=preempt_lower_priority,
    )
    create_local_queue(api, namespace, queues.local_queue, queues.cluster_queue)
    return queues


def delete_queues(api: client.ApiClient, queues: Queues) -> None:
    """Delete the ClusterQueue and flavor `create_queues` made (the LocalQueue goes with its
    namespace)."""
    custom(api).delete_cluster_custom_object(GROUP, VERSION, "clusterqueues", queues.cluster_queue)
    custom(api).delete_cluster_custom_object(GROUP, VERSION, "resourceflavors", queues.flavor)


def workloads(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """Kueue's Workloads in `namespace`."""
    found = custom(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "workloads")
    assert isinstance(found, dict)
    items: list[dict[str, Any]] = found["items"]
    return items


def conditions(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Workload's conditions by type (QuotaReserved, Admitted, PodsReady, Finished)."""
    return {c["type"]: c for c in workload.get("status", {}).get("conditions", [])}


def condition(workload: dict[str, Any], kind: str) -> bool:
    """Whether the Workload has condition `kind` True."""
    return conditions(workload).get(kind, {}).get("status") == "True"


def pending(workload: dict[str, Any]) -> bool:
    """Whether Kueue looked at the Workload and found no quota for it (QuotaReserved False)."""
    return conditions(workload).get("QuotaReserved", {}).get("status") == "False"


def workload_of_job(api: client.ApiClient, namespace: str, job: str) -> dict[str, Any] | None:
    """The Workload Kueue made for the batch/v1 Job `job`, or None (not yet)."""
    for workload in workloads(api, namespace):
        owners = workload["metadata"].get("ownerReferences", [])
        if any(o["kind"] == "Job" and o["name"] == job for o in owners):
            return workload
    return None
