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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from plinth.api.wellknown import LABEL_TRAININGJOB, ObjectRef
from plinth.kube.client import Kube
from plinth.kube.quota import quota_room
from plinth.status.capacity import (
    FINISHED_POD_PHASES,
    RESERVATION_SECONDS,
    ClusterCapacity,
    gang_job_usage,
)
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
    _listing: set[tuple[str, str, str]] = field(default_factory=set)

    def list(
        self, kube: Kube, api_version: str, kind: str, namespace: str, max_age: float
    ) -> tuple[Mapping[str, Any], ...]:
        """The objects of `kind` (in `namespace`; "" for cluster-scoped ones), listed
        again when the kept list is older than `max_age` seconds. While one thread lists
        again, the others are given the list kept (until one is kept, each lists)."""
        key = (api_version, kind, namespace)
        with self._lock:
            listed_at, items = self._lists.get(key, (-math.inf, ()))
            fresh = time.monotonic() - listed_at <= max_age
            if fresh or (key in self._listing and key in self._lists):
                return items
            self._listing.add(key)
        try:
            items = tuple(kube.list_objects(api_version, kind, namespace=namespace or None))
        finally:
            with self._lock:
                self._listing.discard(key)
        with self._lock:
            self._lists[key] = (time.monotonic(), items)
        return items


class UsageSource(Protocol):
    """What holds the nodes' resources now, for counting free GPUs."""

    def active_pods(self) -> tuple[Mapping[str, Any], ...]:
        """Every pod in the cluster not Succeeded or Failed."""
        ...

    def gang_jobs(self) -> tuple[Mapping[str, Any], ...]:
        """Every attempt Job of a TrainingJob, in every namespace, with those just admitted
        (`admitted`) counted unsuspended."""
        ...

    def admitted(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        """`jobs` (attempt Jobs or merge patches of them) are about to be written
        unsuspended: count them as admitted from now on, before the API server has them."""
        ...


ObjectKey = tuple[str, str]


def _object_key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj["metadata"]
    return (str(metadata.get("namespace", "")), str(metadata["name"]))


def _as_admitted(job: Mapping[str, Any]) -> dict[str, Any]:
    """`job` as it is once unsuspended, before the Job controller starts it."""
    return {**job, "spec": {**(job.get("spec") or {}), "suspend": False}, "status": {}}


@dataclass
class AdmissionBook:
    """Attempt Jobs admitted by this operator, counted unsuspended from the moment of the
    decision until what is read (a list or a watch) shows them so, for at most the
    reservation time. Admissions are decided one at a time and booked here before their
    writes are sent, so the writes of many admissions go out at once while no two gangs
    count the same free GPUs; a write that fails leaves a reservation that lapses."""

    _admitted: dict[ObjectKey, tuple[dict[str, Any], float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def book(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        until = time.monotonic() + RESERVATION_SECONDS
        with self._lock:
            for job in jobs:
                self._admitted[_object_key(job)] = (_as_admitted(gang_job_usage(job)), until)

    def over(self, read: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
        """The Jobs `read`, with those booked and not yet read unsuspended counted so."""
        jobs = {_object_key(job): job for job in read}
        now = time.monotonic()
        with self._lock:
            for key in [key for key, (_, until) in self._admitted.items() if until <= now]:
                del self._admitted[key]
            booked = dict(self._admitted)
        for key, (job, _) in booked.items():
            seen = jobs.get(key)
            if seen is None:
                jobs[key] = job
            elif (seen.get("spec") or {}).get("suspend"):
                jobs[key] = _as_admitted(seen)
        return tuple(jobs.values())


@dataclass(frozen=True)
class ListedUsage:
    """Usage listed from the API server at each read: two list calls of every active pod
    and attempt Job per admission. The operator uses its watches instead where they see the
    whole cluster (`runtime.node_usage`); this is for an operator that watches only some
    namespaces, whose GPUs other namespaces' pods hold too."""

    kube: Kube
    book: AdmissionBook = field(default_factory=AdmissionBook)

    def active_pods(self) -> tuple[Mapping[str, Any], ...]:
        selector = ",".join(f"status.phase!={phase}" for phase in sorted(FINISHED_POD_PHASES))
        return tuple(self.kube.list_objects("v1", "Pod", field_selector=selector))

    def gang_jobs(self) -> tuple[Mapping[str, Any], ...]:
        listed = self.kube.list_objects("batch/v1", "Job", label_selector=LABEL_TRAININGJOB)
        return self.book.over(listed)

    def admitted(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        self.book.book(jobs)


def unsuspended_jobs(plan: Plan[Any]) -> list[Mapping[str, Any]]:
    """The attempt Jobs `plan` writes unsuspended (applied or merge-patched)."""
    return [
        manifest
        for manifest in (*plan.children.apply, *plan.children.patch)
        if manifest.get("kind") == "Job" and (manifest.get("spec") or {}).get("suspend") is False
    ]


def _shape(
    kube: Kube, namespace: str, cache: ListCache
) -> tuple[tuple[Mapping[str, Any], ...], ...]:
    """The Nodes, and the ResourceQuotas and PersistentVolumeClaims of `namespace`."""
    return (
        cache.list(kube, "v1", "Node", "", NODES_MAX_AGE_SECONDS),
        cache.list(kube, "v1", "ResourceQuota", namespace, NAMESPACED_MAX_AGE_SECONDS),
        cache.list(kube, "v1", "PersistentVolumeClaim", namespace, NAMESPACED_MAX_AGE_SECONDS),
    )


def prefetch_capacity(kube: Kube, namespace: str, cache: ListCache) -> None:
    """List into `cache` what `read_capacity` will read from it, where its lists are old:
    called before admissions are serialised, so none waits for another's list call."""
    _shape(kube, namespace, cache)


def read_capacity(
    kube: Kube, namespace: str, *, usage: UsageSource | None, cache: ListCache
) -> ClusterCapacity:
    """The Nodes, the ResourceQuotas and PersistentVolumeClaims of `namespace` (from
    `cache`, at most a few seconds old), and, from `usage` (None: not read), what holds the
    nodes' resources now: every active pod and every attempt Job of a TrainingJob."""
    nodes, quotas, claims = _shape(kube, namespace, cache)
    return ClusterCapacity(
        nodes=nodes,
        active_pods=usage.active_pods() if usage is not None else (),
        gang_jobs=usage.gang_jobs() if usage is not None else (),
        quotas=tuple(quota_room(q) for q in quotas),
        claims=frozenset(claim["metadata"]["name"] for claim in claims),
        read_at=datetime.now(UTC),
    )
