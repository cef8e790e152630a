"""TrainingJob on the shared runtime: its children (attempt Jobs and their worker pods), how
they are observed, and how the planner's decision becomes writes and status. The planner
may ask for more than the children: the cluster's capacity (a gang is stuck) and the Nodes
of workers whose node may have gone silent; the runtime reads them and plans once more."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from plinth.api.v1alpha1 import (
    TRAINING_JOB,
    KindInfo,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
)
from plinth.api.wellknown import ANNOTATION_TRIAL_PARAMETERS, ObjectRef, OwnerMeta
from plinth.builders.trainingjob import attempt_changes
from plinth.kube.quota import pod_quota_demand
from plinth.runtime.adapter import ChildSource, PlanInputs
from plinth.status.acceptance import acceptance_status
from plinth.status.plan import Plan
from plinth.status.reported import with_report
from plinth.status.trainingjob import plan_trainingjob
from plinth.status.trainingjob_facts import gang_demand
from plinth.status.trainingjob_observe import observe_trainingjob, with_reads
from plinth.status.trainingjob_observed import ObservedTrainingJob

Inputs = PlanInputs[TrainingJobSpec, TrainingJobStatus, ObservedTrainingJob]


def node_ref(name: str) -> ObjectRef:
    """A Node, as a plan asks for it."""
    return ObjectRef("v1", "Node", "", name)


@dataclass(frozen=True)
class TrainingJobAdapter:
    """A gang of worker pods per attempt (an Indexed Job), restarted as a whole."""

    info: ClassVar[KindInfo] = TRAINING_JOB
    child_sources: ClassVar[Sequence[ChildSource]] = (
        ChildSource.owned_by(
            "TrainingJob", "jobs", "batch", "v1", "jobs", spec_fields=("suspend",)
        ),
        ChildSource.owned_by("TrainingJob", "pods", "", "v1", "pods", spec_fields=("nodeName",)),
    )
    warning_conditions: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"Failed": "True", "Restarting": "True", "Accepted": "False"}
    )
    progress_reasons: ClassVar[Collection[str]] = ()

    def observe(self, children: Mapping[str, Sequence[Mapping[str, Any]]]) -> ObservedTrainingJob:
        return observe_trainingjob(children["jobs"], children["pods"])

    def plan(self, inputs: Inputs) -> Plan[TrainingJobStatus]:
        spec, owner = inputs.spec, inputs.owner
        observed = with_reads(
            inputs.observed,
            owner=owner,
            demand=gang_demand(spec, pod_quota_demand(spec.resources)),
            capacity=inputs.capacity,
            objects=inputs.objects,
        )
        decision = plan_trainingjob(spec, owner, inputs.previous, observed, inputs.now)
        changes = attempt_changes(
            spec,
            decision,
            owner=owner.ref,
            existing_attempts=frozenset(a.attempt for a in observed.attempts),
            metrics_base_url=inputs.settings.metrics_base_url,
            token=inputs.settings.issue_token(owner.ref),
            trial_parameters=owner.annotations.get(ANNOTATION_TRIAL_PARAMETERS),
            scheduler_gangs=inputs.settings.scheduler_gangs,
        )
        reports = inputs.reports
        wants_nodes = () if inputs.objects is not None else decision.wants_nodes
        return Plan(
            status=with_report(decision.status, reports.metrics, reports.checkpoint),
            children=changes,
            delete_owner=decision.delete_trainingjob,
            check_again_after=decision.check_again_after,
            wants_capacity=decision.wants_capacity and inputs.capacity is None,
            admits=decision.admits,
            wants_objects=tuple(node_ref(name) for name in wants_nodes),
            settling=decision.settling,
        )

    def invalid_spec_status(
        self, previous: TrainingJobStatus, owner: OwnerMeta, message: str, now: datetime
    ) -> TrainingJobStatus:
        return acceptance_status(previous, owner, message, TrainingJobPhase.FAILED, now)
