"""ModelDeployments on kwok's fake GPU nodes (no real server): children appear with the
right GPUs, placement, ports and probes; the HPA and KEDA's ScaledObject Plinth makes are
accepted by the API server (with KEDA's own CRD, from its Go module) and what they report
reaches status; a backend that cannot read its metric says so; changing backend removes
the old autoscaler's object; a TrainingJob's export is served once the job succeeded."""

from __future__ import annotations

from typing import Any

import pytest

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, kubectl
from tests.support.cluster import create_job
from tests.support.keda import scaled_object_crd
from tests.support.serving import a_modeldeployment
from tests.support.serving_cluster import apply_md, md_condition, owned, status_of

H100 = "NVIDIA-H100-80GB-HBM3"


def onnx(namespace: str, name: str = "resnet") -> Any:
    return (
        a_modeldeployment()
        .named(name)
        .in_namespace(namespace)
        .with_model(
            uri="https://models.example/resnet.onnx", format="onnx", inputs=None, outputs=None
        )
    )


@pytest.fixture(scope="module")
def keda_crd(cluster: ClusterInfo) -> None:
    crd = scaled_object_crd()
    kubectl(cluster, "apply", "--server-side", "-f", str(crd))
    kubectl(cluster, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd))


def test_children_get_gpus_placement_ports_and_probes(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    apply_md(cluster, onnx(namespace).with_resources(gpus=2, gpuType=H100, memory="16Gi"))
    wait_for(
        lambda: status_of(cluster, namespace, "resnet").get("phase") == "Ready",
        what="Ready",
        timeout=60,
    )
    (pod,) = owned(cluster, namespace, "pods", "resnet")
    (triton,) = pod["spec"]["containers"]
    assert triton["resources"]["limits"] == {"memory": "16Gi", "nvidia.com/gpu": "2"}
    node = kubectl(
        cluster, "get", "node", pod["spec"]["nodeName"], "-o", "jsonpath={.metadata.labels}"
    ).stdout
    assert H100 in node
    assert [p["containerPort"] for p in triton["ports"]] == [8000, 8001, 8002]
    assert (
        triton["startupProbe"]["failureThreshold"] * triton["startupProbe"]["periodSeconds"] == 600
    )
    assert pod["spec"]["initContainers"][0]["name"] == "model-loader"
    (service,) = owned(cluster, namespace, "services", "resnet")
    assert [p["name"] for p in service["spec"]["ports"]] == ["http", "grpc", "metrics"]
    (budget,) = owned(cluster, namespace, "poddisruptionbudgets", "resnet")
    assert budget["spec"]["maxUnavailable"] == 1
    assert md_condition(cluster, namespace, "resnet", "ScalingActive")["reason"] == "FixedReplicas"


def test_builtin_on_unreachable_replicas_says_it_cannot_read_metrics(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    apply_md(cluster, onnx(namespace).scaled(1, 3, target=20))
    wait_for(
        lambda: (
            "refused"
            in md_condition(cluster, namespace, "resnet", "ScalingActive").get("message", "")
        ),
        what="ScalingActive=False saying why the metrics cannot be read",
        timeout=60,
    )
    active = md_condition(cluster, namespace, "resnet", "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "MetricsUnavailable")
    assert "cannot read Triton's metrics" in active["message"]


def test_hpa_and_scaled_object_are_accepted_and_report_what_they_see(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, keda_crd: None
) -> None:
    apply_md(cluster, onnx(namespace).scaled(1, 4, target=20, backend="hpa"))
    wait_for(lambda: bool(owned(cluster, namespace, "hpa", "resnet")), what="the HPA", timeout=60)
    (hpa,) = owned(cluster, namespace, "hpa", "resnet")
    (deployment,) = owned(cluster, namespace, "deployments", "resnet")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "triton_queue_time_ms"
    wait_for(
        lambda: (
            md_condition(cluster, namespace, "resnet", "ScalingActive").get("status") == "False"
        ),
        what="the HPA's own account (no custom metrics API here) in ScalingActive",
        timeout=90,
    )
    active = md_condition(cluster, namespace, "resnet", "ScalingActive")
    assert active["reason"].startswith("FailedGet"), active

    keda = onnx(namespace).scaled(
        0, 4, target=20, backend="keda", prometheusAddress="http://prometheus.monitoring.svc:9090"
    )
    apply_md(cluster, keda)
    wait_for(lambda: bool(scaled_objects(cluster, namespace)), what="the ScaledObject", timeout=60)
    wait_for(
        lambda: not owned(cluster, namespace, "hpa", "resnet"),
        what="Plinth's HPA removed",
        timeout=60,
    )
    (scaled,) = scaled_objects(cluster, namespace)
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["triggers"][0]["metadata"]["serverAddress"].startswith(
        "http://prometheus"
    )
    wait_for(
        lambda: (
            "is KEDA installed"
            in md_condition(cluster, namespace, "resnet", "ScalingActive").get("message", "")
        ),
        what="ScalingActive says KEDA's HPA has not appeared",
        timeout=60,
    )
    apply_md(cluster, onnx(namespace).scaled(1, 4, target=20))
    wait_for(
        lambda: not scaled_objects(cluster, namespace), what="the ScaledObject removed", timeout=60
    )


def scaled_objects(cluster: ClusterInfo, namespace: str) -> list[dict[str, Any]]:
    return owned(cluster, namespace, "scaledobjects.keda.sh", "resnet")


def test_a_training_jobs_export_is_served_once_the_job_succeeded(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    factory = onnx(namespace).with_model(uri=None, fromTrainingJob={"name": "train"})
    apply_md(cluster, factory)
    wait_for(
        lambda: (
            md_condition(cluster, namespace, "resnet", "ModelResolved").get("reason")
            == "SourceNotFound"
        ),
        what="ModelResolved=False SourceNotFound",
        timeout=60,
    )
    assert not owned(cluster, namespace, "deployments", "resnet")
    create_job(
        cluster,
        namespace,
        "train",
        nodes=1,
        resources={"gpus": 1},
        checkpoint={"uri": "/ckpt/train"},
    )
    wait_for(
        lambda: (
            (status_of(cluster, namespace, "resnet").get("model") or {}).get("uri")
            == "/ckpt/train/model"
        ),
        what="the TrainingJob's export served",
        timeout=120,
    )
    assert md_condition(cluster, namespace, "resnet", "ModelResolved")["message"].startswith(
        "TrainingJob train"
    )
