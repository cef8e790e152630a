"""Carrying out a `Plan` on the API server, the same way for every kind.

Children are server-side applied in the plan's order (complete manifests, as `plinth render`
shows them), then merge-patched, then deleted; a plan that deletes its owner (TTL after
finishing) does only that. Every step is idempotent, so a reconcile killed between two
writes and run again converges to the same objects.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plinth.api.wellknown import LABEL_TRAININGJOB, ObjectRef
from plinth.kube.client import Kube
from plinth.kube.quota import quota_room
from plinth.status.capacity import ClusterCapacity
from plinth.status.plan import Plan


def carry_out(kube: Kube, owner: ObjectRef, plan: Plan[Any]) -> None:
    """Write what `plan` asks for (its status is the status writer's business)."""
    if plan.delete_owner:
        kube.delete(owner)
        return
    for manifest in plan.children.apply:
        kube.apply(manifest)
    for patch in plan.children.patch:
        kube.merge_patch(patch)
    for ref in plan.children.delete:
        kube.delete(ref)


#: How stale the lists a gang is judged against may be (seconds): Nodes change rarely
#: (added, removed, cordoned) and a gang that can never fit is judged again every 30 s; a
#: namespace's quotas and claims are read at most this often in a burst of jobs there
#: (the API server's quota admission stays the final word on pods).
NODES_MAX_AGE_SECONDS = 10.0
NAMESPACED_MAX_AGE_SECONDS = 2.0


@dataclass
class ListCache:
    """Lists of objects kept for a few seconds, shared by every reconcile: each new gang is
    judged against the cluster's Nodes and its namespace's quotas and claims, and in a
    burst of jobs one list (each object parsed) per job would cost more than the rest of
    the reconcile (profiled: 78% of reconcile time at 200 jobs before this cache)."""

    _lists: dict[tuple[str, str, str], tuple[float, tuple[Mapping[str, Any], ...]]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list(
        self, kube: Kube, api_version: str, kind: str, namespace: str, max_age: float
    ) -> tuple[Mapping[str, Any], ...]:
        """The objects of `kind` (in `namespace`; "" for cluster-scoped ones), listed
        again when the kept list is older than `max_age` seconds."""
        key = (api_version, kind, namespace)
        with self._lock:
            listed_at, items = self._lists.get(key, (-math.inf, ()))
            if time.monotonic() - listed_at > max_age:
                items = tuple(kube.list_objects(api_version, kind, namespace=namespace or None))
                self._lists[key] = (time.monotonic(), items)
            return items


def read_capacity(
    kube: Kube, namespace: str, *, usage: bool = True, cache: ListCache | None = None
) -> ClusterCapacity:
    """The Nodes, the ResourceQuotas and PersistentVolumeClaims of `namespace` (from `cache`
    when given, at most a few seconds old), and with `usage` what holds the nodes'
    resources now: every pod not Succeeded or Failed and every attempt Job of a
    TrainingJob (always listed fresh)."""
    cache = cache or ListCache()
    selector = "status.phase!=Succeeded,status.phase!=Failed"
    claims = cache.list(kube, "v1", "PersistentVolumeClaim", namespace, NAMESPACED_MAX_AGE_SECONDS)
    quotas = cache.list(kube, "v1", "ResourceQuota", namespace, NAMESPACED_MAX_AGE_SECONDS)
    return ClusterCapacity(
        nodes=cache.list(kube, "v1", "Node", "", NODES_MAX_AGE_SECONDS),
        active_pods=(
            tuple(kube.list_objects("v1", "Pod", field_selector=selector)) if usage else ()
        ),
        gang_jobs=(
            tuple(kube.list_objects("batch/v1", "Job", label_selector=LABEL_TRAININGJOB))
            if usage
            else ()
        ),
        quotas=tuple(quota_room(q) for q in quotas),
        claims=frozenset(claim["metadata"]["name"] for claim in claims),
        read_at=datetime.now(UTC),
    )
