"""The plan every kind's reconcile returns: what to apply, patch and delete, the new status,
and when to look again. Pure data; `kube.carry_out` carries it out the same way for every kind.

A planner that needs more than its children to decide says so in its first plan, and the
runtime reads it and plans once more: the cluster's capacity (`wants_capacity`), objects
it does not own (`wants_objects`, e.g. the TrainingJob whose model a deployment serves) or
HTTP answers of its pods at their pod IPs (`wants_from_pods`, e.g. metrics pages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from plinth.api.wellknown import Manifest, ObjectRef

StatusT = TypeVar("StatusT")


@dataclass(frozen=True)
class ChildChanges:
    """Writes to children: complete manifests to apply, merge patches, objects to delete."""

    #: Complete manifests, server-side applied in this order (as `plinth render` shows them).
    apply: tuple[Manifest, ...] = ()
    #: Merge patches of fields that may change on objects whose other fields are immutable.
    patch: tuple[Manifest, ...] = ()
    delete: tuple[ObjectRef, ...] = ()
    #: How many of `apply`, from the first, start the work a user waits for (a gang's
    #: PodGroup and Job); the runtime may write only these while other new resources wait
    #: for their first writes, and the rest when it comes back (0: all at once).
    leading: int = 0

    def defers(self) -> bool:
        """Whether writing only the leading applies leaves writes for later."""
        return self.leading > 0 and (
            self.leading < len(self.apply) or bool(self.patch or self.delete)
        )

    def first_only(self) -> ChildChanges:
        """Only the leading applies."""
        return ChildChanges(apply=self.apply[: self.leading])


@dataclass(frozen=True)
class PodRequest:
    """An HTTP request to one pod at its pod IP (the pod's own port, no Service)."""

    pod: str
    address: str
    port: int
    path: str
    method: str = "GET"


@dataclass(frozen=True)
class PodResponse:
    """A pod's answer: HTTP status and body, or status 0 and why there was none."""

    status: int
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class PodReading:
    """Pods' answers to a plan's requests, and when they were read."""

    time: datetime
    responses: Mapping[PodRequest, PodResponse] = field(default_factory=dict)


@dataclass(frozen=True)
class EventToPost:
    """A Kubernetes Event the plan records on its resource (beyond condition transitions,
    which the status writer records itself), e.g. a sweep's trial starting or ending."""

    reason: str
    message: str
    warning: bool = False


#: Objects a plan asked for by reference (uid left empty), None where none exists.
ObjectLookups = Mapping[ObjectRef, Mapping[str, Any] | None]


@dataclass(frozen=True)
class Plan(Generic[StatusT]):
    """What one reconcile of one object should do."""

    status: StatusT
    children: ChildChanges = field(default_factory=ChildChanges)
    #: Delete the custom resource itself (its TTL after finishing has passed).
    delete_owner: bool = False
    #: Seconds until the object should be reconciled again though nothing changes (None:
    #: only on events and the resync).
    check_again_after: float | None = None
    #: The planner needs the cluster's capacity (nodes, the namespace's quotas and claims,
    #: and what holds the nodes' resources now: active pods, admitted gangs' Jobs) to
    #: decide: the runtime reads it and plans once more with it. Plans that may admit work
    #: onto it are read and made one at a time, each booking what it admits before the
    #: next, so two gangs are never admitted onto the same free GPUs.
    wants_capacity: bool = False
    #: With `wants_capacity`: whether the plan may admit work onto it (False: it reads it
    #: only to explain why work waits, and is not serialised with admissions).
    admits: bool = True
    #: Objects the planner needs to decide (by reference, uid empty): read and planned again.
    wants_objects: tuple[ObjectRef, ...] = ()
    #: HTTP requests to the resource's pods: sent, and planned again with the answers.
    wants_from_pods: tuple[PodRequest, ...] = ()
    #: Events to record once the status is written (posted only when the status changed,
    #: so a reconcile run again records nothing twice).
    events: tuple[EventToPost, ...] = ()
    #: The status is a step of progress that moves on by itself within seconds (a gang
    #: whose workers are being created, placed and started): the runtime may hold it back
    #: for a few seconds and write the state it has moved on to instead, so a burst of
    #: starting jobs does not pay a status patch and an Event for every intermediate step.
    settling: bool = False
