"""Crash safety of ModelDeployments: the operator SIGKILLed at random moments while 8
deployments replace their model (kwok's replicas). Restarted each time, it converges: every
deployment serves the new model from exactly one Deployment, none is duplicated or left
without its owner. (The reconcile tier kills it before every single write of a canary
step and checks the rollout resumes at its step.)"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, kubectl_json, start_operator
from tests.support.serving import a_modeldeployment
from tests.support.serving_cluster import apply_md

DEPLOYMENTS = 8
SEED = 20261129
MIN_KILLS = 5


def onnx(namespace: str, index: int, version: int) -> Any:
    return (
        a_modeldeployment()
        .named(f"md-{index}")
        .in_namespace(namespace)
        .with_model(
            uri=f"https://models.example/v{version}/model.onnx",
            version=version,
            format="onnx",
            inputs=None,
            outputs=None,
        )
    )


def items(cluster: ClusterInfo, namespace: str, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = kubectl_json(cluster, "-n", namespace, "get", kind)["items"]
    return found


def all_serving(cluster: ClusterInfo, namespace: str, version: int) -> bool:
    deployments = items(cluster, namespace, "modeldeployments")
    return len(deployments) == DEPLOYMENTS and all(
        (d.get("status") or {}).get("phase") == "Ready"
        and ((d.get("status") or {}).get("model") or {}).get("version") == version
        for d in deployments
    )


def one_deployment_each(cluster: ClusterInfo, namespace: str) -> bool:
    live = [
        d
        for d in items(cluster, namespace, "deployments")
        if not d["metadata"].get("deletionTimestamp")
    ]
    return len(live) == DEPLOYMENTS


def test_random_operator_kills_while_models_change_converge(
    installed_crds: ClusterInfo, namespace: str, tmp_path: Path
) -> None:
    cluster, chance = installed_crds, random.Random(SEED)
    log = tmp_path / "operator.log"
    operator: OperatorProcess = start_operator(cluster.kubeconfig, log)
    try:
        for index in range(DEPLOYMENTS):
            apply_md(cluster, onnx(namespace, index, 1))
        wait_for(lambda: all_serving(cluster, namespace, 1), what="version 1 served", timeout=120)
        for index in range(DEPLOYMENTS):
            apply_md(cluster, onnx(namespace, index, 2))
        kills, deadline = 0, time.monotonic() + 180
        while (
            kills < MIN_KILLS or not all_serving(cluster, namespace, 2)
        ) and time.monotonic() < deadline:
            time.sleep(chance.uniform(0.3, 2.0))
            operator.stop(signal.SIGKILL)
            kills += 1
            operator = start_operator(cluster.kubeconfig, log)
        wait_for(lambda: all_serving(cluster, namespace, 2), what="version 2 served", timeout=120)
        wait_for(
            lambda: one_deployment_each(cluster, namespace),
            what="old Deployments retired",
            timeout=120,
        )
    finally:
        operator.stop()
    owners = {d["metadata"]["uid"] for d in items(cluster, namespace, "modeldeployments")}
    names = []
    for deployment in items(cluster, namespace, "deployments"):
        if deployment["metadata"].get("deletionTimestamp"):
            continue
        assert deployment["metadata"]["ownerReferences"][0]["uid"] in owners
        assert deployment["metadata"]["annotations"]["plinth.dev/model-uri"].endswith(
            "/v2/model.onnx"
        )
        names.append(deployment["metadata"]["name"])
    assert len(names) == len(set(names)) == DEPLOYMENTS
