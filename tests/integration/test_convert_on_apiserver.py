"""What `plinth convert` writes is accepted by a real API server with Plinth's CRDs.

Every Plinth object converted from the corpus (tests/data/convert/) is applied with
server-side apply as a server dry run, in a namespace of the test's own: the API server
checks it against the generated schema and CEL rules, as `kubectl apply` would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from plinth.api.v1alpha1 import API_GROUP
from plinth_devcluster import ClusterInfo
from tests.plinth_testing import kubectl
from tests.support.convert import convert_corpus

CONVERSION = convert_corpus()
CONVERTED = [o for o in CONVERSION.outcomes if o.target is not None]


def test_the_corpus_converts_to_every_plinth_kind() -> None:
    assert CONVERSION.ok, CONVERSION.errors
    kinds = {str(outcome.manifest["kind"]) for outcome in CONVERTED}
    assert kinds == {"TrainingJob", "AutoMLSweep", "ModelDeployment"}
    assert all(str(o.manifest["apiVersion"]).startswith(f"{API_GROUP}/") for o in CONVERTED)


@pytest.mark.parametrize("outcome", CONVERTED, ids=lambda outcome: outcome.source)
def test_each_converted_object_is_accepted_by_the_api_server(
    installed_crds: ClusterInfo, namespace: str, outcome: Any
) -> None:
    manifest = json.loads(json.dumps(outcome.manifest))
    manifest["metadata"]["namespace"] = namespace
    result = kubectl(
        installed_crds,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        check=False,
        input_text=json.dumps(manifest),
    )
    assert result.returncode == 0, f"{outcome.summary()}: {result.stderr}"
    stored = json.loads(result.stdout)
    assert stored["metadata"]["name"] == manifest["metadata"]["name"]
    for key, value in manifest["spec"].items():  # kept as written, defaults aside
        assert key in stored["spec"], key
        if not isinstance(value, dict | list):
            assert stored["spec"][key] == value, key
