"""The emulated cluster behaves like a Kubernetes cluster with GPU nodes, as a user sees it.

Against the real control plane (etcd, kube-apiserver, controller manager, scheduler) and kwok's
fake nodes: scheduling by `nvidia.com/gpu`, controllers (Deployment, Job, garbage collection),
node leases, a node whose kubelet goes silent, and the cluster's own lifecycle (a second
cluster side by side, `up` twice, `down` leaving no process behind).
"""

from __future__ import annotations

import argparse
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import plinth_devcluster as devcluster
from plinth_devcluster import DEFAULT_GPU_PRODUCT, GPU_RESOURCE, ClusterInfo
from plinth_devcluster.cli import register

pytestmark = pytest.mark.cluster

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, what: str, timeout: float = 60.0) -> T:
    """Poll `probe` until it returns something other than None/False; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def pod_template(gpus: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels or {}},
        "spec": {
            "containers": [
                {
                    "name": "trainer",
                    "image": "registry.example/trainer:1",
                    "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
                }
            ]
        },
    }


def gpu_pod(name: str, gpus: int) -> client.V1Pod:
    template = pod_template(gpus)
    return client.V1Pod.from_dict(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": template["spec"]}
    )


def test_pod_requesting_eight_gpus_runs_on_a_fake_gpu_node(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, gpu_pod("whole-node", gpus=8))

    pod = eventually(
        lambda: (
            (p := core.read_namespaced_pod("whole-node", namespace)).status.phase == "Running" and p
        ),
        what="the 8-GPU pod to be Running",
    )

    node = core.read_node(pod.spec.node_name)
    assert node.status.allocatable[GPU_RESOURCE] == "8"
    assert node.metadata.labels["nvidia.com/gpu.product"] == DEFAULT_GPU_PRODUCT
    assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"


def test_pod_asking_more_gpus_than_any_node_has_stays_pending(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, gpu_pod("too-big", gpus=9))

    def failed_scheduling() -> client.CoreV1Event | None:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=too-big,reason=FailedScheduling"
        ).items
        return events[0] if events else None

    event = eventually(failed_scheduling, what="a FailedScheduling event")

    assert f"Insufficient {GPU_RESOURCE}" in event.message
    pod = core.read_namespaced_pod("too-big", namespace)
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None


def test_deployment_gets_replicaset_and_running_pods_and_deleting_it_removes_them(
    api_client: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    labels = {"app": "serve"}
    deployment = client.V1Deployment.from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "serve"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": pod_template(gpus=1, labels=labels),
            },
        }
    )
    apps.create_namespaced_deployment(namespace, deployment)

    eventually(
        lambda: (
            apps.read_namespaced_deployment_status("serve", namespace).status.ready_replicas == 3
        ),
        what="3 ready replicas",
    )
    (replica_set,) = apps.list_namespaced_replica_set(namespace).items
    assert replica_set.metadata.owner_references[0].name == "serve"
    pods = core.list_namespaced_pod(namespace, label_selector="app=serve").items
    assert len(pods) == 3
    assert {p.metadata.owner_references[0].name for p in pods} == {replica_set.metadata.name}
    assert {p.status.phase for p in pods} == {"Running"}

    apps.delete_namespaced_deployment("serve", namespace)

    eventually(
        lambda: (
            not apps.list_namespaced_replica_set(namespace).items
            and not core.list_namespaced_pod(namespace).items
        ),
        what="the ReplicaSet and its pods to be garbage-collected",
    )


def test_deleting_an_owner_garbage_collects_what_it_owns(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])
        ),
    )

    core.delete_namespaced_config_map("owner", namespace)

    eventually(
        lambda: gone(lambda: core.read_namespaced_config_map("dependent", namespace)),
        what="the dependent ConfigMap to be garbage-collected",
    )


def test_a_job_runs_to_completion_on_fake_gpu_nodes(
    api_client: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(api_client)
    template = pod_template(gpus=4)
    template["spec"]["restartPolicy"] = "Never"
    job = client.V1Job.from_dict(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "train"},
            "spec": {"completions": 2, "parallelism": 2, "template": template},
        }
    )
    batch.create_namespaced_job(namespace, job)

    finished = eventually(
        lambda: (
            (j := batch.read_namespaced_job_status("train", namespace)).status.succeeded == 2 and j
        ),
        what="the Job to succeed twice",
    )

    conditions = {c.type: c.status for c in finished.status.conditions}
    assert conditions["Complete"] == "True"


def test_kwok_renews_node_leases_so_nodes_stay_ready(api_client: client.ApiClient) -> None:
    coordination = client.CoordinationV1Api(api_client)
    core = client.CoreV1Api(api_client)
    node_name = (
        core.list_node(label_selector="plinth.dev/node-pool=gpu-node").items[0].metadata.name
    )
    first = coordination.read_namespaced_lease(node_name, "kube-node-lease").spec.renew_time

    eventually(
        lambda: (
            coordination.read_namespaced_lease(node_name, "kube-node-lease").spec.renew_time > first
        ),
        what=f"kwok to renew the lease of {node_name}",
        timeout=40,
    )

    node = core.read_node(node_name)
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert not [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]


def test_a_silenced_node_goes_not_ready_and_its_deleted_pods_cannot_finish(
    api_client: client.ApiClient, namespace: str
) -> None:
    """`silence_node` plays a kubelet that stops reporting: the lease is no longer renewed,
    the controller manager marks the node NotReady after its grace period (50 s) and its pod
    not Ready, and a pod deleted there stays, terminating, its phase Running. `revive_node`
    brings the node back Ready and the deletion completes."""
    core, coordination = client.CoreV1Api(api_client), client.CoordinationV1Api(api_client)
    pool = devcluster.GpuNodePool(count=1, name_prefix=f"silent-{secrets.token_hex(3)}", taint=True)
    devcluster.add_gpu_nodes(api_client, pool, timeout=60)
    (node_name,) = pool.node_names()
    pod = client.V1Pod.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stranded"},
            "spec": {
                **pod_template(gpus=8)["spec"],
                "nodeName": node_name,
                "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists"}],
            },
        }
    )
    core.create_namespaced_pod(namespace, pod)
    eventually(
        lambda: core.read_namespaced_pod("stranded", namespace).status.phase == "Running",
        what="the pod Running",
    )

    def renewed() -> Any:
        return coordination.read_namespaced_lease(node_name, "kube-node-lease").spec.renew_time

    def node_ready() -> str:
        conditions = core.read_node(node_name).status.conditions or []
        return {c.type: c.status for c in conditions}.get("Ready", "")

    devcluster.silence_node(api_client, node_name)
    try:
        last = renewed()
        time.sleep(15)  # kwok renews every 10 s
        assert renewed() == last, "kwok still renews the lease of a silenced node"
        eventually(lambda: node_ready() != "True", what="the node NotReady", timeout=90)
        pod_ready = eventually(
            lambda: (
                {
                    c.type: c.status
                    for c in core.read_namespaced_pod("stranded", namespace).status.conditions
                }.get("Ready")
                == "False"
            ),
            what="the pod marked not Ready",
        )
        assert pod_ready
        core.delete_namespaced_pod("stranded", namespace, grace_period_seconds=1)
        time.sleep(5)
        stuck = core.read_namespaced_pod("stranded", namespace)
        assert stuck.metadata.deletion_timestamp is not None
        assert stuck.status.phase == "Running"
    finally:
        devcluster.revive_node(api_client, node_name)
    eventually(lambda: node_ready() == "True", what="the node Ready again", timeout=60)
    eventually(
        lambda: gone(lambda: core.read_namespaced_pod("stranded", namespace)),
        what="the deletion to complete",
    )
    core.delete_node(node_name)


def accepts_connections(url: str) -> bool:
    host, port = url.removeprefix("https://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def cli(*args: str) -> int:
    parser = argparse.ArgumentParser(prog="plinth cluster")
    register(parser.add_subparsers(required=True))
    namespace = parser.parse_args(args)
    code: int = namespace.func(namespace)
    return code


def test_second_cluster_side_by_side_refuses_second_up_and_down_leaves_nothing(
    cluster: ClusterInfo,
    api_client: client.ApiClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = tmp_path / "side"
    location = ("--name", "side", "--state-dir", str(state))
    try:
        assert cli("up", *location, "--nodes", "1", "--gpus-per-node", "2") == 0
        assert f"export KUBECONFIG={state / 'kubeconfig'}" in capsys.readouterr().out

        assert cli("up", *location) == 0
        assert "already running" in capsys.readouterr().err
        assert cli("status", *location) == 0

        with devcluster.api_client(state / "kubeconfig") as side_api:
            (node,) = client.CoreV1Api(side_api).list_node().items
        assert node.status.allocatable[GPU_RESOURCE] == "2"
        assert len(client.CoreV1Api(api_client).list_node().items) >= 4
    finally:
        started = devcluster.status("side", state_dir=state)
        assert cli("down", *location) == 0

    assert started.cluster is not None
    assert started.cluster.api_url != cluster.api_url
    assert not [p for p in devcluster.status("side", state_dir=state).processes if p.alive]
    assert not [p.pid for p in started.processes if Path(f"/proc/{p.pid}").exists()]
    assert not accepts_connections(started.cluster.api_url)
    assert cli("status", *location) == 1
    assert client.CoreV1Api(api_client).list_node(limit=1).items, "the session cluster still runs"
