"""Fake GPU nodes that kwok manages: their manifests, creating many at once, waiting for Ready,
and making one go silent.

A Node is created with `nvidia.com/gpu` in its status capacity and allocatable (as the NVIDIA
device plugin would report it) and the labels GPU feature discovery sets; kwok, selecting
nodes by the `kwok.x-k8s.io/node: fake` label, marks it Ready and renews its lease.

`silence_node` plays a node whose kubelet stops reporting (crashed, partitioned): it removes
that label, so kwok forgets the node. Its lease is no longer renewed, so after the
controller manager's grace period (50 s) the node is NotReady (Ready=Unknown, tainted
unreachable) and its pods are marked not Ready; nothing plays its pods any more, so a pod
deleted there stays terminating, its phase still Running. `revive_node` puts the label back:
kwok takes the node up again, marks it Ready and finishes what its pods were doing (see
stages/README.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from plinth_devcluster.components import FAKE_NODE_ANNOTATION, FAKE_NODE_LABEL
from plinth_devcluster.waiting import no_watchdog, wait_for

GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
POOL_LABEL = "plinth.dev/node-pool"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
CREATE_WORKERS = 16
LIFECYCLE_TAINTS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
#: Set on the pods of a revived node, so that kwok plays them again.
REVIVED_ANNOTATION = "devcluster.plinth.dev/revived-at"


@dataclass(frozen=True)
class GpuNodePool:
    """A set of identical fake GPU nodes named `<name_prefix>-<index>`."""

    count: int = 4
    gpus_per_node: int = 8
    gpu_product: str = DEFAULT_GPU_PRODUCT
    name_prefix: str = "gpu-node"
    first_index: int = 0
    cpu: str = "192"
    memory: str = "2Ti"
    pods: int = 110
    taint: bool = False

    def __post_init__(self) -> None:
        if self.count < 0 or self.gpus_per_node < 0:
            raise ValueError("a node pool needs count >= 0 and gpus_per_node >= 0")

    @property
    def selector(self) -> str:
        """The label selector matching exactly this pool's nodes."""
        return f"{POOL_LABEL}={self.name_prefix}"

    def node_names(self) -> list[str]:
        return [
            f"{self.name_prefix}-{i}"
            for i in range(self.first_index, self.first_index + self.count)
        ]

    def resources(self) -> dict[str, str]:
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.pods),
            "ephemeral-storage": "10Ti",
            GPU_RESOURCE: str(self.gpus_per_node),
        }

    def labels(self, name: str) -> dict[str, str]:
        kwok_key, kwok_value = FAKE_NODE_LABEL
        return {
            kwok_key: kwok_value,
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            POOL_LABEL: self.name_prefix,
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": self.gpu_product,
            "nvidia.com/gpu.count": str(self.gpus_per_node),
        }

    def manifest(self, name: str) -> dict[str, Any]:
        """The Node object for one member of the pool."""
        key, value = FAKE_NODE_ANNOTATION
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": self.labels(name), "annotations": {key: value}},
            "spec": {"taints": [GPU_TAINT]} if self.taint else {},
            "status": {"capacity": self.resources(), "allocatable": self.resources()},
        }

    def node(self, name: str) -> client.V1Node:
        """The manifest as the client's model."""
        node = client.V1Node.from_dict(self.manifest(name))
        assert node is not None
        return node


def api_client(kubeconfig: Path, pool_size: int = CREATE_WORKERS * 2) -> client.ApiClient:
    """A Kubernetes API client for `kubeconfig`, with room for concurrent requests."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]  # kubernetes.config is untyped
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def create_nodes(api: client.ApiClient, pool: GpuNodePool) -> list[str]:
    """Create the pool's nodes concurrently; return their names."""
    core = client.CoreV1Api(api)
    names = pool.node_names()
    with ThreadPoolExecutor(
        max_workers=CREATE_WORKERS, thread_name_prefix="create-node"
    ) as workers:
        list(workers.map(lambda name: core.create_node(body=pool.node(name)), names))
    return names


def is_ready(node: dict[str, Any]) -> bool:
    """Ready, and no longer carrying the not-ready/unreachable taints (so pods can land)."""
    conditions = node.get("status", {}).get("conditions") or []
    taints = node.get("spec", {}).get("taints") or []
    condition_ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )
    return condition_ready and not any(t.get("key") in LIFECYCLE_TAINTS for t in taints)


def list_nodes_raw(api: client.ApiClient, selector: str) -> list[dict[str, Any]]:
    """Nodes matching `selector` as plain JSON (fast for thousands of nodes)."""
    core = client.CoreV1Api(api)
    response: Any = core.list_node(label_selector=selector, _preload_content=False)
    return cast(list[dict[str, Any]], json.loads(response.data)["items"])


def ready_node_names(api: client.ApiClient, selector: str) -> set[str]:
    return {str(n["metadata"]["name"]) for n in list_nodes_raw(api, selector) if is_ready(n)}


def wait_nodes_ready(
    api: client.ApiClient,
    pool: GpuNodePool,
    *,
    timeout: float,
    watchdog: Callable[[], None] = no_watchdog,
) -> float:
    """Wait until every node of the pool reports Ready; return the seconds it took."""
    wanted = set(pool.node_names())
    return wait_for(
        lambda: wanted <= ready_node_names(api, pool.selector),
        what=f"{pool.count} nodes {pool.selector} to be Ready",
        timeout=timeout,
        interval=0.5,
        watchdog=watchdog,
    )


def _set_kwok_label(api: client.ApiClient, name: str, value: str | None) -> None:
    key, _ = FAKE_NODE_LABEL
    client.CoreV1Api(api).patch_node(name, {"metadata": {"labels": {key: value}}})


def silence_node(api: client.ApiClient, name: str) -> None:
    """Make node `name` stop reporting, as a node whose kubelet died: kwok forgets it."""
    _set_kwok_label(api, name, None)


def _lease_renewed_at(api: client.ApiClient, name: str) -> Any:
    coordination = client.CoordinationV1Api(api)
    response: Any = coordination.read_namespaced_lease(
        name, "kube-node-lease", _preload_content=False
    )
    return json.loads(response.data).get("spec", {}).get("renewTime")


def revive_node(api: client.ApiClient, name: str, *, timeout: float = 30.0) -> None:
    """Let node `name` report again: kwok takes it up (its lease renewed), marks it Ready and
    plays its pods again. kwok (v0.8.0) does not replay the pods of a node it takes up again
    until they change, so each is touched (annotation `devcluster.plinth.dev/revived-at`)
    once kwok holds the node's lease."""
    _, value = FAKE_NODE_LABEL
    last = _lease_renewed_at(api, name)
    _set_kwok_label(api, name, value)
    wait_for(
        lambda: _lease_renewed_at(api, name) != last,
        what=f"kwok to take up node {name} again",
        timeout=timeout,
    )
    core = client.CoreV1Api(api)
    touched = {"metadata": {"annotations": {REVIVED_ANNOTATION: str(time.time())}}}
    response: Any = core.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={name}", _preload_content=False
    )
    for pod in json.loads(response.data)["items"]:
        metadata = pod["metadata"]
        try:
            core.patch_namespaced_pod(metadata["name"], metadata["namespace"], touched)
        except ApiException as error:
            if error.status != 404:  # gone meanwhile: nothing to replay
                raise
