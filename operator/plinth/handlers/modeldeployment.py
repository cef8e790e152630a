"""ModelDeployment on the shared runtime: its children (a Deployment per model revision and
their Triton pods, HPAs), what it reads besides them (the TrainingJob or sweep its model
comes from, the Triton servers' metrics and repository index) and how the planner's
decision becomes writes and status."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from plinth.api.v1alpha1 import (
    MODEL_DEPLOYMENT,
    KindInfo,
    ModelDeploymentPhase,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from plinth.api.wellknown import OwnerMeta
from plinth.builders.modeldeployment import modeldeployment_changes
from plinth.runtime.adapter import ChildSource, PlanInputs
from plinth.status.acceptance import acceptance_status
from plinth.status.modeldeployment import ModelDeploymentInputs, plan_modeldeployment
from plinth.status.modeldeployment_observe import (
    ObservedModelDeployment,
    observe_modeldeployment,
)
from plinth.status.plan import Plan

Inputs = PlanInputs[ModelDeploymentSpec, ModelDeploymentStatus, ObservedModelDeployment]


def _owned(name: str, group: str, version: str, plural: str) -> ChildSource:
    return ChildSource.owned_by("ModelDeployment", name, group, version, plural)


@dataclass(frozen=True)
class ModelDeploymentAdapter:
    """Triton replicas per model revision behind one Service, autoscaled, rolled out."""

    info: ClassVar[KindInfo] = MODEL_DEPLOYMENT
    child_sources: ClassVar[Sequence[ChildSource]] = (
        _owned("deployments", "apps", "v1", "deployments"),
        _owned("pods", "", "v1", "pods"),
        _owned("hpas", "autoscaling", "v2", "horizontalpodautoscalers"),
    )
    warning_conditions: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"Accepted": "False", "ModelReady": "False", "Degraded": "True", "ScalingActive": "False"}
    )
    #: A model loading, or waiting for its source or for a replica to read metrics from, is
    #: a deployment starting, not failing.
    progress_reasons: ClassVar[Collection[str]] = frozenset(
        {"Loading", "WaitingForModel", "WaitingForReplicas"}
    )

    def observe(
        self, children: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> ObservedModelDeployment:
        return observe_modeldeployment(children["deployments"], children["pods"], children["hpas"])

    def plan(self, inputs: Inputs) -> Plan[ModelDeploymentStatus]:
        decision = plan_modeldeployment(
            ModelDeploymentInputs(
                spec=inputs.spec,
                owner=inputs.owner,
                previous=inputs.previous,
                observed=inputs.observed,
                now=inputs.now,
                objects=inputs.objects,
                reading=inputs.pod_reading,
                previous_reading=inputs.previous_pod_reading,
            )
        )
        return Plan(
            status=decision.status,
            children=modeldeployment_changes(inputs.spec, inputs.owner.ref, decision),
            events=decision.events,
            check_again_after=decision.check_again_after,
            wants_objects=decision.wants_objects,
            wants_from_pods=decision.wants_from_pods,
        )

    def invalid_spec_status(
        self, previous: ModelDeploymentStatus, owner: OwnerMeta, message: str, now: datetime
    ) -> ModelDeploymentStatus:
        return acceptance_status(previous, owner, message, ModelDeploymentPhase.FAILED, now)


ADAPTER = ModelDeploymentAdapter()
