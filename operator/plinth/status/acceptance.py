"""The Accepted condition: whether the operator can act on a spec, and if not, why."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from plinth.api.v1alpha1 import REASON_INVALID_SPEC, Condition, ConditionStatus, StatusModel
from plinth.api.wellknown import OwnerMeta
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


StatusT = TypeVar("StatusT", bound=StatusModel)


def acceptance_status(
    previous: StatusT,
    owner: OwnerMeta,
    spec_error: str | None,
    phase: enum.StrEnum,
    now: datetime,
) -> StatusT:
    """`previous` with the Accepted condition, `phase` and observedGeneration brought up to
    date: the whole status of a resource whose spec is invalid (`spec_error` set, phase
    Failed), or of a kind whose controller only checks the spec so far."""
    conditions = with_acceptance(
        getattr(previous, "conditions", ()), spec_error, owner.generation, now
    )
    return previous.model_copy(
        update={
            "phase": phase,
            "conditions": conditions,
            "observed_generation": owner.generation,
        }
    )
