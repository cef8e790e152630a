"""Fixtures of the integration tier: the real API server with Plinth's CRDs installed, and a
second emulated cluster that runs real Kueue (`kueue_cluster`, started only on demand)."""

from collections.abc import Iterator

import pytest
from kubernetes import client

import plinth_devcluster as devcluster
from plinth_devcluster import ClusterInfo
from tests.plinth_testing import installed_crds
from tests.support.kueue import kueue_cluster as start_kueue_cluster

__all__ = ["installed_crds"]


@pytest.fixture(scope="session")
def kueue_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """An emulated cluster of its own with Kueue running (see tests/support/kueue.py)."""
    with start_kueue_cluster(tmp_path_factory) as info:
        yield info


@pytest.fixture(scope="session")
def kueue_api(kueue_cluster: ClusterInfo) -> Iterator[client.ApiClient]:
    with devcluster.api_client(kueue_cluster.kubeconfig) as api:
        yield api
