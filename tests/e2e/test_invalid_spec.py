"""A spec the operator cannot act on ends in InvalidSpec, naming the field, and is left alone.

The API server refuses bad specs with the generated CRD (see the integration tier); a bad
spec still reaches the operator when a cluster runs a looser schema (an old or hand-edited
CRD). This test installs such a schema for a moment to show what the operator then does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, condition, install_crds, kubectl, kubectl_json
from tests.support.cluster import apply_trainingjob
from tests.support.factories import a_trainingjob

LOOSE_SCHEMA = {
    "openAPIV3Schema": {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
}


@pytest.fixture
def loose_trainingjob_schema(operator: OperatorProcess, cluster: ClusterInfo) -> Iterator[None]:
    crd = kubectl_json(cluster, "get", "crd", "trainingjobs.plinth.dev")
    crd["spec"]["versions"][0]["schema"] = LOOSE_SCHEMA
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        crd["metadata"].pop(key, None)
    crd.pop("status", None)
    kubectl(cluster, "replace", "-f", "-", input_text=json.dumps(crd))
    try:
        yield
    finally:
        install_crds(cluster)


def trainingjob(cluster: ClusterInfo, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl_json(cluster, "-n", namespace, "get", "trainingjob", "bad")
    return found


def test_an_invalid_spec_is_reported_once_and_never_retried_in_a_loop(
    loose_trainingjob_schema: None, operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    apply_trainingjob(cluster, a_trainingjob().named("bad").in_namespace(namespace).with_gpus(-1))

    def rejected() -> bool:
        accepted = condition(trainingjob(cluster, namespace), "Accepted") or {}
        return accepted.get("reason") == "InvalidSpec"

    wait_for(rejected, what="Accepted=False, InvalidSpec", timeout=30)
    job = trainingjob(cluster, namespace)
    accepted = condition(job, "Accepted")
    assert accepted is not None
    assert accepted["status"] == "False"
    assert "spec.resources.gpus" in accepted["message"]
    assert job["status"]["phase"] == "Failed"
    assert not kubectl_json(cluster, "-n", namespace, "get", "jobs")["items"]
    version = job["metadata"]["resourceVersion"]
    time.sleep(3)
    assert trainingjob(cluster, namespace)["metadata"]["resourceVersion"] == version
    assert operator.process.poll() is None
