"""List semantics for the API server (x-kubernetes-list-type) with the same check in Python.

Used as `Annotated[tuple[Item, ...], ListMap("name")]`: the CRD then declares the list a map
keyed by `name` (server-side apply merges it item by item), and validation refuses two items
with the same key, as the API server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema


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
