"""`plinth render`: the child objects Plinth would apply for a set of custom resources."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plinth.api.v1alpha1 import API_GROUP, InvalidSpecError, parse_spec
from plinth.builders.common import Manifest
from plinth.builders.trainingjob import render_trainingjob

#: A builder takes a custom resource (metadata and raw spec, already validated) and returns
#: the children Plinth applies for it.
Builder = Callable[[Mapping[str, Any]], list[Manifest]]

BUILDERS: dict[str, Builder] = {
    "TrainingJob": render_trainingjob,
}


class RenderError(Exception):
    """A resource in the input cannot be rendered; the message names it and the field."""


@dataclass(frozen=True)
class Rendered:
    """The children of every resource, and the resources whose kind has no builder yet."""

    manifests: tuple[Manifest, ...]
    without_builder: tuple[str, ...]


def _describe(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    return f"{document.get('kind')}/{metadata.get('name', '<unnamed>')}"


def is_plinth_resource(document: Mapping[str, Any]) -> bool:
    """Whether a YAML document is one of Plinth's custom resources."""
    return str(document.get("apiVersion", "")).startswith(f"{API_GROUP}/")


def render_documents(documents: Iterable[Mapping[str, Any] | None]) -> Rendered:
    """Validate every Plinth resource in `documents` and build its children."""
    manifests: list[Manifest] = []
    without_builder: list[str] = []
    for document in documents:
        if not document or not is_plinth_resource(document):
            continue
        kind = str(document.get("kind"))
        try:
            parse_spec(kind, document.get("spec") or {})
        except InvalidSpecError as error:
            raise RenderError(f"{_describe(document)}: {error}") from error
        builder = BUILDERS.get(kind)
        if builder is None:
            without_builder.append(_describe(document))
            continue
        manifests.extend(builder(document))
    return Rendered(manifests=tuple(manifests), without_builder=tuple(without_builder))
