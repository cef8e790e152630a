"""What a sweep observes of its trials: each trial TrainingJob's status, read as plain values.

The sweep reads only its trials' status (phase, reported metrics, GPU time), never their
pods. A trial carries its number as a label and its parameters (and the optimiser's
bookkeeping of it) as annotations, so a trial created just before an operator crash is
recognised and recorded from the TrainingJob alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plinth.api.v1alpha1 import (
    InvalidStatusError,
    TrainingJobPhase,
    TrainingJobStatus,
    parse_status,
)
from plinth.api.wellknown import (
    ANNOTATION_TRIAL_PARAMETERS,
    ANNOTATION_TRIAL_SAMPLER_STATE,
    LABEL_TRIAL,
)
from plinth.status.conditions import find_condition


@dataclass(frozen=True)
class ObservedTrial:
    """One trial TrainingJob as the sweep sees it."""

    number: int
    name: str
    parameters: Mapping[str, Any]
    sampler_state: Mapping[str, str]
    status: TrainingJobStatus
    #: Whether the TrainingJob is suspended (how the sweep stops a trial).
    suspended: bool = False
    deleting: bool = False

    @property
    def phase(self) -> TrainingJobPhase | None:
        return self.status.phase

    @property
    def failure(self) -> str:
        """Why the trial's TrainingJob failed: its Failed condition's reason and message."""
        failed = find_condition(self.status.conditions, "Failed")
        if failed is None:
            return "the TrainingJob failed"
        return f"{failed.reason}: {failed.message}"

    @property
    def gpu_hours(self) -> float:
        return round(self.status.gpu_seconds / 3600.0, 6)

    @property
    def start_time(self) -> datetime | None:
        return self.status.start_time


@dataclass(frozen=True)
class ObservedSweep:
    """Every trial TrainingJob of a sweep, by trial number."""

    trials: Mapping[int, ObservedTrial] = field(default_factory=dict)


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _status(body: Mapping[str, Any]) -> TrainingJobStatus:
    try:
        return parse_status("TrainingJob", body.get("status"))
    except InvalidStatusError:
        return TrainingJobStatus()


def observe_trial(body: Mapping[str, Any]) -> ObservedTrial | None:
    """A trial TrainingJob as observations; None for one without a trial number."""
    metadata = body["metadata"]
    number = (metadata.get("labels") or {}).get(LABEL_TRIAL, "")
    if not str(number).isdigit():
        return None
    annotations = metadata.get("annotations") or {}
    return ObservedTrial(
        number=int(number),
        name=str(metadata["name"]),
        parameters=_json_object(annotations.get(ANNOTATION_TRIAL_PARAMETERS)),
        sampler_state={
            key: str(value)
            for key, value in _json_object(annotations.get(ANNOTATION_TRIAL_SAMPLER_STATE)).items()
        },
        status=_status(body),
        suspended=bool((body.get("spec") or {}).get("suspend")),
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def observe_sweep(trainingjobs: Iterable[Mapping[str, Any]]) -> ObservedSweep:
    """The sweep's trials, by number."""
    trials = (observe_trial(body) for body in trainingjobs)
    return ObservedSweep(trials={t.number: t for t in trials if t is not None})
