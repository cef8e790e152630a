"""Which model a ModelDeployment serves: its URI as written, what a TrainingJob exported
under its checkpoint location once it Succeeded, or what an AutoMLSweep's best trial did
(a new best trial is a new model, rolled out like any other change).

The TrainingJob or sweep is read by reference (`Plan.wants_objects`): from the operator's
own cache of Plinth resources, so following one costs no API request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plinth.api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    AutoMLSweepPhase,
    AutoMLSweepStatus,
    InvalidSpecError,
    InvalidStatusError,
    ModelDeploymentSpec,
    TrainingJobPhase,
    TrainingJobStatus,
    TrainingOutput,
    parse_spec,
    parse_status,
)
from plinth.api.wellknown import ObjectRef, OwnerMeta
from plinth.serving.repository import ResolvedModel, joined_uri
from plinth.status.plan import ObjectLookups

REASON_RESOLVED = "Resolved"
REASON_WAITING = "WaitingForSource"
REASON_NOT_FOUND = "SourceNotFound"
REASON_NO_CHECKPOINT = "NoCheckpoint"
#: The source ended without a model to serve (its TrainingJob Failed, its sweep ended with
#: no best trial): waiting would be forever.
REASON_SOURCE_FAILED = "SourceFailed"


@dataclass(frozen=True)
class Resolution:
    """The model to serve, or why there is none yet; or the object that must be read."""

    model: ResolvedModel | None
    reason: str
    message: str
    wants: ObjectRef | None = None
    #: No model will come from the source as it stands (reason REASON_SOURCE_FAILED).
    failed: bool = False


def source_ref(spec: ModelDeploymentSpec, namespace: str) -> ObjectRef | None:
    """The TrainingJob or AutoMLSweep the model comes from (None for a URI)."""
    api_version = f"{API_GROUP}/{API_VERSION}"
    if spec.model.from_training_job is not None:
        return ObjectRef(api_version, "TrainingJob", namespace, spec.model.from_training_job.name)
    if spec.model.from_sweep is not None:
        return ObjectRef(api_version, "AutoMLSweep", namespace, spec.model.from_sweep.name)
    return None


def _resolved(spec: ModelDeploymentSpec, owner: OwnerMeta, uri: str, origin: str) -> Resolution:
    model = ResolvedModel(
        name=spec.model.name or owner.name,
        version=spec.model.version,
        format=spec.model.format,
        uri=uri,
    )
    return Resolution(model, REASON_RESOLVED, f"{origin}: {uri}")


def _waiting(message: str, reason: str = REASON_WAITING) -> Resolution:
    return Resolution(None, reason, message)


def _never(message: str) -> Resolution:
    return Resolution(None, REASON_SOURCE_FAILED, message, failed=True)


def _from_training_job(body: Mapping[str, Any], output: TrainingOutput) -> str | Resolution:
    name = output.name
    try:
        status = parse_status("TrainingJob", body.get("status"))
        spec = parse_spec("TrainingJob", body.get("spec") or {})
    except (InvalidSpecError, InvalidStatusError) as error:
        return _waiting(f"TrainingJob {name} cannot be read: {error}")
    assert isinstance(status, TrainingJobStatus)
    if status.phase == TrainingJobPhase.FAILED:
        return _never(f"TrainingJob {name} Failed, so it exported no model to serve")
    if status.phase != TrainingJobPhase.SUCCEEDED:
        return _waiting(f"waiting for TrainingJob {name} to succeed (phase {status.phase})")
    if spec.checkpoint is None:
        return _waiting(f"TrainingJob {name} has no checkpoint.uri", REASON_NO_CHECKPOINT)
    return joined_uri(spec.checkpoint.uri, output.path)


def _from_sweep(body: Mapping[str, Any], output: TrainingOutput) -> str | Resolution:
    try:
        status = parse_status("AutoMLSweep", body.get("status"))
    except InvalidStatusError as error:
        return _waiting(f"AutoMLSweep {output.name} cannot be read: {error}")
    assert isinstance(status, AutoMLSweepStatus)
    best = status.best_trial
    if best is None and status.phase in (AutoMLSweepPhase.SUCCEEDED, AutoMLSweepPhase.FAILED):
        return _never(f"AutoMLSweep {output.name} is {status.phase} without a best trial")
    if best is None:
        return _waiting(f"waiting for AutoMLSweep {output.name} to have a best trial")
    if not best.checkpoint_uri:
        return _waiting(
            f"the best trial {best.name} of AutoMLSweep {output.name} has no checkpoint",
            REASON_NO_CHECKPOINT,
        )
    return joined_uri(best.checkpoint_uri, output.path)


def resolve(
    spec: ModelDeploymentSpec, owner: OwnerMeta, objects: ObjectLookups | None
) -> Resolution:
    """The model `spec` asks for, as far as it can be known now."""
    if spec.model.uri is not None:
        return _resolved(spec, owner, spec.model.uri, "uri")
    ref = source_ref(spec, owner.namespace)
    assert ref is not None
    if objects is None or ref not in objects:
        return Resolution(None, REASON_WAITING, "reading the model's source", wants=ref)
    body = objects[ref]
    if body is None:
        return _waiting(f"{ref.kind} {ref.name} not found in {ref.namespace}", REASON_NOT_FOUND)
    if spec.model.from_training_job is not None:
        found = _from_training_job(body, spec.model.from_training_job)
        origin = f"TrainingJob {ref.name}"
    else:
        assert spec.model.from_sweep is not None
        found = _from_sweep(body, spec.model.from_sweep)
        origin = f"best trial of AutoMLSweep {ref.name}"
    return found if isinstance(found, Resolution) else _resolved(spec, owner, found, origin)
