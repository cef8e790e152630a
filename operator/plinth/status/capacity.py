"""The cluster's GPU capacity as a planner sees it: which nodes could take a worker now.

The runtime reads the nodes and the pods that may hold node resources (`kube.read_capacity`)
only when a plan asks for them (a gang is stuck), and hands them in as `ClusterCapacity`;
counting what fits is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plinth.api.wellknown import GPU_PRODUCT_LABEL, GPU_RESOURCE


@dataclass(frozen=True)
class ClusterCapacity:
    """Nodes, and the pods not yet finished (they may hold node resources), as the API
    server writes them."""

    nodes: tuple[Mapping[str, Any], ...]
    active_pods: tuple[Mapping[str, Any], ...]


def _pod_gpus(pod: Mapping[str, Any]) -> int:
    containers = (pod.get("spec") or {}).get("containers") or ()
    return sum(
        int(((c.get("resources") or {}).get("requests") or {}).get(GPU_RESOURCE, 0))
        for c in containers
    )


def _gpus_in_use(
    pods: Iterable[Mapping[str, Any]], ignore: Callable[[Mapping[str, Any]], bool]
) -> dict[str, int]:
    used: dict[str, int] = {}
    for pod in pods:
        if ignore(pod):
            continue
        if node_name := (pod.get("spec") or {}).get("nodeName"):
            used[node_name] = used.get(node_name, 0) + _pod_gpus(pod)
    return used


def _free_gpus(node: Mapping[str, Any], used: Mapping[str, int]) -> int:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return int(allocatable.get(GPU_RESOURCE, 0)) - used.get(node["metadata"]["name"], 0)


def _has_gpu_type(node: Mapping[str, Any], gpu_type: str | None) -> bool:
    labels = node["metadata"].get("labels") or {}
    return gpu_type is None or labels.get(GPU_PRODUCT_LABEL) == gpu_type


def nodes_that_fit(
    capacity: ClusterCapacity,
    *,
    gpus: int,
    gpu_type: str | None,
    ignore: Callable[[Mapping[str, Any]], bool],
) -> int:
    """How many schedulable nodes of `gpu_type` have `gpus` free GPUs, not counting the GPUs
    of pods for which `ignore` is true (a gang's own workers, released to place it)."""
    used = _gpus_in_use(capacity.active_pods, ignore)
    return sum(
        1
        for node in capacity.nodes
        if not (node.get("spec") or {}).get("unschedulable")
        and _has_gpu_type(node, gpu_type)
        and _free_gpus(node, used) >= gpus
    )
