"""The Accepted condition: whether the operator can act on a spec, and if not, why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from plinth.api.v1alpha1.common import REASON_INVALID_SPEC, Condition, ConditionStatus
from plinth.status.conditions import ConditionUpdate, set_condition

ACCEPTED = "Accepted"
REASON_SPEC_VALID = "SpecValid"


def accepted_update(spec_error: str | None) -> ConditionUpdate:
    """The Accepted condition for a spec that parsed (`spec_error` None) or did not."""
    if spec_error is None:
        return ConditionUpdate(
            type=ACCEPTED,
            status=ConditionStatus.TRUE,
            reason=REASON_SPEC_VALID,
            message="The spec is valid and the operator is acting on it.",
        )
    return ConditionUpdate(
        type=ACCEPTED,
        status=ConditionStatus.FALSE,
        reason=REASON_INVALID_SPEC,
        message=spec_error,
    )


def with_acceptance(
    conditions: Sequence[Condition],
    spec_error: str | None,
    generation: int | None,
    now: datetime,
) -> tuple[Condition, ...]:
    """`conditions` with the Accepted condition brought up to date."""
    return set_condition(conditions, accepted_update(spec_error), generation, now)
