"""ModelDeployments on the test cluster through kubectl, as a user would apply and read
them, and requests to their Triton pods at their pod IPs (the tests' stand-in for the
Service: a round robin over the ready replicas, as kube-proxy would do)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import tritonclient.http as httpclient

from plinth.api.wellknown import LABEL_MODEL_REVISION, LABEL_MODELDEPLOYMENT
from plinth_devcluster import ClusterInfo
from tests.plinth_testing import condition, kubectl, kubectl_json
from tests.support.serving import ModelDeploymentFactory


def apply_md(cluster: ClusterInfo, factory: ModelDeploymentFactory) -> None:
    kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(factory.body()))


def get_md(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl_json(cluster, "-n", namespace, "get", "modeldeployment", name)
    return found


def status_of(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = get_md(cluster, namespace, name).get("status") or {}
    return found


def md_condition(cluster: ClusterInfo, namespace: str, name: str, kind: str) -> dict[str, Any]:
    return condition(get_md(cluster, namespace, name), kind) or {}


def owned(cluster: ClusterInfo, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    """Objects of `kind` (kubectl's name) the ModelDeployment `name` owns."""
    items: list[dict[str, Any]] = kubectl_json(
        cluster, "-n", namespace, "get", kind, "-l", f"{LABEL_MODELDEPLOYMENT}={name}"
    )["items"]
    return items


def ready_ips(
    cluster: ClusterInfo, namespace: str, name: str, revision: str | None = None
) -> list[str]:
    """Pod IPs of the deployment's ready replicas (of one revision, if given), as a Service
    would list them (a terminating pod is no endpoint)."""
    ips = []
    for pod in owned(cluster, namespace, "pods", name):
        labels = pod["metadata"].get("labels") or {}
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        terminating = pod["metadata"].get("deletionTimestamp")
        if (
            ready
            and not terminating
            and (revision is None or labels.get(LABEL_MODEL_REVISION) == revision)
        ):
            ips.append(str(pod["status"]["podIP"]))
    return ips


def infer(address: str, model: str = "scale") -> list[list[float]]:
    """One request to the Triton at `address` (its pod IP); raises on a failed inference."""
    client = httpclient.InferenceServerClient(f"{address}:8000", network_timeout=30)
    data = httpclient.InferInput("INPUT", [1, 4], "FP32")
    data.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    result = client.infer(model, [data]).as_numpy("OUTPUT")
    assert result is not None
    return [[float(x) for x in row] for row in result]


class RoundRobin:
    """Sends each request to the next ready replica, refreshing the list now and then."""

    def __init__(self, cluster: ClusterInfo, namespace: str, name: str) -> None:
        self._cluster, self._namespace, self._name = cluster, namespace, name
        self._ips: list[str] = []
        self._cycle: Any = iter(())
        self._count = itertools.count()

    def refresh(self) -> list[str]:
        self._ips = ready_ips(self._cluster, self._namespace, self._name)
        self._cycle = itertools.cycle(self._ips) if self._ips else iter(())
        return self._ips

    def send(self) -> None:
        if next(self._count) % 50 == 0 or not self._ips:
            self.refresh()
        address = next(self._cycle, None)
        if address is None:
            raise RuntimeError("no ready replica")
        infer(address)
