"""Warm start from earlier sweeps: their finished trials as results the optimiser learns from.

A trial of another sweep counts when it succeeded, has a value for every objective of this
sweep, and ran with exactly this sweep's parameters, each inside this sweep's range (a
narrower search space than the earlier sweep's leaves some of its trials out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from plinth.api.v1alpha1 import (
    AutoMLSweepSpec,
    InvalidStatusError,
    KnownTrial,
    TrialRecord,
    TrialState,
    parse_status,
)
from plinth.tuning.space import distributions


def _inside(value: Any, distribution: BaseDistribution) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(distribution, FloatDistribution | IntDistribution):
        return distribution.low <= value <= distribution.high
    return False


def _usable(spec: AutoMLSweepSpec, record: TrialRecord) -> bool:
    space = distributions(spec.parameters)
    metrics = {objective.metric for objective in spec.objectives}
    return (
        record.state == TrialState.SUCCEEDED
        and metrics <= set(record.values)
        and set(record.parameters) == set(space)
        and all(_inside(record.parameters[name], space[name]) for name in space)
    )


def earlier_results(
    spec: AutoMLSweepSpec, sweeps: Iterable[Mapping[str, Any] | None]
) -> tuple[KnownTrial, ...]:
    """The usable finished trials of `sweeps` (AutoMLSweeps as the API server writes them;
    None for one that does not exist)."""
    metrics = [objective.metric for objective in spec.objectives]
    known: list[KnownTrial] = []
    for sweep in sweeps:
        try:
            status = parse_status("AutoMLSweep", (sweep or {}).get("status"))
        except InvalidStatusError:
            continue
        known.extend(
            KnownTrial(
                parameters=dict(record.parameters),
                values={metric: record.values[metric] for metric in metrics},
            )
            for record in status.trials
            if _usable(spec, record)
        )
    return tuple(known)
