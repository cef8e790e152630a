"""The registry of plinth.dev/v1alpha1 kinds and the parsing the handler layer does at the edge.

`parse_spec` turns a resource's raw `spec` into its typed model once; a bad spec raises
`InvalidSpecError` whose message names each offending field ("spec.resources.gpus: ...")
so that it can be shown to the user as it is, in a condition or an Event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from plinth.api.v1alpha1.automlsweep import AUTOML_SWEEP, AutoMLSweepSpec, AutoMLSweepStatus
from plinth.api.v1alpha1.common import RULE_ERROR_TYPE, ApiModel, KindInfo, StatusModel
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


class InvalidSpecError(ValueError):
    """A spec the API cannot accept; the message names every offending field."""

    def __init__(self, kind: str, problems: list[str]) -> None:
        self.kind = kind
        self.problems = problems
        super().__init__("; ".join(problems))


class InvalidStatusError(ValueError):
    """A stored status the operator cannot read back; the message names the fields."""

    def __init__(self, kind: str, problems: list[str]) -> None:
        self.kind = kind
        self.problems = problems
        super().__init__("; ".join(problems))


def kind_info(kind: str) -> KindInfo:
    """The registry entry of `kind`; ValueError for a kind this API version lacks."""
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(KINDS)
        raise ValueError(f"unknown kind {kind!r} in plinth.dev/v1alpha1; known: {known}") from None


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


def describe_errors(root: str, error: ValidationError) -> list[str]:
    """One "<root>.<field path>: <message>" line per validation problem."""
    return [_describe(root, detail) for detail in error.errors(include_url=False)]


def _describe(root: str, detail: ErrorDetails) -> str:
    path = root + "".join(_path_segment(part) for part in detail["loc"])
    if detail["type"] == RULE_ERROR_TYPE:
        path += str(detail.get("ctx", {}).get("field_path", ""))
    return f"{path}: {detail['msg']}"


def _path_segment(part: int | str) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if part.replace("_", "a").isalnum():
        return f".{part}"
    return f"[{part!r}]"
