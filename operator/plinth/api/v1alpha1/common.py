"""Building blocks shared by the plinth.dev/v1alpha1 kinds.

Holds the base model every API type derives from (camelCase aliases, frozen, unknown
fields refused), the cross-field `Rule` that is both a CEL rule in the CRD and a Python
check in `parse_spec`, Kubernetes-shaped value types (quantities, names, timestamps),
and the pieces several kinds use: per-node resources, environment variables, the pod
template escape hatch and conditions in the metav1.Condition shape.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

API_GROUP = "plinth.dev"
API_VERSION = "v1alpha1"

#: Error type of a failed cross-field rule; `ctx["field_path"]` says which field it is about.
RULE_ERROR_TYPE = "plinth_rule"

ModelT = TypeVar("ModelT", bound="ApiModel")


# --------------------------------------------------------------------------------------
# Cross-field rules
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule(Generic[ModelT]):
    """A check that spans fields: a CEL rule for the API server and its Python twin.

    `cel` is evaluated with `self` bound to the object the rule is declared on (and
    `oldSelf` for transition rules, which have no Python twin). `field_path` is relative
    to that object (".minNodes") and names the field the error is reported on.
    A rule without `cel` is checked in Python only: CEL cannot see fields whose schema
    has no type (x-kubernetes-preserve-unknown-fields), so the operator reports it as
    an InvalidSpec condition instead of the API server refusing the object.
    """

    cel: str | None
    message: str
    field_path: str = ""
    holds: Callable[[ModelT], bool] | None = None

    def to_schema(self) -> dict[str, str]:
        """The rule as an entry of `x-kubernetes-validations`."""
        if self.cel is None:
            raise ValueError(f"rule {self.message!r} has no CEL form")
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def immutable(field_name: str, *, optional: bool) -> Rule[Any]:
    """A transition rule that refuses any change to `field_name` (a camelCase property)."""
    if optional:
        cel = (
            f"has(self.{field_name}) == has(oldSelf.{field_name}) && "
            f"(!has(self.{field_name}) || self.{field_name} == oldSelf.{field_name})"
        )
    else:
        cel = f"self.{field_name} == oldSelf.{field_name}"
    message = f"{field_name} is immutable: create a new object to change it"
    return Rule(cel=cel, message=message, field_path=f".{field_name}")


# --------------------------------------------------------------------------------------
# Base models
# --------------------------------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of every spec type: camelCase in YAML, immutable, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="forbid",
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Any]]:
        """Rules spanning several fields of this model; override to declare some."""
        return ()

    @model_validator(mode="after")
    def _enforce_cross_field_rules(self) -> Self:
        for rule in self.cross_field_rules():
            if rule.holds is not None and not rule.holds(self):
                raise PydanticCustomError(
                    RULE_ERROR_TYPE,
                    "{message}",
                    {"message": rule.message, "field_path": rule.field_path},
                )
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        rules = [rule.to_schema() for rule in cls.cross_field_rules() if rule.cel is not None]
        if rules:
            target["x-kubernetes-validations"] = rules
        if cls.model_config.get("extra") == "allow":
            target["x-kubernetes-preserve-unknown-fields"] = True
        return json_schema

    def to_dict(self) -> dict[str, Any]:
        """The object as it is written in YAML: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Base of status types: written by the operator, so fields it no longer knows are
    ignored on read rather than refused."""

    model_config = ConfigDict(extra="ignore")


def object_default(model: type[ApiModel]) -> dict[str, Any]:
    """`json_schema_extra` for a field whose value defaults to `model()`.

    The CRD then carries the whole default object (the API server checks a default
    against the CEL rules without filling nested defaults in first), and
    `kubectl get -o yaml` shows the effective settings. Empty lists are left out.
    """
    defaults = {key: value for key, value in model().to_dict().items() if value != []}
    return {"default": defaults}


# --------------------------------------------------------------------------------------
# List semantics (x-kubernetes-list-type) with the same check in Python
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListMap:
    """Annotation: a list keyed by one of its items' fields (no two items share a key).

    Server-side apply then merges such lists item by item instead of replacing them.
    """

    key: str  # the Python attribute name of the key field

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._refuse_duplicates, handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["x-kubernetes-list-type"] = "map"
        json_schema["x-kubernetes-list-map-keys"] = [to_camel(self.key)]
        return json_schema

    def _refuse_duplicates(self, items: tuple[Any, ...]) -> tuple[Any, ...]:
        keys = [getattr(item, self.key) for item in items]
        duplicates = sorted({str(key) for key in keys if keys.count(key) > 1})
        if duplicates:
            raise PydanticCustomError(
                "duplicate_key",
                "{key} must be unique; repeated: {repeated}",
                {"key": to_camel(self.key), "repeated": ", ".join(duplicates)},
            )
        return items


@dataclass(frozen=True)
class ListSet:
    """Annotation: a list of scalars without repeats (x-kubernetes-list-type: set)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._refuse_repeats, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["x-kubernetes-list-type"] = "set"
        return json_schema

    @staticmethod
    def _refuse_repeats(items: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(set(items)) != len(items):
            raise PydanticCustomError("duplicate_item", "items must not repeat", {})
        return items


# --------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
#: A non-negative Kubernetes quantity ("8", "500m", "64Gi", "1.5e3").
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
ImageRef = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$")]
CommandArg = Annotated[str, StringConstraints(max_length=4096)]


def _parse_quantity(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(QUANTITY_PATTERN, value):
        return value
    raise PydanticCustomError(
        "quantity",
        "must be a non-negative Kubernetes quantity such as 8, 500m or 64Gi; got {value}",
        {"value": repr(value)},
    )


#: A resource quantity: an integer or a quantity string; kept as the string form.
Quantity = Annotated[
    str,
    PlainValidator(_parse_quantity, json_schema_input_type=int | str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


def _assume_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: A point in time, written the way Kubernetes writes metav1.Time (RFC 3339, seconds, UTC).
Timestamp = Annotated[
    datetime,
    AfterValidator(_assume_utc),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
]


# --------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------


class Resources(ApiModel):
    """Compute for one pod (a training node or a serving replica)."""

    gpus: int = Field(
        0,
        ge=0,
        le=64,
        description=(
            "NVIDIA GPUs (nvidia.com/gpu) for each pod, requested and limited alike. "
            "0 runs on CPU only."
        ),
    )
    gpu_type: LabelValue | None = Field(
        None,
        min_length=1,
        description=(
            "GPU model to run on, matched against the node label nvidia.com/gpu.product "
            "that NVIDIA GPU feature discovery sets (e.g. NVIDIA-H100-80GB-HBM3). "
            "Unset: any GPU model. Needs gpus > 0."
        ),
    )
    cpu: Quantity | None = Field(
        None,
        description=(
            "CPU for each pod as a Kubernetes quantity (8, 7500m); requested and limited. "
            "Unset: no CPU request (the namespace's defaults apply)."
        ),
    )
    memory: Quantity | None = Field(
        None,
        description=(
            "Memory for each pod as a Kubernetes quantity (64Gi, 512Mi); requested and "
            "limited, so the pod is OOM-killed above it. Unset: no memory request."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Resources]]:
        return (
            Rule(
                cel="!has(self.gpuType) || self.gpus > 0",
                message="gpuType needs gpus > 0",
                field_path=".gpuType",
                holds=lambda r: r.gpu_type is None or r.gpus > 0,
            ),
        )


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------

#: Variables Plinth sets in every training pod; a user-supplied value would be ignored.
RESERVED_ENV_NAMES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "PET_RDZV_BACKEND",
    "PET_RDZV_ENDPOINT",
    "PET_RDZV_ID",
    "PET_MAX_RESTARTS",
    "LOCAL_RANK",
)
#: Prefix of variables Plinth owns (PLINTH_CHECKPOINT_URI, PLINTH_JOB_NAME, ...).
RESERVED_ENV_PREFIX = "PLINTH_"


def is_reserved_env_name(name: str) -> bool:
    """Whether `name` is a variable Plinth sets itself."""
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIX)


RESERVED_ENV_CEL = (
    "!has(self.env) || self.env.all(e, !(e.name in ["
    + ", ".join(f"'{name}'" for name in RESERVED_ENV_NAMES)
    + f"]) && !e.name.startsWith('{RESERVED_ENV_PREFIX}'))"
)
RESERVED_ENV_MESSAGE = (
    "env must not set variables Plinth sets itself: "
    + ", ".join(RESERVED_ENV_NAMES)
    + f" or any {RESERVED_ENV_PREFIX}* name"
)

EnvName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
]


class KeySelector(ApiModel):
    """One key of a Secret or ConfigMap."""

    name: DnsSubdomain = Field(description="Name of the Secret or ConfigMap, in this namespace.")
    key: str = Field(min_length=1, max_length=253, description="Key within it.")
    optional: bool = Field(
        False, description="If true, a missing object or key leaves the variable unset."
    )


class FieldSelector(ApiModel):
    """A field of the pod itself (downward API)."""

    field_path: str = Field(
        min_length=1,
        max_length=256,
        description="Path of the pod field, e.g. metadata.name, status.podIP, spec.nodeName.",
    )


class EnvVarSource(ApiModel):
    """Where a variable's value comes from; set exactly one."""

    secret_key_ref: KeySelector | None = Field(None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(None, description="A key of a ConfigMap.")
    field_ref: FieldSelector | None = Field(None, description="A field of the pod (downward API).")

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[EnvVarSource]]:
        return (
            Rule(
                cel=(
                    "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
                    ".filter(x, x).size() == 1"
                ),
                message="valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef",
                holds=lambda s: (
                    sum(
                        ref is not None
                        for ref in (s.secret_key_ref, s.config_map_key_ref, s.field_ref)
                    )
                    == 1
                ),
            ),
        )


class EnvVar(ApiModel):
    """An environment variable for the program's container."""

    name: EnvName = Field(description="Variable name.")
    value: str | None = Field(
        None, max_length=32768, description="Literal value. Unset with valueFrom."
    )
    value_from: EnvVarSource | None = Field(
        None, description="Read the value from a Secret, a ConfigMap or the pod itself."
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[EnvVar]]:
        return (
            Rule(
                cel="!(has(self.value) && has(self.valueFrom))",
                message="set value or valueFrom, not both",
                field_path=".valueFrom",
                holds=lambda e: e.value is None or e.value_from is None,
            ),
        )


EnvList = Annotated[tuple[EnvVar, ...], Field(max_length=128), ListMap("name")]


# --------------------------------------------------------------------------------------
# Pod template escape hatch
# --------------------------------------------------------------------------------------


class TolerationOperator(enum.StrEnum):
    """How a toleration matches a taint's value."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(enum.StrEnum):
    """Which taint effect a toleration matches."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """Lets pods run on nodes with a matching taint (as in a Pod's spec.tolerations)."""

    key: str | None = Field(
        None,
        max_length=317,
        description="Taint key to match. Unset with operator Exists: tolerate every taint.",
    )
    operator: TolerationOperator = Field(
        TolerationOperator.EQUAL,
        description="Equal: the taint's value must equal value. Exists: any value.",
    )
    value: str | None = Field(
        None, max_length=63, description="Taint value to match (operator Equal only)."
    )
    effect: TaintEffect | None = Field(
        None, description="Taint effect to match. Unset: every effect."
    )
    toleration_seconds: int | None = Field(
        None,
        ge=0,
        description=(
            "For NoExecute: how long the pod stays on a node after the taint appears. "
            "Unset: forever."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Toleration]]:
        return (
            Rule(
                cel="self.operator != 'Exists' || !has(self.value)",
                message="value must be unset when operator is Exists",
                field_path=".value",
                holds=lambda t: t.operator != TolerationOperator.EXISTS or t.value is None,
            ),
        )


class Volume(ApiModel):
    """A pod volume exactly as in a Pod's spec.volumes (persistentVolumeClaim, secret,
    configMap, emptyDir, csi, ...); only `name` is checked here, the API server checks
    the rest when Plinth creates the pods."""

    model_config = ConfigDict(extra="allow")

    name: DnsLabel = Field(description="Volume name, referenced by volumeMounts.")


class VolumeMount(ApiModel):
    """Where a volume appears in the program's container."""

    name: DnsLabel = Field(description="Name of a volume in podTemplate.volumes.")
    mount_path: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^/",
        description="Absolute path in the container, e.g. /data.",
    )
    sub_path: str | None = Field(
        None, max_length=1024, description="Mount only this path within the volume."
    )
    read_only: bool = Field(False, description="Mount read-only.")


class PodTemplate(ApiModel):
    """Settings copied onto every pod Plinth creates, for what the typed fields don't cover."""

    node_selector: Mapping[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels the pods must run on (merged with gpuType's selector).",
    )
    tolerations: tuple[Toleration, ...] = Field(
        (),
        max_length=32,
        description=(
            "Taints the pods tolerate. Plinth already tolerates nvidia.com/gpu:NoSchedule "
            "when GPUs are requested."
        ),
    )
    volumes: Annotated[tuple[Volume, ...], ListMap("name")] = Field(
        (), max_length=64, description="Pod volumes (as in a Pod's spec.volumes)."
    )
    volume_mounts: Annotated[tuple[VolumeMount, ...], ListMap("mount_path")] = Field(
        (), max_length=64, description="Mounts of those volumes in the program's container."
    )
    service_account_name: DnsSubdomain | None = Field(
        None,
        description=(
            "ServiceAccount the pods run as (e.g. one bound to cloud storage credentials). "
            "Unset: the namespace's default."
        ),
    )
    image_pull_secrets: Annotated[tuple[DnsSubdomain, ...], ListSet()] = Field(
        (), max_length=16, description="Names of Secrets used to pull private images."
    )
    labels: Mapping[str, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Extra pod labels. Keys under plinth.dev/ are Plinth's own and refused.",
    )
    annotations: Mapping[str, str] = Field(
        default_factory=dict, max_length=64, description="Extra pod annotations."
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[PodTemplate]]:
        return (
            Rule(
                cel="!has(self.volumeMounts) || self.volumeMounts.all(m, "
                "has(self.volumes) && self.volumes.exists(v, v.name == m.name))",
                message="every volumeMounts[].name must name a volume in volumes",
                field_path=".volumeMounts",
                holds=lambda p: {m.name for m in p.volume_mounts} <= {v.name for v in p.volumes},
            ),
            Rule(
                cel="!has(self.labels) || self.labels.all(k, !k.startsWith('plinth.dev/'))",
                message="labels must not use the plinth.dev/ prefix, which Plinth sets itself",
                field_path=".labels",
                holds=lambda p: not any(k.startswith("plinth.dev/") for k in p.labels),
            ),
        )


# --------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------


class ConditionStatus(enum.StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


#: Reason of the condition that reports a spec the operator cannot act on.
REASON_INVALID_SPEC = "InvalidSpec"


class Condition(StatusModel):
    """One aspect of the object's state, in the shape of metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Condition type, in CamelCase (e.g. Running, Ready).",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(max_length=32768, description="Human-readable details; may be empty.")
    last_transition_time: Timestamp = Field(description="When the condition last changed status.")
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation the condition was computed from."
    )


ConditionList = Annotated[tuple[Condition, ...], Field(max_length=32), ListMap("type")]


# --------------------------------------------------------------------------------------
# Kinds and printer columns
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get`."""

    name: str
    json_path: str
    type: str  # integer | number | string | boolean | date
    description: str
    priority: int = 0  # 1: only with -o wide

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


AGE_COLUMN = PrinterColumn(
    "Age", ".metadata.creationTimestamp", "date", "Time since the object was created."
)


@dataclass(frozen=True)
class KindInfo:
    """Everything that defines one kind of the API: names, models, CRD extras."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec_model: type[ApiModel]
    status_model: type[StatusModel]
    printer_columns: tuple[PrinterColumn, ...]
    #: Rules on `spec` that compare with the stored object (`oldSelf`).
    spec_transition_rules: tuple[Rule[Any], ...] = ()
    #: Rules on the whole object (only metadata.name/generateName are visible there).
    object_rules: tuple[Rule[Any], ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{API_GROUP}/{API_VERSION}"


def name_rule(max_length: int, reason: str) -> Rule[Any]:
    """An object rule: metadata.name is a DNS-1035 label short enough for its children."""
    return Rule(
        cel=(
            f"self.metadata.name.size() <= {max_length} && "
            "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
        ),
        message=(
            f"metadata.name must be at most {max_length} characters of lowercase letters, "
            f"digits and '-', starting with a letter ({reason})"
        ),
        field_path=".metadata.name",
    )
