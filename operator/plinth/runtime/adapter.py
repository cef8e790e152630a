"""What a kind supplies to the shared runtime: its child sources and two pure functions.

A kind's adapter (one module in `plinth.handlers`) declares which children it owns (group,
version, plural and the owner label that names the parent on each child) and supplies
`observe` (children as the API server writes them -> frozen observations) and `plan` (spec,
previous status, observations -> a `Plan`). The runtime builds the Kopf indexes and event
handlers from the declaration and runs parse -> observe -> plan -> apply -> status -> requeue
the same way for every kind, so adding a kind touches one adapter and one registry line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from plinth.api.v1alpha1 import ApiModel, KindInfo, StatusModel
from plinth.api.wellknown import LEGACY_OWNER_LABELS, ObjectRef, OwnerMeta, owner_label
from plinth.intake.book import JobReports
from plinth.status.capacity import ClusterCapacity
from plinth.status.plan import ObjectLookups, Plan, PodReading

SpecT = TypeVar("SpecT", bound=ApiModel)
StatusT = TypeVar("StatusT", bound=StatusModel)
ObservedT = TypeVar("ObservedT")


@dataclass(frozen=True)
class ChildSource:
    """A kind of child a resource owns, found by the owner label on each child."""

    #: Name of the source within its kind (e.g. "jobs"); also names the Kopf index.
    name: str
    group: str
    version: str
    plural: str
    #: The label whose value is the owner's name.
    owner_label: str
    #: Older owner labels still read (children made by an earlier Plinth), never written.
    legacy_labels: tuple[str, ...] = ()
    #: The fields of the children's spec that the kind's observer reads (None: all). The
    #: index keeps only these: a worker pod's or a Job's spec (containers, volumes, the pod
    #: template) is most of the object, and the operator holds thousands of them.
    spec_fields: tuple[str, ...] | None = None

    @classmethod
    def owned_by(
        cls,
        owner_kind: str,
        name: str,
        group: str,
        version: str,
        plural: str,
        *,
        spec_fields: tuple[str, ...] | None = None,
    ) -> ChildSource:
        """A source of children labelled with `owner_kind`'s owner label (and its legacy
        labels)."""
        return cls(
            name=name,
            group=group,
            version=version,
            plural=plural,
            owner_label=owner_label(owner_kind),
            legacy_labels=LEGACY_OWNER_LABELS.get(owner_kind, ()),
            spec_fields=spec_fields,
        )


@dataclass(frozen=True)
class OperatorSettings:
    """Operator-wide settings an adapter's plan may read (decided at start-up)."""

    #: Base URL at which workloads reach the operator's metrics intake (None: off).
    metrics_base_url: str | None = None
    #: The bearer token a workload of the given resource reports with (deterministic).
    issue_token: Callable[[ObjectRef], str] = field(default=lambda _ref: "")
    #: The cluster's scheduler places a gang as one (it serves the scheduling.k8s.io/v1beta1
    #: PodGroup API): Plinth creates a PodGroup per attempt instead of admitting gangs itself.
    scheduler_gangs: bool = False


@dataclass(frozen=True)
class PlanInputs(Generic[SpecT, StatusT, ObservedT]):
    """Everything a plan depends on: the same inputs always give the same plan."""

    owner: OwnerMeta
    spec: SpecT
    previous: StatusT
    observed: ObservedT
    now: datetime
    settings: OperatorSettings
    #: What the resource's own workloads reported through the intake, merged so far.
    reports: JobReports = field(default_factory=JobReports)
    #: The cluster's capacity, when a first plan asked for it (`Plan.wants_capacity`).
    capacity: ClusterCapacity | None = None
    #: The objects a first plan asked for (`Plan.wants_objects`).
    objects: ObjectLookups | None = None
    #: The pods' answers a first plan asked for (`Plan.wants_from_pods`), and the previous
    #: reading of the same resource's pods (for rates between the two), if any.
    pod_reading: PodReading | None = None
    previous_pod_reading: PodReading | None = None


class KindAdapter(Protocol[SpecT, StatusT, ObservedT]):
    """One kind's part of the reconcile; everything else is the runtime's."""

    @property
    def info(self) -> KindInfo:
        """The kind's registry entry (group, version, plural, spec and status models)."""
        ...

    @property
    def child_sources(self) -> Sequence[ChildSource]:
        """The kinds of children the resource owns, watched and indexed by the runtime."""
        ...

    @property
    def warning_conditions(self) -> Mapping[str, str]:
        """Condition type -> the status ("True" or "False") at which its transition is
        recorded as a Warning Event (failure-like conditions)."""
        ...

    @property
    def progress_reasons(self) -> Collection[str]:
        """Reasons that mean "not there yet" on a warning condition (a model still loading):
        its transition to one of them is a Normal Event, not a Warning."""
        ...

    def observe(self, children: Mapping[str, Sequence[Mapping[str, Any]]]) -> ObservedT:
        """The children (by source name, as the API server writes them) as observations."""
        ...

    def plan(self, inputs: PlanInputs[SpecT, StatusT, ObservedT]) -> Plan[StatusT]:
        """What to apply, patch and delete, the new status, and when to look again."""
        ...

    def invalid_spec_status(
        self, previous: StatusT, owner: OwnerMeta, message: str, now: datetime
    ) -> StatusT:
        """The status of a resource whose spec cannot be acted on (reason InvalidSpec)."""
        ...
