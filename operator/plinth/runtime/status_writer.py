"""The one status writer: patch a resource's status when it changed, and record one Event
per condition transition (Warning for the kind's failure-like conditions, Normal otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plinth.api.v1alpha1 import ConditionStatus, StatusModel
from plinth.api.wellknown import ObjectRef
from plinth.kube.client import Kube
from plinth.status.conditions import transitions
from plinth.status.plan import EventToPost


@dataclass(frozen=True)
class StatusWriter:
    """Writes statuses through one client."""

    kube: Kube

    def write(
        self,
        owner: ObjectRef,
        previous: StatusModel,
        status: StatusModel,
        warning_conditions: Mapping[str, str],
        events: Sequence[EventToPost] = (),
    ) -> bool:
        """Patch `status` unless it equals `previous`, then record its condition transitions
        and `events`; returns whether it patched."""
        if status == previous:
            return False
        self.kube.patch_status(owner, status.to_dict())
        before = getattr(previous, "conditions", ())
        after = getattr(status, "conditions", ())
        # `transitions` reports a condition that first appears only when True; one that
        # first appears failure-like (a new resource's Accepted=False) is recorded too.
        known = {c.type for c in before}
        appeared = [
            c
            for c in after
            if c.type not in known
            and c.status != ConditionStatus.TRUE
            and warning_conditions.get(c.type) == c.status.value
        ]
        for changed in [*transitions(before, after), *appeared]:
            warning = warning_conditions.get(changed.type) == changed.status.value
            self.kube.post_event(
                owner,
                "Warning" if warning else "Normal",
                changed.reason,
                f"{changed.type}={changed.status.value}: {changed.message}",
            )
        for event in events:
            kind = "Warning" if event.warning else "Normal"
            self.kube.post_event(owner, kind, event.reason, event.message)
        return True
