"""The generated CRDs: in sync with crds/, structural, self-explaining, and complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from plinth.api.schema.crds import generate_crds, render_crd, walk, write_crds
from plinth.api.v1alpha1 import KINDS, ApiModel, Rule
from tests.support.invalid_specs import api_models

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
REGENERATE_HINT = "the CRDs in crds/ are stale: run `plinth crds` and commit the result"

CRDS = generate_crds(KINDS.values())
CRD_IDS = [crd["spec"]["names"]["kind"] for crd in CRDS]


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def nodes(crd: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return list(walk(schema_of(crd)))


ALL_MODELS = api_models()


# --------------------------------------------------------------------------------------
# In sync with the files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_committed_crds_equal_the_generated_ones(crd: dict[str, Any]) -> None:
    path = CRD_DIR / f"{crd['metadata']['name']}.yaml"
    assert path.exists(), REGENERATE_HINT
    assert path.read_text(encoding="utf-8") == render_crd(crd), REGENERATE_HINT


def test_no_stray_crd_files() -> None:
    expected = {f"{crd['metadata']['name']}.yaml" for crd in CRDS}
    assert {p.name for p in CRD_DIR.glob("*.yaml")} == expected, REGENERATE_HINT


def test_write_crds_writes_one_file_per_kind(tmp_path: Path) -> None:
    paths = write_crds(tmp_path / "out", KINDS.values())
    assert [p.name for p in paths] == [
        "trainingjobs.plinth.dev.yaml",
        "automlsweeps.plinth.dev.yaml",
        "modeldeployments.plinth.dev.yaml",
    ]
    assert all(p.read_text().startswith("# Generated") for p in paths)


def test_generation_is_deterministic_across_processes() -> None:
    script = (
        "from plinth.api.schema.crds import generate_crds, render_crd; "
        "from plinth.api.v1alpha1 import KINDS; "
        "print(''.join(render_crd(c) for c in generate_crds(KINDS.values())), end='')"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {"".join(render_crd(c) for c in CRDS)}


# --------------------------------------------------------------------------------------
# Structural
# --------------------------------------------------------------------------------------

FORBIDDEN_KEYWORDS = {
    "$ref",
    "$defs",
    "title",
    "oneOf",
    "allOf",
    "not",
    "const",
    "patternProperties",
    "propertyNames",
    "nullable",
}
INT_OR_STRING_BRANCHES = [{"type": "integer"}, {"type": "string"}]


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    for path, node in nodes(crd):
        assert not FORBIDDEN_KEYWORDS & node.keys(), f"{path}: {FORBIDDEN_KEYWORDS & node.keys()}"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, f"{path}: anyOf"
            assert node["anyOf"] == INT_OR_STRING_BRANCHES, path
        typed = "type" in node
        untyped_allowed = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert typed or untyped_allowed, f"{path}: no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert not isinstance(node.get("additionalProperties"), bool), path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(bound, True) is True, f"{path}: {bound} must be the OpenAPI v3 flag"


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_metadata_schema_only_constrains_the_name(crd: dict[str, Any]) -> None:
    metadata = schema_of(crd)["properties"]["metadata"]
    assert set(metadata) <= {"type", "properties"}
    assert set(metadata.get("properties", {})) <= {"name", "generateName"}


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_preserve_unknown_fields_only_where_free_form(crd: dict[str, Any]) -> None:
    free_form = {
        path for path, node in nodes(crd) if node.get("x-kubernetes-preserve-unknown-fields")
    }
    allowed_suffixes = (".podTemplate.volumes[]", ".parameters{}")
    assert all(path.endswith(allowed_suffixes) for path in free_form), free_form


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_every_property_has_a_description(crd: dict[str, Any]) -> None:
    for path, node in nodes(crd):
        for name, prop in node.get("properties", {}).items():
            if f"{path}.{name}" == ".metadata":
                continue  # the API server refuses anything but name/generateName there
            assert prop.get("description"), f"{path}.{name} has no description"


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_every_model_field_has_its_own_description(model: type[BaseModel]) -> None:
    missing = [name for name, field in model.model_fields.items() if not field.description]
    assert not missing, f"{model.__name__}: {missing}"


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_spec_lists_and_maps_are_bounded(crd: dict[str, Any]) -> None:
    # Unbounded lists and maps make the API server's CEL cost estimates explode.
    spec = schema_of(crd)["properties"]["spec"]
    for path, node in walk(spec, "spec"):
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: array without maxItems"
        if isinstance(node.get("additionalProperties"), dict):
            assert "maxProperties" in node, f"{path}: map without maxProperties"


# --------------------------------------------------------------------------------------
# CEL rules
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_every_cel_rule_names_its_field(crd: dict[str, Any]) -> None:
    for path, node in nodes(crd):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["rule"] and rule["message"], path
            properties = node.get("properties", {})
            named = rule.get("fieldPath") or any(p in rule["message"] for p in properties)
            assert named, f"{path}: {rule['message']!r} names no field"


def test_every_rule_that_is_not_a_transition_has_a_python_twin() -> None:
    for model in ALL_MODELS:
        if not issubclass(model, ApiModel):
            continue
        for rule in model.cross_field_rules():
            assert rule.holds is not None, f"{model.__name__}: {rule.message}"
            assert "oldSelf" not in (rule.cel or ""), f"{model.__name__}: {rule.message}"


def transition_rules(info_kind: str) -> tuple[Rule[Any], ...]:
    return KINDS[info_kind].spec_transition_rules


def test_a_sweep_can_only_change_its_budget() -> None:
    immutable = {rule.field_path.lstrip(".") for rule in transition_rules("AutoMLSweep")}
    spec_fields = set(schema_of(CRDS[1])["properties"]["spec"]["properties"])
    assert spec_fields - immutable == {"budget"}


# --------------------------------------------------------------------------------------
# What kubectl shows
# --------------------------------------------------------------------------------------

EXPECTED_COLUMNS = {
    "TrainingJob": ["Phase", "Nodes", "GPUs", "Restarts", "Age"],
    "AutoMLSweep": ["Phase", "Trials", "Best", "Age"],
    "ModelDeployment": ["Phase", "Model", "Version", "Ready", "Desired", "URL", "Age"],
}


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_kubectl_get_shows_a_short_summary(crd: dict[str, Any]) -> None:
    # The rest (-o wide) has priority 1; the integration tier checks what kubectl prints.
    version = crd["spec"]["versions"][0]
    default_columns = [
        c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")
    ]
    assert default_columns == EXPECTED_COLUMNS[crd["spec"]["names"]["kind"]]


@pytest.mark.parametrize("crd", CRDS, ids=CRD_IDS)
def test_printer_columns_point_at_real_fields(crd: dict[str, Any]) -> None:
    schema = schema_of(crd)
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            continue
        node = schema
        for part in column["jsonPath"].lstrip(".").split("."):
            node = node["properties"][part]
        assert node["type"] == column["type"], column


def test_spec_defaults_are_in_the_schema() -> None:
    spec = schema_of(CRDS[0])["properties"]["spec"]["properties"]
    assert spec["restartPolicy"]["default"] == {"backoffLimit": 3, "nodeLostTimeoutSeconds": 60}
    assert spec["scheduling"]["properties"]["scheduleTimeoutSeconds"]["default"] == 300
    assert spec["suspend"]["default"] is False


def test_status_schemas_carry_no_defaults() -> None:
    for crd in CRDS:
        status = schema_of(crd)["properties"]["status"]
        assert all("default" not in node for _, node in walk(status)), crd["metadata"]["name"]
