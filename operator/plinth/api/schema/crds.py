"""CustomResourceDefinitions generated from the typed API, the single source of the schemas.

Pydantic's JSON schema is close to what the API server wants but not structural; this
module makes it so: `$ref`s inlined, titles dropped, `Optional` (anyOf with null) reduced
to its type, numeric exclusive bounds turned into OpenAPI v3's boolean form, maps with
constrained keys (patternProperties) into plain maps whose keys only Python checks,
`additionalProperties: false` dropped (the server prunes and, with kubectl's strict field
validation, refuses unknown fields anyway). CEL rules, list types, int-or-string and
preserve-unknown-fields markers come from the models themselves (see `model` and `lists`).
The kinds to write are handed in by the caller (`plinth crds` passes every served kind), so
this module knows no API version.

kube-custom-resource was read and set aside: its registry orders short names through a
set (output varies between runs), it drops all defaults, has no CEL support, and its base
model fixes its own alias generator and mutability.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from plinth.api.schema.kinds import KindInfo

CATEGORIES = ("plinth",)
GENERATED_HEADER = "# Generated from operator/plinth/api by `plinth crds`; do not edit by hand.\n"

JsonSchema = dict[str, Any]


# --------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------


def generate_crds(kinds: Iterable[KindInfo]) -> list[dict[str, Any]]:
    """One apiextensions.k8s.io/v1 CRD per kind, in the order given."""
    return [custom_resource_definition(info) for info in kinds]


def write_crds(directory: Path, kinds: Iterable[KindInfo]) -> list[Path]:
    """Write each kind's CRD to `<directory>/<plural>.<group>.yaml`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for crd in generate_crds(kinds):
        path = directory / crd_filename(crd)
        path.write_text(render_crd(crd), encoding="utf-8")
        paths.append(path)
    return paths


def crd_filename(crd: dict[str, Any]) -> str:
    """The file a CRD is written to: its metadata.name plus .yaml."""
    return f"{crd['metadata']['name']}.yaml"


def render_crd(crd: dict[str, Any]) -> str:
    """Deterministic YAML text of a CRD, with the generated-file header."""
    body = yaml.dump(crd, Dumper=_NoAliasDumper, sort_keys=True, allow_unicode=True, width=100)
    return GENERATED_HEADER + body


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated sub-objects out in full instead of as YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# --------------------------------------------------------------------------------------
# One CRD
# --------------------------------------------------------------------------------------


def custom_resource_definition(info: KindInfo) -> dict[str, Any]:
    """The CRD of one kind: names, its version's schema, status subresource, columns."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{info.group}",
            "labels": {"app.kubernetes.io/part-of": "plinth"},
        },
        "spec": {
            "group": info.group,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": info.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": object_schema(info)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_crd() for c in info.printer_columns],
                }
            ],
        },
    }


def object_schema(info: KindInfo) -> JsonSchema:
    """The openAPIV3Schema of a whole object of `info`'s kind."""
    spec = structural_schema(info.spec_model, keep_defaults=True, keep_enums=True)
    _append_rules(spec, [rule.to_schema() for rule in info.spec_transition_rules])
    # The operator writes status; enums there would turn an operator bug into a refused
    # status patch (no status at all), so status enums are documented, not enforced.
    status = structural_schema(info.status_model, keep_defaults=False, keep_enums=False)
    root: JsonSchema = {
        "type": "object",
        "description": info.description,
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": f"Versioned schema of this object: {info.api_version}.",
            },
            "kind": {"type": "string", "description": f"Always {info.kind}."},
            "metadata": {
                "type": "object",
                # Declared so that the name rule below can point at it (fieldPath); the
                # API server allows nothing else here, not even a description.
                "properties": {"name": {"type": "string", "description": "Object name."}},
            },
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
    }
    _append_rules(root, [rule.to_schema() for rule in info.object_rules])
    return root


def _append_rules(schema: JsonSchema, rules: list[dict[str, str]]) -> None:
    if rules:
        schema["x-kubernetes-validations"] = [*schema.get("x-kubernetes-validations", []), *rules]


# --------------------------------------------------------------------------------------
# Pydantic JSON schema -> structural schema
# --------------------------------------------------------------------------------------


def structural_schema(
    model: type[BaseModel], *, keep_defaults: bool, keep_enums: bool
) -> JsonSchema:
    """A structural OpenAPI v3 schema of `model` (by alias, as users write it).

    With keep_defaults, scalar and `{}` defaults stay, so the API server applies them;
    `null` and empty-list defaults are always dropped (absence says the same). Without
    keep_enums, enumerated strings become plain strings (their description lists values).
    """
    raw = model.model_json_schema(mode="validation", by_alias=True)
    options = _Options(raw.get("$defs", {}), keep_defaults, keep_enums)
    return _convert(raw, options)


@dataclass(frozen=True)
class _Options:
    definitions: dict[str, JsonSchema]
    keep_defaults: bool
    keep_enums: bool


def _convert(node: JsonSchema, options: _Options) -> JsonSchema:
    node = _flatten(node, options.definitions)
    result: JsonSchema = {}
    for key, value in node.items():
        convert_keyword = _KEYWORDS.get(key, _keep)
        result.update(convert_keyword(key, value, options))
    return result


def _keep(key: str, value: Any, options: _Options) -> JsonSchema:
    return {key: value}


def _drop(key: str, value: Any, options: _Options) -> JsonSchema:
    return {}


def _properties(key: str, value: Any, options: _Options) -> JsonSchema:
    return {key: {name: _convert(sub, options) for name, sub in value.items()}}


def _subschema(key: str, value: Any, options: _Options) -> JsonSchema:
    # additionalProperties may be a boolean: false (extra="forbid"), which structural
    # schemas do not allow next to properties, or true (preserve-unknown-fields is set).
    return {key: _convert(value, options)} if isinstance(value, dict) else {}


def _pattern_properties(key: str, value: Any, options: _Options) -> JsonSchema:
    # A map with constrained keys; structural schemas cannot say so, Python checks them.
    (value_schema,) = value.values()
    return {"additionalProperties": _convert(value_schema, options)}


def _default(key: str, value: Any, options: _Options) -> JsonSchema:
    keep = options.keep_defaults and value is not None and value != []
    return {key: value} if keep else {}


def _enum(key: str, value: Any, options: _Options) -> JsonSchema:
    return {key: value} if options.keep_enums else {}


def _exclusive_bound(key: str, value: Any, options: _Options) -> JsonSchema:
    # JSON Schema 2020-12 gives the bound itself; OpenAPI v3.0 a flag next to min/max.
    bound = "minimum" if key == "exclusiveMinimum" else "maximum"
    return {bound: value, key: True}


def _description(key: str, value: Any, options: _Options) -> JsonSchema:
    return {key: " ".join(value.split())}


_KEYWORDS: dict[str, Callable[[str, Any, _Options], JsonSchema]] = {
    "title": _drop,
    "propertyNames": _drop,
    "$defs": _drop,
    "properties": _properties,
    "items": _subschema,
    "additionalProperties": _subschema,
    "patternProperties": _pattern_properties,
    "default": _default,
    "enum": _enum,
    "exclusiveMinimum": _exclusive_bound,
    "exclusiveMaximum": _exclusive_bound,
    "description": _description,
}


def _flatten(node: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    """Inline `$ref`s and reduce anyOf-with-null, until neither is left at the top."""
    while True:
        if "$ref" in node:
            node = _inline_reference(node, definitions)
        elif _is_optional(node):
            node = _reduce_optional(node)
        else:
            return node


def _inline_reference(node: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    target = definitions[node["$ref"].removeprefix("#/$defs/")]
    return {**target, **siblings}


def _is_optional(node: JsonSchema) -> bool:
    branches = node.get("anyOf", [])
    return len(branches) == 2 and {"type": "null"} in branches


def _reduce_optional(node: JsonSchema) -> JsonSchema:
    siblings = {key: value for key, value in node.items() if key != "anyOf"}
    (present,) = [branch for branch in node["anyOf"] if branch != {"type": "null"}]
    return {**present, **siblings}


def walk(schema: JsonSchema, path: str = "") -> Iterator[tuple[str, JsonSchema]]:
    """Every node of a schema with its path (properties by name, items as [])."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")
