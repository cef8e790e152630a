"""The children of an AutoMLSweep: one TrainingJob per trial.

Trial `N` of sweep `S` is the TrainingJob `S-N`, owned by the sweep, labelled with the
sweep's name and the trial number, and annotated with its parameters (JSON) and the
optimiser's bookkeeping of it, so a trial is recognised from the TrainingJob alone. Its
spec is the sweep's trialTemplate with the placeholders filled in; a stopped (pruned) trial
is the same TrainingJob with `suspend: true`, which frees its GPUs at once and keeps it for
inspection, and with why in its `plinth.dev/trial-stopped` annotation (its status says it).
Its workers get the whole assignment as JSON in PLINTH_PARAMS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from plinth.api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    AUTOML_SWEEP,
    AutoMLSweepStatus,
    parse_spec,
)
from plinth.api.wellknown import (
    ANNOTATION_TRIAL_PARAMETERS,
    ANNOTATION_TRIAL_SAMPLER_STATE,
    ANNOTATION_TRIAL_STOPPED,
    LABEL_AUTOMLSWEEP,
    LABEL_TRIAL,
    Manifest,
    ObjectRef,
    OwnerMeta,
)
from plinth.builders.common import child_metadata, managed_labels, rendered_owner
from plinth.status.automlsweep import TrialToApply, plan_sweep
from plinth.status.automlsweep_observed import ObservedSweep


def trial_labels(sweep: str, number: int) -> dict[str, str]:
    """Labels of a trial TrainingJob."""
    return managed_labels(AUTOML_SWEEP.kind) | {LABEL_AUTOMLSWEEP: sweep, LABEL_TRIAL: str(number)}


def trial_manifest(owner: ObjectRef, trial: TrialToApply) -> Manifest:
    """The TrainingJob of one trial, as the operator applies it."""
    metadata = child_metadata(owner, trial.name, trial_labels(owner.name, trial.number))
    metadata["annotations"] = {
        ANNOTATION_TRIAL_PARAMETERS: json.dumps(dict(trial.parameters), sort_keys=True),
        ANNOTATION_TRIAL_SAMPLER_STATE: json.dumps(dict(trial.sampler_state), sort_keys=True),
    }
    spec = dict(trial.spec)
    if trial.stopped is not None:
        spec["suspend"] = True
        metadata["annotations"][ANNOTATION_TRIAL_STOPPED] = trial.stopped
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "TrainingJob",
        "metadata": metadata,
        "spec": spec,
    }


def render_automlsweep(resource: Mapping[str, Any]) -> list[Manifest]:
    """The trials `plinth render` prints for a sweep document: the first ones it would start
    (parallelTrials of them), as the operator applies them."""
    metadata = resource.get("metadata") or {}
    spec = parse_spec("AutoMLSweep", resource.get("spec") or {})
    ref = rendered_owner(AUTOML_SWEEP.kind, metadata)
    owner = OwnerMeta(ref=ref, generation=1, created=datetime.now(UTC))
    plan = plan_sweep(spec, owner, AutoMLSweepStatus(), ObservedSweep(), datetime.now(UTC))
    return [trial_manifest(ref, trial) for trial in plan.trials]
