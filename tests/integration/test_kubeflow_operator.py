"""The Kubeflow training operator v1.8.1 as an add-on of the emulated cluster runs PyTorchJobs.

A cluster of its own started with `addons=("kubeflow",)`: a PyTorchJob of 1 master and 3
workers, its pods kept Running by kwok (annotation devcluster.plinth.dev/run-forever), gets
all four pods Running, and the operator's metrics endpoint counts its API requests (what the
side-by-side benchmark reads).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from kubernetes import client

import plinth_devcluster as devcluster
from plinth_devcluster import ClusterInfo, kubeflow
from plinth_devcluster.waiting import wait_for

pytestmark = pytest.mark.cluster

CLUSTER_NAME = "plinth-kubeflow-test"
NAMESPACE = "default"
JOB_LABEL = "training.kubeflow.org/job-name"


@pytest.fixture(scope="module")
def kubeflow_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """An emulated cluster (2 nodes x 8 GPUs) with the Kubeflow training operator running."""
    state_dir = tmp_path_factory.mktemp("kubeflow-devcluster")
    info = devcluster.up(
        CLUSTER_NAME, state_dir=state_dir, nodes=2, addons=(kubeflow.NAME,), kubeflow_threads=2
    )
    try:
        yield info
    finally:
        devcluster.down(CLUSTER_NAME, state_dir=state_dir)


def running_pods(api: client.ApiClient, job: str) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=f"{JOB_LABEL}={job}")
    return sorted(
        str(p.metadata and p.metadata.name)
        for p in pods.items
        if p.status and p.status.phase == "Running"
    )


def test_pytorchjob_pods_run(kubeflow_cluster: ClusterInfo) -> None:
    body = kubeflow.pytorchjob(
        "mnist", NAMESPACE, 4, annotations={"devcluster.plinth.dev/run-forever": "true"}
    )
    with devcluster.api_client(kubeflow_cluster.kubeconfig) as api:
        custom = client.CustomObjectsApi(api)
        custom.create_namespaced_custom_object("kubeflow.org", "v1", NAMESPACE, "pytorchjobs", body)
        wait_for(lambda: len(running_pods(api, "mnist")) == 4, what="4 pods Running", timeout=120)
        assert running_pods(api, "mnist") == [
            "mnist-master-0",
            "mnist-worker-0",
            "mnist-worker-1",
            "mnist-worker-2",
        ]
        services = client.CoreV1Api(api).list_namespaced_service(
            NAMESPACE, label_selector=f"{JOB_LABEL}=mnist"
        )
        assert len(services.items) == 4  # one per replica, as the operator makes them

    url = kubeflow.metrics_url(kubeflow_cluster.state_dir, CLUSTER_NAME)
    with urllib.request.urlopen(url, timeout=5) as answer:
        metrics = answer.read().decode()
    assert "rest_client_requests_total{" in metrics
