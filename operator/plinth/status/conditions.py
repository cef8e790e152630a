"""Conditions in the metav1.Condition shape: set one, keeping lastTransitionTime honest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from plinth.api.v1alpha1.common import Condition, ConditionStatus


@dataclass(frozen=True)
class ConditionUpdate:
    """What a condition should say now; the transition time is decided by `set_condition`."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def set_condition(
    conditions: Sequence[Condition],
    update: ConditionUpdate,
    generation: int | None,
    now: datetime,
) -> tuple[Condition, ...]:
    """Return `conditions` with `update` applied, in a stable order.

    lastTransitionTime moves only when the status changes, as Kubernetes conventions ask.
    """
    previous = find_condition(conditions, update.type)
    transition_time = (
        previous.last_transition_time
        if previous is not None and previous.status == update.status
        else now
    )
    updated = Condition(
        type=update.type,
        status=update.status,
        reason=update.reason,
        message=update.message,
        last_transition_time=transition_time,
        observed_generation=generation,
    )
    others = tuple(c for c in conditions if c.type != update.type)
    return tuple(sorted((*others, updated), key=lambda c: c.type))


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of `condition_type`, or None."""
    return next((c for c in conditions if c.type == condition_type), None)


def is_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    """Whether the condition of `condition_type` is present and True."""
    found = find_condition(conditions, condition_type)
    return found is not None and found.status == ConditionStatus.TRUE


def transitions(before: Sequence[Condition], after: Sequence[Condition]) -> list[Condition]:
    """The conditions of `after` whose status changed from `before` (a condition that
    appears counts when it is True, or when it replaces one of another status)."""
    previous = {c.type: c.status for c in before}
    return [
        c
        for c in after
        if previous.get(c.type, ConditionStatus.FALSE) != c.status
        and (c.status == ConditionStatus.TRUE or c.type in previous)
    ]
