"""Validation errors as users read them: one "spec.<field path>: <problem>" line each.

Pydantic reports where a problem is as a tuple of attribute names and indexes; a failed
cross-field rule adds the field it is about. These functions turn both into the path a
user writes in YAML, so the message can be shown as it is in a condition or an Event.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from plinth.api.schema.rules import RULE_ERROR_TYPE


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


def describe_errors(root: str, error: ValidationError) -> list[str]:
    """One "<root>.<field path>: <message>" line per validation problem. A list's "too
    short" is left out where one of its items failed: pydantic counts only the items that
    validated, so a list of one bad item would also read as empty."""
    details = error.errors(include_url=False)
    lists_with_bad_items = _item_parents(details)
    return [
        _describe(root, detail)
        for detail in details
        if not (detail["type"] == "too_short" and detail["loc"] in lists_with_bad_items)
    ]


def _item_parents(details: list[ErrorDetails]) -> set[tuple[int | str, ...]]:
    """The locations of the lists some of whose items failed."""
    return {
        detail["loc"][:index]
        for detail in details
        for index, part in enumerate(detail["loc"])
        if isinstance(part, int)
    }


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
