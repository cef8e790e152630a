"""Gang safety as a user sees it, on both placement paths: Kubernetes' own gang scheduling
(the session cluster serves the PodGroup API) and Plinth's own admission (a cluster of the
same shape without it). A gang never holds GPUs it cannot use, gangs that together exceed
the cluster all finish, and a gang that is not placed says the real cause."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

import plinth_devcluster as devcluster
from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import (
    condition,
    install_crds,
    kubectl,
    kubectl_json,
    start_operator,
)
from tests.support.cluster import (
    RUN_FOREVER,
    active_pods,
    children,
    create_job,
    fresh_namespace,
    phase,
    trainingjob,
)


@dataclass(frozen=True)
class GangPath:
    """A cluster, and the operator reconciling it, on one gang placement path."""

    name: str
    cluster: ClusterInfo


@contextmanager
def gang_world(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, native_gang: bool
) -> Iterator[GangPath]:
    """A 4 x 8-GPU cluster of this module's own (no other module's GPUs held on it), with or
    without the PodGroup API, and an operator on it."""
    state = tmp_path_factory.mktemp(f"{name}-cluster")
    cluster = f"plinth-gangs-{name}"
    info = devcluster.up(cluster, state_dir=state, nodes=4, native_gang=native_gang)
    try:
        install_crds(info)
        process = start_operator(info.kubeconfig, state / "operator.log")
        try:
            yield GangPath(name, info)
        finally:
            process.stop()
    finally:
        devcluster.down(cluster, state_dir=state)


@pytest.fixture(scope="module")
def native_gangs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GangPath]:
    with gang_world(tmp_path_factory, "native", native_gang=True) as world:
        yield world


@pytest.fixture(scope="module")
def plinth_admission(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GangPath]:
    with gang_world(tmp_path_factory, "plinth", native_gang=False) as world:
        yield world


@pytest.fixture(params=["native", "plinth"])
def path(request: pytest.FixtureRequest) -> GangPath:
    fixture = "native_gangs" if request.param == "native" else "plinth_admission"
    found: GangPath = request.getfixturevalue(fixture)
    return found


@pytest.fixture
def native(native_gangs: GangPath) -> ClusterInfo:
    return native_gangs.cluster


@pytest.fixture
def namespace(native_gangs: GangPath) -> Iterator[str]:
    """A fresh namespace on the module's cluster with the PodGroup API."""
    with fresh_namespace(native_gangs.cluster, "gangs") as name:
        yield name


@pytest.fixture
def space(path: GangPath) -> Iterator[str]:
    """A fresh namespace on the path's cluster."""
    with fresh_namespace(path.cluster, f"gangs-{path.name}") as name:
        yield name


def bound_pods(cluster: ClusterInfo, namespace: str, name: str) -> list[str]:
    return [
        pod["metadata"]["name"]
        for pod in active_pods(cluster, namespace, name)
        if pod["spec"].get("nodeName")
    ]


def test_a_gang_that_can_never_fit_binds_no_gpu_and_says_what_exists(
    path: GangPath, space: str
) -> None:
    cluster = path.cluster
    create_job(
        cluster,
        space,
        "huge",
        nodes=5,
        scheduling={"scheduleTimeoutSeconds": 10},
        podTemplate={"annotations": RUN_FOREVER},
    )

    def said_why() -> bool:
        scheduled = condition(trainingjob(cluster, space, "huge"), "Scheduled") or {}
        return scheduled.get("reason") == "InsufficientCapacity"

    wait_for(said_why, what="InsufficientCapacity", timeout=30)
    message = condition(trainingjob(cluster, space, "huge"), "Scheduled")["message"]  # type: ignore[index]
    assert "needs 5 nodes x 8 nvidia.com/gpu" in message
    assert "the cluster has room for 4 workers (4 schedulable nodes with 8" in message
    for _ in range(12):  # past the schedule timeout: nothing is ever bound or released
        assert not children(cluster, space, "pods", "huge")
        time.sleep(1)
    assert phase(cluster, space, "huge") == "Pending"


def test_gangs_that_together_exceed_the_cluster_all_finish(path: GangPath, space: str) -> None:
    cluster = path.cluster
    names = ("a", "b", "c")
    for name in names:  # 3 x 24 GPUs on a 32-GPU cluster: one at a time fits
        create_job(
            cluster,
            space,
            name,
            nodes=3,
            podTemplate={"annotations": {"devcluster.plinth.dev/run-seconds": "3"}},
        )
    wait_for(
        lambda: all(phase(cluster, space, name) == "Succeeded" for name in names),
        what="every gang finished",
        timeout=180,
    )
    for name in names:
        job = trainingjob(cluster, space, name)
        assert job["status"]["workers"]["succeeded"] == 3
        assert job["status"]["restarts"] == 0


def test_native_gangs_get_one_pod_group_per_attempt(native: ClusterInfo, namespace: str) -> None:
    cluster = native
    create_job(cluster, namespace, "pair", podTemplate={"annotations": RUN_FOREVER})
    wait_for(lambda: phase(cluster, namespace, "pair") == "Running", what="Running", timeout=60)
    group = kubectl_json(cluster, "-n", namespace, "get", "podgroups.scheduling.k8s.io", "pair-r0")
    assert group["spec"]["schedulingPolicy"] == {"gang": {"minCount": 2}}
    for pod in children(cluster, namespace, "pods", "pair"):
        assert pod["spec"]["schedulingGroup"] == {"podGroupName": "pair-r0"}


def test_a_missing_volume_is_named_not_blamed_on_gpus(native: ClusterInfo, namespace: str) -> None:
    cluster = native
    claim = {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "team-checkpoints"}}
    create_job(cluster, namespace, "novolume", podTemplate={"volumes": [claim]})

    def named() -> bool:
        scheduled = condition(trainingjob(cluster, namespace, "novolume"), "Scheduled") or {}
        return scheduled.get("reason") == "PersistentVolumeClaimNotFound"

    wait_for(named, what="the missing claim named", timeout=60)
    message = condition(trainingjob(cluster, namespace, "novolume"), "Scheduled")["message"]  # type: ignore[index]
    assert 'persistentvolumeclaim "team-checkpoints" not found' in message
    assert "nvidia.com/gpu" not in message
    assert not children(cluster, namespace, "pods", "novolume")


def test_a_quota_that_refuses_the_gang_is_named_and_holds_nothing(
    native: ClusterInfo, namespace: str
) -> None:
    cluster = native
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "gpus", "namespace": namespace},
        "spec": {"hard": {"requests.nvidia.com/gpu": "8"}},
    }
    kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(quota))
    wait_for(
        lambda: bool(
            kubectl_json(cluster, "-n", namespace, "get", "resourcequota", "gpus")
            .get("status", {})
            .get("hard")
        ),
        what="the quota counted",
        timeout=30,
    )
    create_job(
        cluster,
        namespace,
        "toobig",
        scheduling={"scheduleTimeoutSeconds": 15, "onTimeout": "fail"},
        podTemplate={"annotations": RUN_FOREVER},
    )

    def named() -> bool:
        scheduled = condition(trainingjob(cluster, namespace, "toobig"), "Scheduled") or {}
        return scheduled.get("reason") == "QuotaExceeded"

    wait_for(named, what="the quota named", timeout=30)
    message = condition(trainingjob(cluster, namespace, "toobig"), "Scheduled")["message"]  # type: ignore[index]
    assert message.startswith("ResourceQuota gpus allows requests.nvidia.com/gpu 8")
    wait_for(lambda: phase(cluster, namespace, "toobig") == "Failed", what="Failed", timeout=60)
    failed = condition(trainingjob(cluster, namespace, "toobig"), "Failed") or {}
    assert failed.get("reason") == "QuotaExceeded"
    assert not children(cluster, namespace, "pods", "toobig")
    used = kubectl_json(cluster, "-n", namespace, "get", "resourcequota", "gpus")["status"]
    assert used["used"]["requests.nvidia.com/gpu"] == "0"
