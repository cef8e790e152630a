"""The one status writer: patch a resource's status when it changed, and record its
condition transitions as Events: each failure-like one (the kind's warning conditions,
unless its reason only says "not there yet") in a Warning of its own, the others of one
status update together in one Normal Event, named after the last of them (a TrainingJob's
creation records Accepted and Created in one Event, not two: every Event is a write to the
API server, and a burst of jobs pays for each).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from plinth.api.v1alpha1 import Condition, ConditionStatus, StatusModel
from plinth.api.wellknown import ObjectRef
from plinth.kube.client import Kube
from plinth.status.conditions import transitions
from plinth.status.plan import EventToPost


def _described(condition: Condition) -> str:
    return f"{condition.type}={condition.status.value}: {condition.message}"


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
        *,
        progress_reasons: Collection[str] = (),
    ) -> bool:
        """Patch `status` unless it equals `previous`, then record its condition transitions
        and `events`; returns whether it patched. A warning condition whose reason is in
        `progress_reasons` (not there yet, e.g. a model loading) is recorded as Normal."""
        if status == previous:
            return False
        if not self.kube.patch_status(owner, status.to_dict()):
            return False  # deleted meanwhile: no Event about it either
        before = getattr(previous, "conditions", ())
        after = getattr(status, "conditions", ())

        def warns(c: Condition) -> bool:
            return warning_conditions.get(c.type) == c.status.value and (
                c.reason not in progress_reasons
            )

        # `transitions` reports a condition that first appears only when True; one that
        # first appears failure-like (a new resource's Accepted=False) is recorded too.
        known = {c.type for c in before}
        appeared = [
            c
            for c in after
            if c.type not in known and c.status != ConditionStatus.TRUE and warns(c)
        ]
        changed = [*transitions(before, after), *appeared]
        normal = [c for c in changed if not warns(c)]
        for warning in (c for c in changed if c not in normal):
            self.kube.post_event(owner, "Warning", warning.reason, _described(warning))
        if normal:
            message = "; ".join(_described(c) for c in normal)
            self.kube.post_event(owner, "Normal", normal[-1].reason, message)
        for event in events:
            kind = "Warning" if event.warning else "Normal"
            self.kube.post_event(owner, kind, event.reason, event.message)
        return True
