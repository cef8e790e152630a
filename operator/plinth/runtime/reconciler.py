"""One reconcile, the same for every kind: parse -> observe -> plan -> apply -> status.

Runs on a worker thread with a snapshot copied out of the indexes. The spec is parsed once
here, at the edge; an invalid one ends in the kind's InvalidSpec status and is not retried
until the resource changes (no loop). A plan that needs more to decide (the cluster's
capacity, objects it does not own, answers of its pods) gets it and is made once more.
The last pod reading of each resource is kept, so a planner can take rates between two.
Returns when to look again (at most the resync period).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from plinth.api.v1alpha1 import InvalidSpecError, InvalidStatusError, parse_spec, parse_status
from plinth.api.wellknown import ObjectRef, OwnerMeta, parse_time
from plinth.intake.book import ReportBook
from plinth.kube.carry_out import (
    ListCache,
    ListedUsage,
    UsageSource,
    carry_out,
    prefetch_capacity,
    read_capacity,
    unsuspended_jobs,
)
from plinth.kube.client import Kube, NamespaceTerminatingError
from plinth.kube.podmetrics import read_pods
from plinth.runtime.adapter import KindAdapter, OperatorSettings, PlanInputs
from plinth.runtime.status_writer import StatusWriter
from plinth.runtime.store import Snapshot
from plinth.status.plan import Plan, PodReading

#: Every resource is looked at again at least this often, even when nothing happens.
RESYNC_SECONDS = 300.0
#: A plan may ask for more than once (an object read reveals which pods to ask).
MAX_READ_ROUNDS = 3
#: A status update already superseded (newer events of the resource are queued: its own
#: children's, or its pods moving on), or one its planner calls settling (a gang being
#: created, placed and started), is held back for a later reconcile, which writes what has
#: changed since, for at most this many seconds (then it is written anyway). In a burst
#: each status patch and Event is a write the API server must make beside the pods' own;
#: intermediate states that last a moment are not written. Each settling status written
#: doubles the hold of the next (up to MAX_STATUS_HOLD_SECONDS), until one that is not
#: settling is written: a gang that takes a while to start reports its progress a few
#: times, not every few seconds. What stands in a gang's way is never settling.
STATUS_HOLD_SECONDS = 5.0
MAX_STATUS_HOLD_SECONDS = 20.0
#: A reconcile that wrote only its plan's leading children (`ChildChanges.leading`) while
#: other new resources waited for theirs comes back this soon for the rest (seconds),
#: behind those resources: in a burst every gang's Job goes out before any job's Service,
#: Secret, status and Events.
REST_AFTER_SECONDS = 0.05

AnyAdapter = KindAdapter[Any, Any, Any]
#: Finds an object by reference (uid empty): the operator's cache first, else the API server.
ObjectFinder = Callable[[ObjectRef], Mapping[str, Any] | None]


def owner_meta(body: Any) -> OwnerMeta:
    """The resource's metadata as planners see it."""
    metadata = body["metadata"]
    return OwnerMeta(
        ref=ObjectRef.of(body),
        generation=metadata.get("generation"),
        created=parse_time(metadata.get("creationTimestamp")) or datetime.now(UTC),
        annotations=dict(metadata.get("annotations") or {}),
        labels=dict(metadata.get("labels") or {}),
    )


@dataclass
class PodReadings:
    """The last pod reading of each resource (by owner reference), for rates."""

    _last: dict[tuple[str, str, str], PodReading] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def swap(self, owner: ObjectRef, reading: PodReading) -> PodReading | None:
        """Keep `reading`; return the one it replaces."""
        with self._lock:
            previous = self._last.get(owner.key)
            self._last[owner.key] = reading
        return previous

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._last.pop(key, None)


@dataclass
class HeldStatuses:
    """Since when each resource's status update has been held back (monotonic seconds), and
    how many settling statuses were written since the last one that was not."""

    _since: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _settling_written: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hold(self, key: tuple[str, str, str]) -> float:
        """Seconds `key`'s update may still be held back (0: write it now); notes that it is
        held from now on if it was not."""
        now = time.monotonic()
        with self._lock:
            since = self._since.setdefault(key, now)
            written = self._settling_written.get(key, 0)
        longest = min(STATUS_HOLD_SECONDS * 2.0**written, MAX_STATUS_HOLD_SECONDS)
        return max(longest - (now - since), 0.0)

    def written(self, key: tuple[str, str, str], *, settling: bool) -> None:
        """`key`'s status is being written: a settling one lengthens the next hold, any
        other starts afresh."""
        with self._lock:
            self._since.pop(key, None)
            if settling:
                self._settling_written[key] = self._settling_written.get(key, 0) + 1
            else:
                self._settling_written.pop(key, None)

    def settled(self, key: tuple[str, str, str]) -> None:
        """`key`'s status has nothing new to write: nothing is held back."""
        with self._lock:
            self._since.pop(key, None)

    def release(self, key: tuple[str, str, str]) -> None:
        """Forget `key` (deleted, or no status of its own left to write)."""
        with self._lock:
            self._since.pop(key, None)
            self._settling_written.pop(key, None)


def never() -> bool:
    """The default of a reconcile's questions about its queue: no."""
    return False


@dataclass
class DeferredRest:
    """The resources whose last reconcile wrote only its plan's leading children: each is
    deferred once, so its next reconcile writes everything however busy the queue is."""

    _keys: set[tuple[str, str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def defer(self, key: tuple[str, str, str]) -> bool:
        """Note `key` deferred; False when it already was (its rest is due now)."""
        with self._lock:
            if key in self._keys:
                self._keys.discard(key)
                return False
            self._keys.add(key)
            return True

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._keys.discard(key)


@dataclass(frozen=True)
class Reconciler:
    """Reconciles snapshots of any kind through the kube layer."""

    kube: Kube
    settings: OperatorSettings
    book: ReportBook
    #: How `Plan.wants_objects` are found (default: read from the API server).
    find_object: ObjectFinder | None = None
    readings: PodReadings = field(default_factory=PodReadings)
    #: Held while a plan that may admit work onto read capacity is made and booked.
    admission_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Nodes, quotas and claims, kept a few seconds for every capacity read.
    lists: ListCache = field(default_factory=ListCache)
    #: What holds the nodes' GPUs (None: listed from the API server at each read).
    usage: UsageSource | None = None
    held: HeldStatuses = field(default_factory=HeldStatuses)
    deferred: DeferredRest = field(default_factory=DeferredRest)

    def __post_init__(self) -> None:
        if self.usage is None:  # frozen: the default depends on `kube`
            object.__setattr__(self, "usage", ListedUsage(self.kube))

    def _usage(self) -> UsageSource:
        assert self.usage is not None  # set in __post_init__
        return self.usage

    def _previous_status(self, adapter: AnyAdapter, body: Any) -> Any:
        try:
            return parse_status(adapter.info.kind, body.get("status"))
        except InvalidStatusError:
            return adapter.info.status_model()

    def _find(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        if self.find_object is not None:
            return self.find_object(ref)
        return self.kube.get_object(ref.api_version, ref.kind, ref.namespace, ref.name)

    def _reads(self, plan: Plan[Any], inputs: PlanInputs[Any, Any, Any]) -> dict[str, Any]:
        """What `plan` asks for that `inputs` lack, read now."""
        reads: dict[str, Any] = {}
        if plan.wants_capacity and inputs.capacity is None:
            reads["capacity"] = read_capacity(
                self.kube, inputs.owner.namespace, usage=self._usage(), cache=self.lists
            )
        if plan.wants_objects and inputs.objects is None:
            reads["objects"] = {ref: self._find(ref) for ref in plan.wants_objects}
        if plan.wants_from_pods and inputs.pod_reading is None:
            reading = read_pods(plan.wants_from_pods)
            reads["pod_reading"] = reading
            reads["previous_pod_reading"] = self.readings.swap(inputs.owner.ref, reading)
        return reads

    def _plan(
        self, adapter: AnyAdapter, inputs: PlanInputs[Any, Any, Any], plan: Plan[Any]
    ) -> Plan[Any]:
        """`plan`, made again with what it asks for read, until it asks for nothing more."""
        for _ in range(MAX_READ_ROUNDS):
            reads = self._reads(plan, inputs)
            if not reads:
                break
            inputs = replace(inputs, **reads)
            plan = adapter.plan(inputs)
        return plan

    def _plan_and_carry_out(
        self,
        adapter: AnyAdapter,
        inputs: PlanInputs[Any, Any, Any],
        defer_rest: Callable[[Plan[Any]], bool],
    ) -> tuple[Plan[Any], bool]:
        """Plan (reading what the plan asks for) and write the children; returns the plan
        and whether all its writes were made (not when `defer_rest(plan)` said to write only
        its leading children). A plan that reads what holds the nodes (to admit a gang onto
        free GPUs) is made under the admission lock, and what it admits is booked before the
        lock is let go, so the next one counts it; the writes go out after, beside other
        reconciles' writes."""
        first = adapter.plan(inputs)
        if first.wants_capacity and first.admits:
            prefetch_capacity(self.kube, inputs.owner.namespace, self.lists)
            with self.admission_lock:
                plan = self._plan(adapter, inputs, first)
                self._usage().admitted(unsuspended_jobs(plan))
        else:
            plan = self._plan(adapter, inputs, first)
        if defer_rest(plan):
            carry_out(
                self.kube, inputs.owner.ref, replace(plan, children=plan.children.first_only())
            )
            return plan, False
        self.deferred.forget(inputs.owner.ref.key)
        carry_out(self.kube, inputs.owner.ref, plan)
        return plan, True

    def _defers_rest(
        self, key: tuple[str, str, str], others_waiting: Callable[[], bool]
    ) -> Callable[[Plan[Any]], bool]:
        """Whether a plan's writes after its leading children wait: it starts work that
        moves on by itself (`Plan.settling`), other new resources wait for their first
        writes, and this resource's rest was not deferred already."""

        def defer(plan: Plan[Any]) -> bool:
            return (
                plan.settling
                and plan.children.defers()
                and others_waiting()
                and self.deferred.defer(key)
            )

        return defer

    def reconcile(
        self,
        adapter: AnyAdapter,
        snapshot: Snapshot,
        superseded: Callable[[], bool] = never,
        others_waiting: Callable[[], bool] = never,
    ) -> float | None:
        """Reconcile one resource; returns seconds until it should be looked at again.
        `superseded()` tells whether newer events of the resource are already queued: its
        status update is then held back (STATUS_HOLD_SECONDS). `others_waiting()` tells
        whether other new resources wait for their first writes: a gang being started then
        writes only what starts it, and the rest REST_AFTER_SECONDS later, behind them."""
        body = snapshot.owner
        key = ObjectRef.of(body).key
        if body["metadata"].get("deletionTimestamp"):
            self.held.release(key)
            self.deferred.forget(key)
            return None
        owner, now = owner_meta(body), datetime.now(UTC)
        previous = self._previous_status(adapter, body)
        writer = StatusWriter(self.kube)
        try:
            spec = parse_spec(adapter.info.kind, body.get("spec") or {})
        except InvalidSpecError as error:
            status = adapter.invalid_spec_status(previous, owner, str(error), now)
            writer.write(
                owner.ref,
                previous,
                status,
                adapter.warning_conditions,
                progress_reasons=adapter.progress_reasons,
            )
            return None
        inputs = PlanInputs(
            owner=owner,
            spec=spec,
            previous=previous,
            observed=adapter.observe(snapshot.children),
            now=now,
            settings=self.settings,
            reports=self.book.get((owner.namespace, owner.name)),
        )
        defer_rest = self._defers_rest(key, others_waiting)
        try:
            plan, complete = self._plan_and_carry_out(adapter, inputs, defer_rest)
            if plan.delete_owner:
                self.held.release(key)
                return None
            if not complete:
                self.held.hold(key)  # its status goes out with the rest
                return REST_AFTER_SECONDS
            held = self._write_status(adapter, owner.ref, previous, plan, superseded=superseded)
        except NamespaceTerminatingError:
            return None  # the namespace and everything in it is going: nothing to converge
        return min(plan.check_again_after or RESYNC_SECONDS, held or RESYNC_SECONDS)

    def _write_status(
        self,
        adapter: AnyAdapter,
        ref: ObjectRef,
        previous: Any,
        plan: Plan[Any],
        *,
        superseded: Callable[[], bool],
    ) -> float | None:
        """Write the plan's status and Events, unless it may be held back (STATUS_HOLD_SECONDS):
        newer events already supersede it and its phase is unchanged, or it is a step of
        progress that moves on by itself (`Plan.settling`). Returns the seconds it may still
        be held (None: written or unchanged): the resource is looked at again by then, so it
        is written at the latest."""
        if plan.status == previous:
            self.held.settled(ref.key)
            return None
        # a new phase is told at once (a restart must not hide behind the state after it)
        was = getattr(previous, "phase", None)
        same_phase = was is None or was == getattr(plan.status, "phase", None)
        if not plan.events and (plan.settling or (same_phase and superseded())):
            left = self.held.hold(ref.key)
            if left > 0:
                return left
        self.held.written(ref.key, settling=plan.settling)
        StatusWriter(self.kube).write(
            ref,
            previous,
            plan.status,
            adapter.warning_conditions,
            plan.events,
            progress_reasons=adapter.progress_reasons,
        )
        return None
