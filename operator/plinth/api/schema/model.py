"""The base models every API type derives from.

`ApiModel` is a spec type as users write it: camelCase in YAML, frozen, unknown fields
refused, its cross-field rules checked on validation and written into its JSON schema.
`StatusModel` is a type the operator writes, read back leniently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from plinth.api.schema.rules import RULE_ERROR_TYPE, Rule


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
                message = rule.message
                if rule.detail is not None:
                    message = f"{message}: {rule.detail(self)}"
                raise PydanticCustomError(
                    RULE_ERROR_TYPE,
                    "{message}",
                    {"message": message, "field_path": rule.field_path},
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
