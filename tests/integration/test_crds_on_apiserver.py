"""The generated CRDs on a real API server: installed, self-documenting, and strict."""

from __future__ import annotations

import json

import pytest

from plinth.api.v1alpha1 import API_GROUP, API_VERSION
from plinth.devcluster import ClusterInfo
from tests.plinth_testing import EXAMPLES_DIR, kubectl
from tests.unit.test_api_parse import INVALID_SPECS, InvalidCase


def manifest(kind: str, name: str, spec: dict[str, object]) -> str:
    return json.dumps(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }
    )


def server_dry_run(cluster: ClusterInfo, document: str) -> tuple[int, str]:
    result = kubectl(
        cluster, "create", "--dry-run=server", "-f", "-", check=False, input_text=document
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize("kind", ["trainingjob", "automlsweep", "modeldeployment"])
def test_kubectl_explain_teaches_the_spec(installed_crds: ClusterInfo, kind: str) -> None:
    explained = kubectl(installed_crds, "explain", f"{kind}.spec").stdout
    assert "DESCRIPTION" in explained
    assert "FIELDS" in explained
    field_lines = [line for line in explained.splitlines() if line.startswith("  ") and "<" in line]
    assert len(field_lines) >= 3, explained


def test_short_names_and_category(installed_crds: ClusterInfo) -> None:
    for short_name in ("tj", "sweep", "md"):
        assert kubectl(installed_crds, "get", short_name, "-A").returncode == 0
    assert kubectl(installed_crds, "get", "plinth", "-A").returncode == 0


@pytest.mark.parametrize("example", sorted(EXAMPLES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_pass_server_validation(installed_crds: ClusterInfo, example: object) -> None:
    result = kubectl(
        installed_crds, "create", "--dry-run=server", "-n", "default", "-f", str(example)
    )
    assert result.returncode == 0


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.id)
def test_invalid_spec_is_refused_naming_the_field(
    installed_crds: ClusterInfo, case: InvalidCase
) -> None:
    code, error = server_dry_run(installed_crds, manifest(case.kind, "bad", case.spec()))
    assert code != 0, f"{case.id} was accepted by the API server"
    assert case.field in error, error
