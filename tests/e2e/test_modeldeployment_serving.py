"""ModelDeployments served for real on the emulated cluster: the operator process, and
the local pod runner playing the kubelet of Triton pods (the nvidia-pytriton wheel's
tritonserver, with the model-loader init container, probes and a loopback pod IP each).

A model is served and answers at its pod's IP; deleting the deployment removes every
child; the python example serves as the demo shows it; a broken model shows Triton's own
message without being restarted; the builtin autoscaler adds a replica under load read
from Triton's metrics and removes it after; a canary that passes its gates is promoted,
one that fails them is rolled back with the reason.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from plinth_devcluster import ClusterInfo, podrunner
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import EXAMPLES_DIR, OperatorProcess, event_reasons, events_of, kubectl
from tests.support.serving import (
    BROKEN_MODEL,
    FAILING_MODEL,
    SCALE_MODEL,
    ModelDeploymentFactory,
    a_modeldeployment,
)
from tests.support.serving_cluster import (
    RoundRobin,
    apply_md,
    infer,
    md_condition,
    owned,
    ready_ips,
    status_of,
)
from tests.support.triton import Load

pytestmark = pytest.mark.timeout(420)


def local(namespace: str, name: str = "scale") -> ModelDeploymentFactory:
    return a_modeldeployment().named(name).in_namespace(namespace).run_locally()


def phase(cluster: ClusterInfo, namespace: str, name: str = "scale") -> str | None:
    found: str | None = status_of(cluster, namespace, name).get("phase")
    return found


def wait_phase(
    cluster: ClusterInfo, namespace: str, wanted: str, timeout: float = 120, name: str = "scale"
) -> None:
    wait_for(
        lambda: phase(cluster, namespace, name) == wanted,
        what=f"ModelDeployment {name} {wanted} (now {status_of(cluster, namespace, name)})",
        timeout=timeout,
    )


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_a_model_is_served_for_real_and_deleting_removes_every_child(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, pod_runner: podrunner.PodRunner
) -> None:
    apply_md(cluster, local(namespace))
    wait_phase(cluster, namespace, "Ready")
    status = status_of(cluster, namespace, "scale")
    assert status["readyReplicas"] == 1 and status["desiredReplicas"] == 1
    assert status["url"] == f"http://scale.{namespace}.svc:8000"
    assert status["model"]["uri"] == str(SCALE_MODEL)
    assert md_condition(cluster, namespace, "scale", "ModelReady")["reason"] == "ModelLoaded"
    (address,) = ready_ips(cluster, namespace, "scale")
    assert address.startswith("127.") and address != "127.0.0.1"
    assert infer(address) == [[2.0, 2.0, 2.0, 2.0]]
    listing = kubectl(cluster, "-n", namespace, "get", "md", "scale").stdout.splitlines()
    assert listing[0].split() == [
        "NAME",
        "PHASE",
        "MODEL",
        "VERSION",
        "READY",
        "DESIRED",
        "URL",
        "AGE",
    ]
    assert listing[1].split()[1:6] == ["Ready", "scale", "1", "1", "1"]

    kinds = ("deployments", "services", "poddisruptionbudgets", "pods")
    assert all(owned(cluster, namespace, kind, "scale") for kind in kinds)
    kubectl(cluster, "-n", namespace, "delete", "md", "scale", "--wait=true")
    wait_for(
        lambda: not any(owned(cluster, namespace, kind, "scale") for kind in kinds),
        what="every child of the deleted ModelDeployment gone",
        timeout=90,
    )


def test_the_python_example_is_served_for_real(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, pod_runner: podrunner.PodRunner
) -> None:
    kubectl(
        cluster, "-n", namespace, "apply", "-f", str(EXAMPLES_DIR / "modeldeployment-python.yaml")
    )
    wait_phase(cluster, namespace, "Ready")
    (address,) = ready_ips(cluster, namespace, "scale")
    assert infer(address) == [[2.0, 2.0, 2.0, 2.0]]
    assert md_condition(cluster, namespace, "scale", "ScalingActive")["status"] == "True"
    events = [
        e
        for e in events_of(cluster, namespace, "scale")
        if e["involvedObject"]["kind"] == "ModelDeployment"  # not its Service's, say
    ]
    assert any("ModelReady=True" in e["message"] for e in events), events
    warnings = [f"{e['reason']}: {e['message']}" for e in events if e["type"] == "Warning"]
    assert not warnings, "a deployment that started as it should warned"


def test_a_broken_model_shows_tritons_own_load_error(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, pod_runner: podrunner.PodRunner
) -> None:
    apply_md(cluster, local(namespace).from_uri(BROKEN_MODEL))
    wait_for(
        lambda: (
            md_condition(cluster, namespace, "scale", "ModelReady").get("reason")
            == "ModelLoadFailed"
        ),
        what="ModelReady=False with Triton's load error",
        timeout=120,
    )
    ready = md_condition(cluster, namespace, "scale", "ModelReady")
    assert ready["status"] == "False"
    assert "weights file is corrupt: expected 4 tensors, found 0" in ready["message"]
    assert phase(cluster, namespace) == "Degraded"
    warned = {e["reason"] for e in events_of(cluster, namespace, "scale") if e["type"] == "Warning"}
    assert "ModelLoadFailed" in warned
    (pod,) = owned(cluster, namespace, "pods", "scale")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, "not killed by probes"


def test_the_builtin_autoscaler_follows_real_triton_metrics(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, pod_runner: podrunner.PodRunner
) -> None:
    factory = (
        local(namespace)
        .with_env(SCALE_DELAY_MS="25")
        .scaled(1, 2, metric="queueTime", target=10, scaleDownDelaySeconds=15)
    )
    apply_md(cluster, factory)
    wait_phase(cluster, namespace, "Ready")
    targets = RoundRobin(cluster, namespace, "scale")
    history = []
    with Load(targets.send, clients=6, max_seconds=120):
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline:
            history.append(status_of(cluster, namespace, "scale").get("desiredReplicas"))
            if len(targets.refresh()) == 2:
                break
            time.sleep(2)
    autoscaler = status_of(cluster, namespace, "scale")["autoscaler"]
    assert len(ready_ips(cluster, namespace, "scale")) == 2, (history, autoscaler)
    assert "ms queue time per request" in autoscaler["reason"]
    (deployment,) = owned(cluster, namespace, "deployments", "scale")
    assert deployment["spec"]["replicas"] == 2
    wait_for(
        lambda: status_of(cluster, namespace, "scale").get("desiredReplicas") == 1,
        what="one replica again once the load stopped",
        timeout=90,
    )
    assert md_condition(cluster, namespace, "scale", "ScalingActive")["status"] == "True"


def test_a_canary_that_passes_is_promoted_and_one_that_fails_is_rolled_back(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,
    tmp_path: Path,
) -> None:
    base = local(namespace).with_canary(50, duration=3, minRequests=20, maxErrorRate=0.05)
    apply_md(cluster, base)
    wait_phase(cluster, namespace, "Ready")
    second = copy_model(SCALE_MODEL, tmp_path / "scale-v2")
    targets = RoundRobin(cluster, namespace, "scale")
    with Load(targets.send, clients=2, max_seconds=150):
        apply_md(cluster, base.from_uri(second, version=2))
        wait_for(
            lambda: (
                (status_of(cluster, namespace, "scale").get("canary") or {}).get("state")
                == "Promoted"
            ),
            what=f"the canary promoted ({status_of(cluster, namespace, 'scale').get('canary')})",
            timeout=150,
        )
    status = status_of(cluster, namespace, "scale")
    assert (status["model"]["uri"], status["model"]["version"]) == (str(second), 2)
    assert status["canary"]["canary"]["requests"] >= 20
    assert {"CanaryStarted", "CanaryPromoted"} <= event_reasons(cluster, namespace, "scale")
    wait_for(
        lambda: len(owned(cluster, namespace, "deployments", "scale")) == 1,
        what="the old model's Deployment retired",
        timeout=90,
    )

    failing = copy_model(FAILING_MODEL, tmp_path / "scale-v3")
    with Load(targets.send, clients=2, max_seconds=150):
        apply_md(cluster, base.from_uri(failing, version=3))
        wait_for(
            lambda: (
                (status_of(cluster, namespace, "scale").get("canary") or {}).get("state")
                == "RolledBack"
            ),
            what=f"the canary rolled back ({status_of(cluster, namespace, 'scale').get('canary')})",
            timeout=150,
        )
    status = status_of(cluster, namespace, "scale")
    assert "maxErrorRate 0.05" in status["canary"]["message"]
    assert status["model"]["version"] == 2, "the promoted model still serves"
    degraded = md_condition(cluster, namespace, "scale", "Degraded")
    assert degraded["status"] == "True" and "rolled back" in degraded["message"]
    assert "CanaryRolledBack" in event_reasons(cluster, namespace, "scale")
    wait_for(
        lambda: len(owned(cluster, namespace, "deployments", "scale")) == 1,
        what="the failed canary's Deployment removed",
        timeout=90,
    )
    for address in ready_ips(cluster, namespace, "scale"):
        assert infer(address) == [[2.0] * 4]
