"""The generated CRDs on a real API server: installed, self-documenting, and strict.

The invalid-input corpus (tests/support/invalid_specs.py) runs here against the API server
as the unit tier runs it against parse_spec: both refuse each case naming the same field,
and a case that breaks a rule with that rule's message.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from plinth.api.v1alpha1 import API_GROUP, API_VERSION, KINDS, parse_spec
from plinth_devcluster import ClusterInfo
from tests.plinth_testing import EXAMPLES_DIR, kubectl
from tests.support.invalid_specs import (
    BASES,
    INVALID_NAMES,
    INVALID_SPECS,
    INVALID_UPDATES,
    InvalidCase,
    InvalidName,
    InvalidUpdate,
)

KIND_NAMES = list(KINDS)


def manifest(kind: str, name: str, spec: dict[str, Any], namespace: str = "default") -> str:
    return json.dumps(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def server_dry_run(cluster: ClusterInfo, document: str, *args: str) -> tuple[int, str, str]:
    result = kubectl(
        cluster, "create", "--dry-run=server", "-f", "-", *args, check=False, input_text=document
    )
    return result.returncode, result.stdout, result.stderr


def assert_refused(code: int, error: str, field: str, rule: str | None) -> None:
    assert code != 0, "the API server accepted it"
    assert field in error, error
    if rule is not None:
        assert rule in error, error


@pytest.fixture(scope="module")
def stored(installed_crds: ClusterInfo) -> Iterator[tuple[ClusterInfo, str]]:
    """One object of each kind, made from its base spec, in a namespace of its own."""
    namespace = f"crd-rules-{secrets.token_hex(3)}"
    kubectl(installed_crds, "create", "namespace", namespace)
    for kind in KIND_NAMES:
        document = manifest(kind, kind.lower(), BASES[kind](), namespace)
        kubectl(installed_crds, "create", "-f", "-", input_text=document)
    yield installed_crds, namespace
    kubectl(installed_crds, "delete", "namespace", namespace, "--wait=false")


def patch_spec(
    stored: tuple[ClusterInfo, str], kind: str, changes: dict[str, Any]
) -> tuple[int, str]:
    """A server dry run of a merge patch of the stored object's spec."""
    cluster, namespace = stored
    result = kubectl(
        cluster,
        "patch",
        kind.lower(),
        kind.lower(),
        "-n",
        namespace,
        "--type=merge",
        "--dry-run=server",
        "-p",
        json.dumps({"spec": changes}),
        check=False,
    )
    return result.returncode, result.stderr


# --------------------------------------------------------------------------------------
# What users see
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_kubectl_explain_lists_every_spec_field(installed_crds: ClusterInfo, kind: str) -> None:
    explained = kubectl(installed_crds, "explain", f"{kind.lower()}.spec").stdout
    fields = set(re.findall(r"^  (\w+)\t<", explained.partition("FIELDS:")[2], re.MULTILINE))
    model = KINDS[kind].spec_model
    assert fields == {field.alias or name for name, field in model.model_fields.items()}
    assert " ".join(str(model.__doc__).split()) in " ".join(explained.split())


def test_short_names_and_category(installed_crds: ClusterInfo) -> None:
    for short_name in ("tj", "sweep", "md"):
        assert kubectl(installed_crds, "get", short_name, "-A").returncode == 0
    assert kubectl(installed_crds, "get", "plinth", "-A").returncode == 0


@pytest.mark.parametrize(
    ("kind", "header"),
    [
        ("TrainingJob", ["NAME", "PHASE", "NODES", "GPUS", "RESTARTS", "AGE"]),
        ("AutoMLSweep", ["NAME", "PHASE", "TRIALS", "BEST", "AGE"]),
        (
            "ModelDeployment",
            ["NAME", "PHASE", "MODEL", "VERSION", "READY", "DESIRED", "URL", "AGE"],
        ),
    ],
)
def test_kubectl_get_prints_the_summary_columns(
    stored: tuple[ClusterInfo, str], kind: str, header: list[str]
) -> None:
    cluster, namespace = stored
    printed = kubectl(cluster, "get", kind.lower(), kind.lower(), "-n", namespace).stdout
    assert printed.splitlines()[0].split() == header


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_status_is_written_through_its_own_subresource(
    stored: tuple[ClusterInfo, str], kind: str
) -> None:
    cluster, namespace = stored
    patch = json.dumps({"status": {"observedGeneration": 1}})
    result = kubectl(
        cluster,
        "patch",
        kind.lower(),
        kind.lower(),
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "--dry-run=server",
        "-p",
        patch,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_the_api_server_fills_in_the_defaults_the_operator_assumes(
    installed_crds: ClusterInfo, kind: str
) -> None:
    code, stored_json, error = server_dry_run(
        installed_crds, manifest(kind, "defaults", BASES[kind]()), "-o", "json"
    )
    assert code == 0, error
    stored_spec = json.loads(stored_json)["spec"]
    assert stored_spec != BASES[kind](), "the API server filled in no defaults"
    assert parse_spec(kind, stored_spec) == parse_spec(kind, BASES[kind]())


@pytest.mark.parametrize("example", sorted(EXAMPLES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_pass_server_validation(installed_crds: ClusterInfo, example: object) -> None:
    result = kubectl(
        installed_crds, "create", "--dry-run=server", "-n", "default", "-f", str(example)
    )
    assert result.returncode == 0


# --------------------------------------------------------------------------------------
# The invalid-input corpus
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in INVALID_SPECS if c.server_refuses], ids=lambda c: c.id)
def test_invalid_spec_is_refused_naming_the_field(
    installed_crds: ClusterInfo, case: InvalidCase
) -> None:
    code, _, error = server_dry_run(installed_crds, manifest(case.kind, "bad", case.spec()))
    assert_refused(code, error, case.field, case.rule)


@pytest.mark.parametrize(
    "case", [c for c in INVALID_SPECS if not c.server_refuses], ids=lambda c: c.id
)
def test_rules_without_cel_are_left_to_the_operator(
    installed_crds: ClusterInfo, case: InvalidCase
) -> None:
    code, _, error = server_dry_run(installed_crds, manifest(case.kind, "bad", case.spec()))
    assert code == 0, f"the API server now refuses {case.id}; give its rule CEL: {error}"


@pytest.mark.parametrize("case", INVALID_NAMES, ids=lambda c: c.id)
def test_a_name_too_long_for_the_children_is_refused(
    installed_crds: ClusterInfo, case: InvalidName
) -> None:
    code, _, error = server_dry_run(
        installed_crds, manifest(case.kind, case.name, BASES[case.kind]())
    )
    assert_refused(code, error, case.field, case.rule)


@pytest.mark.parametrize("case", INVALID_UPDATES, ids=lambda c: c.id)
def test_changing_an_immutable_field_is_refused(
    stored: tuple[ClusterInfo, str], case: InvalidUpdate
) -> None:
    code, error = patch_spec(stored, case.kind, case.changes)
    assert_refused(code, error, case.field, case.rule)


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("TrainingJob", {"suspend": True, "ttlSecondsAfterFinished": 60}),
        ("TrainingJob", {"restartPolicy": {"backoffLimit": 5}, "queueName": "team-a"}),
        ("AutoMLSweep", {"budget": {"maxTrials": 8, "parallelTrials": 2}}),
        ("ModelDeployment", {"autoscaling": {"maxReplicas": 3, "target": 20}}),
        ("ModelDeployment", {"model": {"uri": "https://models.example/resnet-v2.onnx"}}),
    ],
    ids=lambda value: value if isinstance(value, str) else ",".join(value),
)
def test_fields_that_may_change_can_be_changed(
    stored: tuple[ClusterInfo, str], kind: str, changes: dict[str, Any]
) -> None:
    code, error = patch_spec(stored, kind, changes)
    assert code == 0, error
