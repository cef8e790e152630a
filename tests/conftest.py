"""Shared fixtures: one emulated cluster for the whole test session, started only on demand.

`cluster` starts the emulated cluster (4 nodes x 8 GPUs) in a temporary state folder the first
time a test asks for it, and stops it at the end of the session; unit tests that do not ask
never start it. With PLINTH_TEST_KUBECONFIG set, tests use that cluster instead. Tests that
use the cluster are marked `cluster` automatically (so `-m "not cluster"` skips them).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import plinth_devcluster as devcluster
from plinth_devcluster import Binaries, ClusterInfo
from plinth_devcluster.waiting import wait_for

EXTERNAL_KUBECONFIG = "PLINTH_TEST_KUBECONFIG"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


def external_cluster(kubeconfig: Path) -> ClusterInfo:
    """A ClusterInfo for a cluster this session did not start."""
    config = yaml.safe_load(kubeconfig.read_text())
    return ClusterInfo(
        name="external",
        state_dir=kubeconfig.parent,
        kubeconfig=kubeconfig,
        api_url=str(config["clusters"][0]["cluster"]["server"]),
        binaries=Binaries.from_cache(),
    )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """The session's emulated cluster (or the one PLINTH_TEST_KUBECONFIG points at)."""
    if external := os.environ.get(EXTERNAL_KUBECONFIG):
        yield external_cluster(Path(external))
        return
    state_dir = tmp_path_factory.mktemp("devcluster")
    info = devcluster.up("plinth-test", state_dir=state_dir, nodes=4, gpus_per_node=8)
    try:
        yield info
    finally:
        devcluster.down("plinth-test", state_dir=state_dir)


@pytest.fixture(scope="session")
def kubeconfig(cluster: ClusterInfo) -> Path:
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    with devcluster.api_client(kubeconfig) as api:
        yield api


def has_default_service_account(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test (ready for pods), deleted afterwards."""
    core = client.CoreV1Api(api_client)
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: has_default_service_account(core, name),
        what=f"ServiceAccount default in {name}",
        timeout=30,
    )
    yield name
    core.delete_namespace(name)
    # Its pods go at once, not after their grace period: on a cluster shared by the session
    # a pod being deleted still holds its node's GPUs, and the next tests' gangs wait.
    core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
