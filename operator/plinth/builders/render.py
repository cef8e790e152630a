"""`plinth render`: the child objects Plinth would apply for a set of custom resources."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plinth.api.v1alpha1 import API_GROUP, InvalidSpecError, kind_info, parse_spec
from plinth.api.wellknown import Manifest
from plinth.builders.automlsweep import render_automlsweep
from plinth.builders.modeldeployment import render_modeldeployment
from plinth.builders.trainingjob import render_trainingjob

#: A builder takes a custom resource (metadata and raw spec, already validated) and returns
#: the children Plinth applies for it.
Builder = Callable[[Mapping[str, Any]], list[Manifest]]

BUILDERS: dict[str, Builder] = {
    "TrainingJob": render_trainingjob,
    "AutoMLSweep": render_automlsweep,
    "ModelDeployment": render_modeldeployment,
}


class RenderError(Exception):
    """A resource in the input cannot be rendered; the message names it and the field."""


@dataclass(frozen=True)
class Rendered:
    """The children of every resource, the resources whose kind has no builder yet, and
    those that have no children before a cluster resolves what they refer to (a
    ModelDeployment of a sweep's best model)."""

    manifests: tuple[Manifest, ...]
    without_builder: tuple[str, ...]
    waiting_for_cluster: tuple[str, ...] = ()


def _describe(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    return f"{document.get('kind')}/{metadata.get('name', '<unnamed>')}"


def _check_object_rules(kind: str, document: Mapping[str, Any]) -> None:
    """The CRD's rules on the whole object (metadata.name), as the API server applies them."""
    try:
        rules = kind_info(kind).object_rules
    except ValueError:
        return  # an unknown kind: parse_spec names it
    for rule in rules:
        if rule.holds is not None and not rule.holds(document):
            path = rule.field_path.lstrip(".")
            value = (document.get("metadata") or {}).get("name")
            shown = "(missing)" if value is None else repr(value)
            raise RenderError(f"{_describe(document)}: {path} {shown}: {rule.message}")


def is_plinth_resource(document: Mapping[str, Any]) -> bool:
    """Whether a YAML document is one of Plinth's custom resources."""
    return str(document.get("apiVersion", "")).startswith(f"{API_GROUP}/")


def render_documents(documents: Iterable[Mapping[str, Any] | None]) -> Rendered:
    """Validate every Plinth resource in `documents` and build its children."""
    manifests: list[Manifest] = []
    without_builder: list[str] = []
    waiting: list[str] = []
    for document in documents:
        if not document or not is_plinth_resource(document):
            continue
        kind = str(document.get("kind"))
        _check_object_rules(kind, document)
        try:
            parse_spec(kind, document.get("spec") or {})
        except InvalidSpecError as error:
            raise RenderError(f"{_describe(document)}: {error}") from error
        builder = BUILDERS.get(kind)
        if builder is None:
            without_builder.append(_describe(document))
            continue
        children = builder(document)
        if not children:
            waiting.append(_describe(document))
        manifests.extend(children)
    return Rendered(tuple(manifests), tuple(without_builder), tuple(waiting))
