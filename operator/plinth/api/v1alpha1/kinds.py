"""The registry of plinth.dev/v1alpha1 kinds and the parsing the handler layer does at the edge.

`parse_spec` turns a resource's raw `spec` into its typed model once; a bad spec raises
`InvalidSpecError` whose message names each offending field ("spec.resources.gpus: ...")
so that it can be shown to the user as it is, in a condition or an Event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from pydantic import ValidationError

from plinth.api.schema import (
    ApiModel,
    InvalidSpecError,
    InvalidStatusError,
    KindInfo,
    StatusModel,
    describe_errors,
)
from plinth.api.v1alpha1.automlsweep import AUTOML_SWEEP, AutoMLSweepSpec, AutoMLSweepStatus
from plinth.api.v1alpha1.common import API_GROUP, API_VERSION
from plinth.api.v1alpha1.modeldeployment import (
    MODEL_DEPLOYMENT,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from plinth.api.v1alpha1.trainingjob import TRAINING_JOB, TrainingJobSpec, TrainingJobStatus

#: Every kind of the API version, by kind name, in the order CRDs are generated.
KINDS: Mapping[str, KindInfo] = {
    info.kind: info for info in (TRAINING_JOB, AUTOML_SWEEP, MODEL_DEPLOYMENT)
}

KindName = Literal["TrainingJob", "AutoMLSweep", "ModelDeployment"]


def kind_info(kind: str) -> KindInfo:
    """The registry entry of `kind`; ValueError for a kind this API version lacks."""
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(KINDS)
        raise ValueError(
            f"unknown kind {kind!r} in {API_GROUP}/{API_VERSION}; known: {known}"
        ) from None


@overload
def parse_spec(kind: Literal["TrainingJob"], spec: Mapping[str, Any]) -> TrainingJobSpec: ...
@overload
def parse_spec(kind: Literal["AutoMLSweep"], spec: Mapping[str, Any]) -> AutoMLSweepSpec: ...
@overload
def parse_spec(
    kind: Literal["ModelDeployment"], spec: Mapping[str, Any]
) -> ModelDeploymentSpec: ...
@overload
def parse_spec(kind: str, spec: Mapping[str, Any]) -> ApiModel: ...
def parse_spec(kind: str, spec: Mapping[str, Any]) -> ApiModel:
    """Validate the raw `spec` of a `kind` object into its typed spec model.

    Raises InvalidSpecError with one "spec.<path>: <problem>" entry per problem.
    """
    model = kind_info(kind).spec_model
    try:
        return model.model_validate(spec)
    except ValidationError as error:
        raise InvalidSpecError(kind, describe_errors("spec", error)) from None


@overload
def parse_status(
    kind: Literal["TrainingJob"], status: Mapping[str, Any] | None
) -> TrainingJobStatus: ...
@overload
def parse_status(
    kind: Literal["AutoMLSweep"], status: Mapping[str, Any] | None
) -> AutoMLSweepStatus: ...
@overload
def parse_status(
    kind: Literal["ModelDeployment"], status: Mapping[str, Any] | None
) -> ModelDeploymentStatus: ...
@overload
def parse_status(kind: str, status: Mapping[str, Any] | None) -> StatusModel: ...
def parse_status(kind: str, status: Mapping[str, Any] | None) -> StatusModel:
    """Read back a stored `status` (None or {} for a new object: the empty status).

    Fields the model does not know are ignored. Raises InvalidStatusError.
    """
    model = kind_info(kind).status_model
    try:
        return model.model_validate(status or {})
    except ValidationError as error:
        raise InvalidStatusError(kind, describe_errors("status", error)) from None
