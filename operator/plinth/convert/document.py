"""Documents in and out: YAML parsing, the metadata Plinth keeps, validation, readable YAML.

Input text becomes `Loaded` documents (a `kind: List` is opened into its items); the
converted object keeps the source's name, namespace, labels and annotations; its spec is
validated with Plinth's own typed specs (`parse_spec`) and its name against the kind's
CRD rule; the output is YAML ordered as the typed specs declare their fields, with
multi-line strings written as blocks, under a comment that lists every finding.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from plinth.api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    ApiModel,
    InvalidSpecError,
    kind_info,
    parse_spec,
)
from plinth.api.wellknown import LABEL_KUEUE_QUEUE_NAME, Manifest
from plinth.convert.report import ConversionError, Outcome, Severity, header_lines
from plinth.convert.source import Source

#: metadata the API server writes: meaningful for the source object only.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Loaded:
    """One document of an input file."""

    file: str
    index: int
    data: Any

    @property
    def label(self) -> str:
        """`Kind/name`, or where the document is when it has neither."""
        if isinstance(self.data, Mapping):
            metadata = self.data.get("metadata")
            name = metadata.get("name") if isinstance(metadata, Mapping) else None
            if self.data.get("kind") and name:
                return f"{self.data['kind']}/{name}"
        return f"document {self.index + 1}"


def load(file: str, text: str) -> list[Loaded]:
    """The non-empty documents of one YAML text, `kind: List` items opened up."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(error, "problem", None) or str(error)
        raise ConversionError(f"{file}: {where}", f"not valid YAML: {problem}") from None
    loaded = [Loaded(file, index, data) for index, data in enumerate(documents)]
    return [item for document in loaded if document.data is not None for item in _open(document)]


def _open(document: Loaded) -> Iterator[Loaded]:
    data = document.data
    if isinstance(data, Mapping) and data.get("kind") == "List":
        for item in data.get("items") or []:
            yield Loaded(document.file, document.index, item)
    else:
        yield document


class Inputs:
    """Every input document, so that one can refer to another (a runtime, a ConfigMap)."""

    def __init__(self, documents: Sequence[Loaded]) -> None:
        self._objects = [d.data for d in documents if isinstance(d.data, Mapping)]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Mapping[str, Any] | None:
        """The object of `kind` called `name` (in `namespace`, when given)."""
        for data in self._objects:
            metadata = data.get("metadata")
            if data.get("kind") != kind or not isinstance(metadata, Mapping):
                continue
            if metadata.get("name") == name and namespace in (None, metadata.get("namespace")):
                return data
        return None


# --------------------------------------------------------------------------------------
# The converted object
# --------------------------------------------------------------------------------------


def object_metadata(document: Source) -> Manifest:
    """The source's name, namespace, labels and annotations; what the API server or other
    controllers wrote on the source object is noted and left out."""
    metadata = document.require("metadata")
    kept = {key: metadata.text(key) for key in ("name", "generateName", "namespace")}
    if not kept["name"] and not kept["generateName"]:
        metadata.fail("is required", "name")
    labels = metadata.string_map("labels")
    annotations = metadata.string_map("annotations") or {}
    if annotations.pop(LAST_APPLIED, None) is not None:
        reason = "kubectl's record of the source object; kubectl apply writes a new one"
        metadata.note(Severity.CHANGED, reason, "annotations", LAST_APPLIED)
    for key in SERVER_METADATA:
        metadata.changed(key, "written by the API server for the source object")
    metadata.dropped("ownerReferences", "the source object's owner does not own the new one")
    metadata.dropped("finalizers", "finalizers of the source's controller")
    result: Manifest = {key: value for key, value in kept.items() if value}
    if labels:
        result["labels"] = labels
    if annotations:
        result["annotations"] = annotations
    document.changed("status", "written by the source's controller; Plinth writes its own")
    return result


def kueue_queue(document: Source) -> str | None:
    """The LocalQueue Kueue's label on the source object names (read, not marked: the
    label itself is kept with the others)."""
    metadata = document.value.get("metadata") or {}
    queue = (metadata.get("labels") or {}).get(LABEL_KUEUE_QUEUE_NAME)
    return str(queue) if queue else None


def plinth_object(kind: str, metadata: Manifest, spec: Manifest) -> Manifest:
    """A validated plinth.dev object, its spec ordered as the typed spec declares it."""
    check_name(kind, str(metadata.get("name") or ""))
    try:
        parse_spec(kind, spec)
    except InvalidSpecError as error:
        raise ConversionError("spec", f"the {kind} it converts to is not valid: {error}") from None
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind,
        "metadata": metadata,
        "spec": ordered(spec, kind_info(kind).spec_model),
    }


_MAX_LENGTH = re.compile(r"size\(\) <= (\d+)")
_PATTERN = re.compile(r"matches\('(.+?)'\)")


def check_name(kind: str, name: str) -> None:
    """Apply the kind's CRD rules on metadata.name (length and form) here, before the API
    server would; a generated name is left to it."""
    for rule in kind_info(kind).object_rules:
        limit, pattern = _MAX_LENGTH.search(rule.cel or ""), _PATTERN.search(rule.cel or "")
        too_long = limit is not None and len(name) > int(limit.group(1))
        if name and (too_long or (pattern and not re.fullmatch(pattern.group(1), name))):
            raise ConversionError("metadata.name", f"{name!r}: {rule.message}")


def ordered(value: Any, model: type[ApiModel]) -> Any:
    """`value` with its keys in the order `model` declares its fields, recursively."""
    if not isinstance(value, Mapping):
        return value
    fields = {info.alias or name: info.annotation for name, info in model.model_fields.items()}
    order = list(fields)
    keys = sorted(value, key=lambda key: order.index(key) if key in fields else len(order))
    return {key: _ordered_field(value[key], fields.get(key)) for key in keys}


def _ordered_field(value: Any, annotation: Any) -> Any:
    model = _model_in(annotation)
    if model is None:
        return value
    if isinstance(value, list):
        return [ordered(item, model) for item in value]
    return ordered(value, model)


def _model_in(annotation: Any) -> type[ApiModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, ApiModel):
        return annotation
    for argument in typing.get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (scripts in commands), no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_text)


def dump(manifest: Any) -> str:
    text: str = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
    return text


def render(outcomes: Sequence[Outcome]) -> str:
    """The converted documents under a comment listing every finding."""
    parts = ["\n".join(f"# {line}".rstrip() for line in header_lines(outcomes)) + "\n"]
    for outcome in outcomes:
        parts.append(f"---\n# {outcome.summary()}\n{dump(outcome.manifest)}")
    return "".join(parts)
