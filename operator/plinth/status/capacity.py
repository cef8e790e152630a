"""The cluster's GPU capacity as a planner sees it: which nodes could take a worker now.

The runtime reads the nodes, the pods that may hold node resources, Plinth's attempt Jobs
and the namespace's ResourceQuotas (`kube.read_capacity`) only when a plan asks for them (a
gang is about to be created, or is stuck), and hands them in as `ClusterCapacity`; counting
what fits is pure.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from plinth.api.wellknown import GPU_PRODUCT_LABEL, GPU_RESOURCE, JOB_NAME_LABEL, parse_time

#: Pods in these phases hold no node resources.
FINISHED_POD_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class QuotaRoom:
    """A namespace ResourceQuota's hard limits and what is used, by the quota's keys
    (requests.cpu, requests.nvidia.com/gpu, pods, ...), as numbers (cores, bytes, counts)."""

    name: str
    hard: Mapping[str, Decimal]
    used: Mapping[str, Decimal]


@dataclass(frozen=True)
class ClusterCapacity:
    """Nodes, and the pods not yet finished (they may hold node resources), as the API
    server writes them."""

    nodes: tuple[Mapping[str, Any], ...]
    active_pods: tuple[Mapping[str, Any], ...]
    #: Plinth's attempt Jobs in every namespace: an unsuspended one whose workers are not
    #: all on nodes yet will take GPUs that look free.
    gang_jobs: tuple[Mapping[str, Any], ...] = ()
    #: The ResourceQuotas of the namespace the planned object lives in.
    quotas: tuple[QuotaRoom, ...] = ()
    #: Names of the namespace's PersistentVolumeClaims (None: not read).
    claims: frozenset[str] | None = None
    #: When it was read (reservations of admitted gangs lapse; None: they never do).
    read_at: datetime | None = None


Predicate = Callable[[Mapping[str, Any]], bool]
#: How long an admitted gang's workers on their way to nodes count as taken: the time the
#: Job controller and the scheduler need to create and place them (seconds).
RESERVATION_SECONDS = 30.0
RESERVATION = timedelta(seconds=RESERVATION_SECONDS)


def node_name(node: Mapping[str, Any]) -> str:
    return str(node["metadata"]["name"])


#: Where a trimmed pod (`pod_usage`) keeps the GPUs its containers request, counted once.
GPUS_KEY = "gpus"


def _pod_gpus(pod: Mapping[str, Any]) -> int:
    counted = pod.get(GPUS_KEY)
    if counted is not None:
        return int(counted)
    return _containers_gpus((pod.get("spec") or {}).get("containers") or ())


def _containers_gpus(containers: Iterable[Mapping[str, Any]]) -> int:
    return sum(
        int(((c.get("resources") or {}).get("requests") or {}).get(GPU_RESOURCE, 0))
        for c in containers
    )


def _unschedulable(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False" for c in conditions)


GangKey = tuple[str, str]


def _walk_pods(
    pods: Iterable[Mapping[str, Any]], ignore: Predicate
) -> tuple[dict[str, int], dict[GangKey, int]]:
    """In one pass over the active pods (every admission reads thousands at scale): the GPUs
    held on each node by pods `ignore` is false for, and for each (namespace, Job name) how
    many of its workers are settled: on a node, or judged unschedulable by the scheduler."""
    used: dict[str, int] = {}
    settled: dict[GangKey, int] = {}
    for pod in pods:
        metadata = pod["metadata"]
        node = (pod.get("spec") or {}).get("nodeName")
        job = (metadata.get("labels") or {}).get(JOB_NAME_LABEL)
        if job and (node or _unschedulable(pod)):
            key = (metadata.get("namespace", ""), job)
            settled[key] = settled.get(key, 0) + 1
        if node and not ignore(pod):
            used[node] = used.get(node, 0) + _pod_gpus(pod)
    return used, settled


def _gpu_requests(containers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"resources": {"requests": {GPU_RESOURCE: gpus}}}
        for c in containers
        if (gpus := ((c.get("resources") or {}).get("requests") or {}).get(GPU_RESOURCE))
    ]


def _identity(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace", ""),
        "labels": dict(metadata.get("labels") or {}),
    }


def pod_usage(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a pod that counting free GPUs reads (its name, namespace and labels, node,
    containers' GPU requests, phase and PodScheduled condition): a watched cache of every
    active pod in the cluster keeps only these."""
    metadata, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    conditions = status.get("conditions") or ()
    containers = _gpu_requests(spec.get("containers") or ())
    return {
        "metadata": _identity(metadata),
        GPUS_KEY: _containers_gpus(containers),
        "spec": {"nodeName": spec.get("nodeName"), "containers": containers},
        "status": {
            "phase": status.get("phase"),
            "conditions": [dict(c) for c in conditions if c.get("type") == "PodScheduled"],
        },
    }


def gang_job_usage(job: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an attempt Job that counting its unplaced workers reads (name,
    namespace, labels, suspend, parallelism, the workers' GPU requests, start time and
    Complete/Failed conditions)."""
    metadata, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    conditions = status.get("conditions") or ()
    return {
        "metadata": _identity(metadata),
        "spec": {
            "suspend": bool(spec.get("suspend")),
            "parallelism": spec.get("parallelism", 1),
            "template": {"spec": {"containers": _gpu_requests(template.get("containers") or ())}},
        },
        "status": {
            "startTime": status.get("startTime"),
            "conditions": [dict(c) for c in conditions if c.get("type") in ("Complete", "Failed")],
        },
    }


def _free_gpus(node: Mapping[str, Any], used: Mapping[str, int]) -> int:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return int(allocatable.get(GPU_RESOURCE, 0)) - used.get(node["metadata"]["name"], 0)


def _has_gpu_type(node: Mapping[str, Any], gpu_type: str | None) -> bool:
    labels = node["metadata"].get("labels") or {}
    return gpu_type is None or labels.get(GPU_PRODUCT_LABEL) == gpu_type


def eligible_nodes(
    capacity: ClusterCapacity, *, gpu_type: str | None, node_selector: Mapping[str, str]
) -> list[Mapping[str, Any]]:
    """Schedulable nodes of `gpu_type` whose labels include `node_selector`."""
    return [
        node
        for node in capacity.nodes
        if not (node.get("spec") or {}).get("unschedulable")
        and _has_gpu_type(node, gpu_type)
        and node_selector.items() <= (node["metadata"].get("labels") or {}).items()
    ]


def _finished(job: Mapping[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or ()
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


def _reserving(job: Mapping[str, Any], read_at: datetime | None, ignore: Predicate) -> bool:
    """An attempt Job admitted (unsuspended) within RESERVATION_SECONDS and not finished."""
    spec = job.get("spec") or {}
    if ignore(job) or spec.get("suspend") or _finished(job):
        return False
    started = parse_time((job.get("status") or {}).get("startTime"))
    return read_at is None or started is None or read_at - started <= RESERVATION


def _unplaced_workers(
    capacity: ClusterCapacity, ignore: Predicate, settled: Mapping[GangKey, int]
) -> list[int]:
    """GPUs per worker of each worker of a recently admitted gang that is still on its way
    to a node: not created yet, or created and not yet judged by the scheduler. A worker
    the scheduler found no node for holds nothing (its gang is released after its
    timeout), and a reservation older than RESERVATION_SECONDS lapses, so a gang stuck
    for any reason never blocks others."""
    unplaced: list[int] = []
    for job in capacity.gang_jobs:
        if not _reserving(job, capacity.read_at, ignore):
            continue
        spec = job.get("spec") or {}
        template = (spec.get("template") or {}).get("spec") or {}
        gpus = _containers_gpus(template.get("containers") or ())
        key = (job["metadata"].get("namespace", ""), job["metadata"]["name"])
        missing = int(spec.get("parallelism", 1)) - settled.get(key, 0)
        unplaced.extend([gpus] * max(missing, 0) if gpus else [])
    return unplaced


def free_gpus_by_node(capacity: ClusterCapacity, *, ignore: Predicate) -> dict[str, int]:
    """Free GPUs of each node: allocatable, less what active pods hold (except those for
    which `ignore` is true), less what admitted gangs' unplaced workers will take (each
    counted on the fullest node that can hold it, as a packing scheduler would)."""
    used, settled = _walk_pods(capacity.active_pods, ignore)
    free = {node_name(node): _free_gpus(node, used) for node in capacity.nodes}
    _pack(free, sorted(_unplaced_workers(capacity, ignore, settled), reverse=True))
    return free


def _pack(free: dict[str, int], workers: Sequence[int]) -> None:
    """Take each worker's GPUs (largest first) from the node with the fewest free GPUs that
    can hold it, the first such node in `free`'s order on a tie (best fit, as a packing
    scheduler places them); a worker no node can hold takes nothing. Nodes are kept in
    buckets by free GPUs (each a heap of node positions), so a worker costs a step per
    GPU count, not one per node: in a burst of a thousand gangs on a thousand nodes each
    admission packs thousands of workers on their way (profiled: 236 ms per admission
    when every node was scanned for every worker)."""
    names = list(free)
    buckets: dict[int, list[int]] = {}
    for position, name in enumerate(names):
        if free[name] > 0:
            buckets.setdefault(free[name], []).append(position)  # ascending: a valid heap
    most = max(buckets, default=0)
    for gpus in workers:
        tightest = next((f for f in range(gpus, most + 1) if buckets.get(f)), None)
        if tightest is None:
            continue
        position = heapq.heappop(buckets[tightest])
        left = tightest - gpus
        free[names[position]] = left
        if left > 0:
            heapq.heappush(buckets.setdefault(left, []), position)


def worker_room(free: Mapping[str, int], nodes: Iterable[Mapping[str, Any]], gpus: int) -> int:
    """How many workers of `gpus` GPUs each `nodes` can take, given `free` GPUs by node
    name: a node with F free GPUs takes F // gpus of them (a gang's workers are alike and
    Plinth sets no anti-affinity, so several may share a node, as kube-scheduler packs them).
    A worker asking no GPU counts once per node."""
    if gpus <= 0:
        return sum(1 for _ in nodes)
    return sum(max(free.get(node_name(node), 0), 0) // gpus for node in nodes)


def workers_that_fit(
    capacity: ClusterCapacity,
    *,
    gpus: int,
    gpu_type: str | None,
    node_selector: Mapping[str, str],
    free: Mapping[str, int],
) -> int:
    """How many workers of `gpus` GPUs the schedulable nodes of `gpu_type` matching
    `node_selector` can take now, given `free` (`free_gpus_by_node`)."""
    nodes = eligible_nodes(capacity, gpu_type=gpu_type, node_selector=node_selector)
    return worker_room(free, nodes, gpus)
