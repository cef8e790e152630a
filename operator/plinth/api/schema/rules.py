"""Cross-field rules: one declaration that is both a CEL rule in the CRD and a Python check.

A model lists its rules in `ApiModel.cross_field_rules`; the CRD generator writes each as an
entry of `x-kubernetes-validations`, and validating the model runs its Python twin, so the
API server and `parse_spec` refuse the same objects with the same message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

#: Error type of a failed cross-field rule; `ctx["field_path"]` says which field it is about.
RULE_ERROR_TYPE = "plinth_rule"

ModelT = TypeVar("ModelT", bound=BaseModel)


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
    #: What the Python twin adds after `message` to name the offending values (a CEL
    #: message is static); None adds nothing.
    detail: Callable[[ModelT], str] | None = None

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


#: A DNS-1035 label: what Services and pod hostnames accept (RE2 and Python agree on it).
DNS_LABEL_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"


def name_rule(max_length: int, reason: str) -> Rule[Any]:
    """An object rule: metadata.name is a DNS-1035 label short enough for its children.

    Its Python twin takes the whole object as written (a mapping with `metadata`), so a tool
    that never reaches the API server (`plinth render`) refuses the same names it refuses.
    """

    def holds(obj: Any) -> bool:
        name = ((obj.get("metadata") if isinstance(obj, Mapping) else None) or {}).get("name")
        return (
            isinstance(name, str)
            and len(name) <= max_length
            and re.fullmatch(DNS_LABEL_PATTERN, name) is not None
        )

    return Rule(
        cel=(
            f"self.metadata.name.size() <= {max_length} && "
            f"self.metadata.name.matches('{DNS_LABEL_PATTERN}')"
        ),
        message=(
            f"metadata.name must be at most {max_length} characters of lowercase letters, "
            f"digits and '-', starting with a letter ({reason})"
        ),
        field_path=".metadata.name",
        holds=holds,
    )
