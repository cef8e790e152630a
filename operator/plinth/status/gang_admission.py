"""Gang admission: whether a whole gang of worker pods can be placed, judged before any of
its pods exists, so that Plinth never lets part of a gang bind GPUs it cannot use.

Three verdicts, each with a reason a user can act on:

- NEVER: no set of nodes could ever hold the gang (fewer schedulable nodes of that GPU type,
  node selector and size than it needs), or a namespace ResourceQuota's hard limit is below
  what the gang requests. No pod is created; the job waits for the cluster (or quota) to
  change and says what it needs and what exists.
- WAIT: it could fit but does not now (not enough nodes with the GPUs free, or the quota's
  remaining room is too small). No pod is created until it fits, on both placement paths:
  with Kubernetes' native gang scheduling (PodGroup) the scheduler would hold nodes for a
  waiting group's pods, so gangs created together beyond the cluster could starve each
  other.
- ADMIT: create (or unsuspend) the whole gang now.

Free GPUs are the nodes' allocatable GPUs less those of every pod that may hold them, less
the GPUs that other admitted gangs will take once their pods are placed (Plinth's attempt
Jobs that are unsuspended and have fewer workers on nodes than they run): two gangs admitted
one after the other never count the same free node. Facts come from the API server as read
by `kube.read_capacity` (`ClusterCapacity`); this module only counts.

The race with other schedulers (pods not Plinth's that take the same GPUs between this
count and the binding) is bounded by `scheduling.scheduleTimeoutSeconds`: a gang not wholly
placed within it is released (every pod deleted) and admitted again later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from plinth.api.wellknown import GPU_RESOURCE
from plinth.status.capacity import (
    ClusterCapacity,
    Predicate,
    QuotaRoom,
    eligible_nodes,
    free_gpus_by_node,
    node_name,
    worker_room,
    workers_that_fit,
)


class Verdict(enum.StrEnum):
    """Whether the gang may be created now."""

    ADMIT = "Admit"
    WAIT = "Wait"
    NEVER = "Never"


@dataclass(frozen=True)
class GangDemand:
    """What one gang asks for: `workers` pods, each with `gpus` GPUs of `gpu_type` (None:
    any model) on a node whose labels include `node_selector`, and `per_worker` resources as
    a ResourceQuota counts them (keys such as requests.cpu, limits.memory, pods)."""

    workers: int
    gpus: int
    gpu_type: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    per_worker: Mapping[str, Decimal] = field(default_factory=dict)
    #: PersistentVolumeClaims every worker mounts (podTemplate.volumes).
    claims: tuple[str, ...] = ()


@dataclass(frozen=True)
class Admission:
    """The verdict and its condition reason and message (what is needed, what exists)."""

    verdict: Verdict
    reason: str
    message: str

    @property
    def admitted(self) -> bool:
        return self.verdict == Verdict.ADMIT


ADMITTED = Admission(Verdict.ADMIT, "Admitted", "The whole gang fits now.")
#: The reasons that name a namespace ResourceQuota as the cause.
QUOTA_REASONS = frozenset({"QuotaExceeded", "WaitingForQuota"})


def _gang_text(demand: GangDemand) -> str:
    nodes = f"{demand.workers} node{'s' if demand.workers != 1 else ''}"
    gpus = f" x {demand.gpus} {GPU_RESOURCE}" if demand.gpus else ""
    model = f" ({demand.gpu_type})" if demand.gpu_type else ""
    return f"{nodes}{gpus}{model}"


def _format(amount: Decimal) -> str:
    return str(amount.normalize()) if amount == amount.to_integral() else f"{amount:f}"


def _quota_verdict(quotas: Iterable[QuotaRoom], demand: GangDemand) -> Admission | None:
    """NEVER when a quota's hard limit is below the gang's total, WAIT when its remaining
    room is; None when every quota of the namespace leaves room."""
    waiting: Admission | None = None
    for quota in quotas:
        for key, per_worker in demand.per_worker.items():
            if key not in quota.hard:
                continue
            total = per_worker * demand.workers
            limit = quota.hard[key]
            room = limit - quota.used.get(key, Decimal(0))
            if total > limit:
                message = (
                    f"ResourceQuota {quota.name} allows {key} {_format(limit)}; the gang of "
                    f"{_gang_text(demand)} needs {_format(total)}"
                )
                return Admission(Verdict.NEVER, "QuotaExceeded", message)
            if total > room and waiting is None:
                left = _format(max(room, Decimal(0)))
                message = (
                    f"ResourceQuota {quota.name} has {left} of {key} left; the gang of "
                    f"{_gang_text(demand)} needs {_format(total)}"
                )
                waiting = Admission(Verdict.WAIT, "WaitingForQuota", message)
    return waiting


def _missing_claims(capacity: ClusterCapacity, demand: GangDemand) -> Admission | None:
    """NEVER (until it is created) when a PersistentVolumeClaim the workers mount does not
    exist: no scheduler could place them, and with a PodGroup the scheduler's own message
    may not name the claim."""
    if capacity.claims is None:
        return None
    missing = [claim for claim in demand.claims if claim not in capacity.claims]
    if not missing:
        return None
    names = ", ".join(f'"{claim}"' for claim in missing)
    message = (
        f"persistentvolumeclaim {names} not found in the namespace (podTemplate.volumes); "
        "no worker is created until it exists"
    )
    return Admission(Verdict.NEVER, "PersistentVolumeClaimNotFound", message)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _never_fits(capacity: ClusterCapacity, demand: GangDemand) -> Admission | None:
    """NEVER when the eligible nodes, even if empty, could not hold the whole gang."""
    selector = dict(demand.node_selector)
    eligible = eligible_nodes(capacity, gpu_type=demand.gpu_type, node_selector=selector)
    allocatable = {node_name(n): _allocatable_gpus(n) for n in eligible}
    room = worker_room(allocatable, eligible, demand.gpus)
    if room >= demand.workers:
        return None
    if not eligible and selector:
        message = (
            f"no schedulable node matches the node selector {selector}; the gang needs "
            f"{_gang_text(demand)}"
        )
        return Admission(Verdict.NEVER, "NoMatchingNodes", message)
    big_enough = sum(1 for gpus in allocatable.values() if gpus >= demand.gpus)
    model = f" ({demand.gpu_type})" if demand.gpu_type else ""
    message = (
        f"needs {_gang_text(demand)}; the cluster has room for {_plural(room, 'worker')} "
        f"({_plural(big_enough, 'schedulable node')} with {demand.gpus} {GPU_RESOURCE}"
        f"{model} or more)"
    )
    return Admission(Verdict.NEVER, "InsufficientCapacity", message)


def _allocatable_gpus(node: Mapping[str, object]) -> int:
    status = node.get("status") or {}
    assert isinstance(status, Mapping)
    return int((status.get("allocatable") or {}).get(GPU_RESOURCE, 0))


def room_for(capacity: ClusterCapacity, demand: GangDemand, free: Mapping[str, int]) -> int:
    """How many of `demand`'s workers the nodes it may use can take, given `free` GPUs by
    node (`free_gpus_by_node`)."""
    return workers_that_fit(
        capacity,
        gpus=demand.gpus,
        gpu_type=demand.gpu_type,
        node_selector=demand.node_selector,
        free=free,
    )


def _fits_now(
    capacity: ClusterCapacity, demand: GangDemand, free: Mapping[str, int]
) -> Admission | None:
    """WAIT when the eligible nodes' free GPUs (after what other admitted gangs will take)
    hold fewer workers than the gang has."""
    room = room_for(capacity, demand, free)
    if room >= demand.workers:
        return None
    message = (
        f"needs {_gang_text(demand)}; the nodes have room for {_plural(room, 'worker')} "
        "now. No pod is created until the whole gang fits."
    )
    return Admission(Verdict.WAIT, "WaitingForCapacity", message)


def admit_gang(
    capacity: ClusterCapacity,
    demand: GangDemand,
    *,
    own: Predicate,
    free: Mapping[str, int] | None = None,
) -> Admission:
    """Judge `demand` against the cluster. `own` tells the gang's own pods and Jobs (not
    counted against it: an earlier attempt's pods are going). The same on both placement
    paths: kube-scheduler holds nodes for a PodGroup's pods while it waits for the rest
    (Permit), so gangs created together beyond the cluster could hold each other's nodes;
    Plinth creates only a gang that fits now, and the PodGroup guards the binding against
    other schedulers. `free`: `free_gpus_by_node(capacity, ignore=own)`, when the caller
    has it already."""
    missing = _missing_claims(capacity, demand)
    if missing is not None:
        return missing
    quota = _quota_verdict(capacity.quotas, demand)
    if quota is not None and quota.verdict == Verdict.NEVER:
        return quota
    if demand.gpus:
        never = _never_fits(capacity, demand)
        if never is not None:
            return never
    if quota is not None:
        return quota
    if demand.gpus:
        free = free_gpus_by_node(capacity, ignore=own) if free is None else free
        waiting = _fits_now(capacity, demand, free)
        if waiting is not None:
            return waiting
    return ADMITTED
