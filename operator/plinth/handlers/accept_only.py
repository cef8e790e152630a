"""An adapter for a kind whose controller so far only checks the spec: it owns no children
and its status says Accepted (phase Pending) or InvalidSpec (phase Failed)."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plinth.api.v1alpha1 import ApiModel, KindInfo, StatusModel
from plinth.api.wellknown import OwnerMeta
from plinth.runtime.adapter import ChildSource, PlanInputs
from plinth.status.acceptance import acceptance_status
from plinth.status.plan import Plan


@dataclass(frozen=True)
class AcceptOnlyAdapter:
    """Checks the spec and says so; creates nothing."""

    info: KindInfo
    pending: enum.StrEnum
    failed: enum.StrEnum
    child_sources: Sequence[ChildSource] = ()
    warning_conditions: Mapping[str, str] = field(default_factory=lambda: {"Accepted": "False"})
    progress_reasons: Collection[str] = ()

    def observe(self, children: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        return None

    def plan(self, inputs: PlanInputs[ApiModel, StatusModel, None]) -> Plan[StatusModel]:
        status = acceptance_status(inputs.previous, inputs.owner, None, self.pending, inputs.now)
        return Plan(status=status)

    def invalid_spec_status(
        self, previous: StatusModel, owner: OwnerMeta, message: str, now: datetime
    ) -> StatusModel:
        return acceptance_status(previous, owner, message, self.failed, now)
