"""Environment variables of the containers Plinth runs, and the names Plinth reserves.

`EnvList` is a list keyed by name; a variable has a literal value or one read from a
Secret, a ConfigMap or the pod itself. `RESERVED_ENV_CEL` and `is_reserved_env_name` are the
two halves of the rule that keeps users from setting the variables Plinth wires itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field, StringConstraints

from plinth.api.schema import ApiModel, DnsSubdomain, ListMap, Rule

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
