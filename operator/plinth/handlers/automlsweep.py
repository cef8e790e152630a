"""AutoMLSweep on the shared runtime: its trials are TrainingJobs it owns; it reads only
their status, and Optuna (rebuilt from the sweep's status) decides what runs next."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from plinth.api.v1alpha1 import (
    AUTOML_SWEEP,
    AutoMLSweepPhase,
    AutoMLSweepSpec,
    AutoMLSweepStatus,
    KindInfo,
)
from plinth.api.wellknown import ObjectRef, OwnerMeta
from plinth.builders.automlsweep import trial_manifest
from plinth.runtime.adapter import ChildSource, PlanInputs
from plinth.status.acceptance import acceptance_status
from plinth.status.automlsweep import plan_sweep
from plinth.status.automlsweep_observed import ObservedSweep, observe_sweep
from plinth.status.plan import ChildChanges, Plan
from plinth.tuning.warm_start import earlier_results

Inputs = PlanInputs[AutoMLSweepSpec, AutoMLSweepStatus, ObservedSweep]


def _earlier_sweeps(owner: OwnerMeta, spec: AutoMLSweepSpec) -> tuple[ObjectRef, ...]:
    names = spec.warm_start.from_sweeps if spec.warm_start else ()
    return tuple(
        ObjectRef(owner.ref.api_version, "AutoMLSweep", owner.namespace, name) for name in names
    )


@dataclass(frozen=True)
class AutoMLSweepAdapter:
    """One TrainingJob per trial, suggested, judged and ranked by Optuna."""

    info: ClassVar[KindInfo] = AUTOML_SWEEP
    child_sources: ClassVar[Sequence[ChildSource]] = (
        ChildSource.owned_by("AutoMLSweep", "trials", "plinth.dev", "v1alpha1", "trainingjobs"),
    )
    warning_conditions: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"Failed": "True", "Accepted": "False"}
    )
    progress_reasons: ClassVar[Collection[str]] = ()

    def observe(self, children: Mapping[str, Sequence[Mapping[str, Any]]]) -> ObservedSweep:
        return observe_sweep(children["trials"])

    def plan(self, inputs: Inputs) -> Plan[AutoMLSweepStatus]:
        owner, spec = inputs.owner, inputs.spec
        earlier = _earlier_sweeps(owner, spec)
        if earlier and inputs.objects is None:  # read them, then plan again
            return Plan(status=inputs.previous, wants_objects=earlier)
        found = [(inputs.objects or {}).get(ref) for ref in earlier]
        decision = plan_sweep(
            spec,
            owner,
            inputs.previous,
            inputs.observed,
            inputs.now,
            earlier=earlier_results(spec, found),
        )
        trials = tuple(trial_manifest(owner.ref, trial) for trial in decision.trials)
        return Plan(
            status=decision.status,
            children=ChildChanges(apply=trials),
            check_again_after=decision.check_again_after,
            events=decision.events,
        )

    def invalid_spec_status(
        self, previous: AutoMLSweepStatus, owner: OwnerMeta, message: str, now: datetime
    ) -> AutoMLSweepStatus:
        return acceptance_status(previous, owner, message, AutoMLSweepPhase.FAILED, now)
