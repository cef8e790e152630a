"""What every plinth.dev/v1alpha1 kind shares: the group and version, and conditions.

Conditions have the shape of metav1.Condition, so `kubectl wait --for=condition=...` and
generic tooling read them as they read those of built-in kinds.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field

from plinth.api.schema import ListMap, StatusModel, Timestamp

API_GROUP = "plinth.dev"
API_VERSION = "v1alpha1"


class ConditionStatus(enum.StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


#: Reason of the condition that reports a spec the operator cannot act on.
REASON_INVALID_SPEC = "InvalidSpec"


class Condition(StatusModel):
    """One aspect of the object's state, in the shape of metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Condition type, in CamelCase (e.g. Running, Ready).",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(max_length=32768, description="Human-readable details; may be empty.")
    last_transition_time: Timestamp = Field(description="When the condition last changed status.")
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation the condition was computed from."
    )


ConditionList = Annotated[tuple[Condition, ...], Field(max_length=32), ListMap("type")]
