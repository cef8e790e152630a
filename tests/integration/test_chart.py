"""The Helm chart as a cluster admin meets it: the project's helm is a real release build,
the chart lints and renders for its defaults and every documented option, refuses wrong
values naming the field, and installs into a namespace that enforces the `restricted` Pod
Security Standard, with two spread operator replicas and a disruption budget.

RBAC is tested in test_chart_rbac.py, failover of the replicas in test_chart_failover.py.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator

import pytest

from plinth_devcluster import ClusterInfo
from plinth_devcluster.versions import HELM, KUBERNETES
from tests.plinth_testing import REPO_ROOT, kubectl, kubectl_json
from tests.support.chart import CHART, RELEASE, helm, installed_release, of_kind, rendered

#: Every documented option, as a user would set it (values.yaml documents each key).
OPTIONS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "watch-namespaces": ("watchNamespaces={default,kube-public}",),
    "single-replica": ("replicaCount=1",),
    "no-peering": ("replicaCount=1", "peering.enabled=false"),
    "monitoring": (
        "metrics.serviceMonitor.enabled=true",
        "metrics.tritonPodMonitor.enabled=true",
        "metrics.grafanaDashboard.enabled=true",
    ),
    "no-metrics-service": ("metrics.service.enabled=false",),
    "digest": ("image.digest=sha256:" + "a" * 64,),
    "no-pdb": ("podDisruptionBudget.enabled=false",),
    "existing-service-account": ("serviceAccount.create=false", "serviceAccount.name=ops"),
    "zone-spread": (
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "topologySpreadConstraints[0].maxSkew=1",
        "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
    ),
    "scheduling": (
        "priorityClassName=system-cluster-critical",
        "nodeSelector.kubernetes\\.io/os=linux",
        "extraArgs={--verbose}",
    ),
}


def test_helm_is_a_release_build(installed_crds: ClusterInfo) -> None:
    version = helm(installed_crds, "version", "--template", "{{ .Version }}").stdout.strip()
    assert version == HELM.version
    # Rendering without a cluster assumes the Kubernetes of helm's own client-go (1.37),
    # not v1.20: the chart's kubeVersion constraint is met without --kube-version.
    (deployment,) = of_kind(rendered(installed_crds), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    minor = KUBERNETES.version.split(".")[1]
    capabilities = helm(
        installed_crds,
        "template",
        str(REPO_ROOT / "tests" / "data" / "kube-version-chart"),
    ).stdout
    assert f"kubeVersion: v1.{minor}." in capabilities


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_chart_lints_and_renders_every_option(installed_crds: ClusterInfo, option: str) -> None:
    values = [arg for value in OPTIONS[option] for arg in ("--set", value)]
    helm(installed_crds, "lint", "--strict", str(CHART), *values)
    documents = rendered(installed_crds, *OPTIONS[option], namespace="default")
    kinds = {doc["kind"] for doc in documents}
    assert {"Deployment", "ClusterRole", "ClusterRoleBinding"} <= kinds
    # What the API server itself would accept (a dry run validates every object's schema).
    manifest = "\n---\n".join(json.dumps(doc) for doc in documents if doc["kind"] in SERVED)
    kubectl(installed_crds, "apply", "--dry-run=server", "-f", "-", input_text=manifest)


#: Kinds the emulated cluster serves (ServiceMonitor, PodMonitor need prometheus-operator).
SERVED = {
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("replicaCount=two", "/replicaCount"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("peering.lifetime=1", "/peering/lifetime"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("image.digest=latest", "/image/digest"),
        ("resourcez.cpu=1", "resourcez"),
    ],
)
def test_wrong_values_fail_naming_the_field(
    installed_crds: ClusterInfo, value: str, field: str
) -> None:
    answer = helm(installed_crds, "template", RELEASE, str(CHART), "--set", value, check=False)
    assert answer.returncode != 0
    assert field in answer.stderr, answer.stderr


def test_replicas_without_peering_are_refused(installed_crds: ClusterInfo) -> None:
    answer = helm(
        installed_crds, "template", RELEASE, str(CHART), "--set", "peering.enabled=false",
        check=False,
    )  # fmt: skip
    assert answer.returncode != 0
    assert "peering.enabled" in answer.stderr


def test_operator_pod_is_restricted_non_root_and_read_only(installed_crds: ClusterInfo) -> None:
    (deployment,) = of_kind(rendered(installed_crds), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert {
        probe["httpGet"]["path"]
        for probe in (container["livenessProbe"], container["readinessProbe"])
    } == {"/healthz", "/readyz"}
    assert "--peering=plinth" in container["args"]


def test_chart_crds_match_generated_crds() -> None:
    generated = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    assert generated
    for path in generated:
        packaged = CHART / "crds" / path.name
        assert packaged.read_text() == path.read_text(), f"run `make crds` ({path.name})"
    # The chart adds only Kopf's peering CRDs to the generated ones.
    extra = {p.name for p in (CHART / "crds").glob("*.yaml")} - {p.name for p in generated}
    assert extra == {"kopf-peering.yaml"}


@pytest.fixture(scope="module")
def restricted_release(installed_crds: ClusterInfo) -> Iterator[str]:
    """The chart installed into a namespace that enforces the `restricted` standard."""
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    namespace = f"plinth-system-{secrets.token_hex(3)}"
    with installed_release(installed_crds, namespace, labels=labels) as installed:
        yield installed


def test_release_runs_two_spread_replicas_under_restricted(
    installed_crds: ClusterInfo, restricted_release: str
) -> None:
    namespace = restricted_release
    deployment = kubectl_json(installed_crds, "-n", namespace, "get", "deployment", RELEASE)
    assert deployment["status"].get("readyReplicas") == 2
    pods = kubectl_json(
        installed_crds, "-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=plinth"
    )["items"]
    assert len(pods) == 2
    assert all(pod["spec"].get("nodeName") for pod in pods)
    assert len({pod["spec"]["nodeName"] for pod in pods}) == 2, "replicas share a node"
    # Admission enforced the standard: a privileged pod is refused in the same namespace.
    refused = kubectl(
        installed_crds, "-n", namespace, "run", "intruder", "--image=busybox",
        "--overrides", json.dumps({"spec": {"containers": [{
            "name": "intruder", "image": "busybox", "securityContext": {"privileged": True}}]}}),
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
    pdb = kubectl_json(installed_crds, "-n", namespace, "get", "pdb", RELEASE)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["status"]["disruptionsAllowed"] == 1
    assert kubectl(installed_crds, "get", "clusterkopfpeering", "plinth").returncode == 0
    service = kubectl_json(installed_crds, "-n", namespace, "get", "service", f"{RELEASE}-metrics")
    assert service["spec"]["ports"][0]["port"] == 8080
    # Both replicas are Ready; training reports go to the one labelled active only.
    intake = kubectl_json(installed_crds, "-n", namespace, "get", "service", f"{RELEASE}-intake")
    assert intake["spec"]["selector"]["plinth.dev/peering-role"] == "active"
    assert intake["spec"]["ports"][0]["port"] == 8080


def test_notes_tell_the_next_step(installed_crds: ClusterInfo, restricted_release: str) -> None:
    notes = helm(installed_crds, "get", "notes", RELEASE, "-n", restricted_release).stdout
    assert f"kubectl -n {restricted_release} rollout status deployment/{RELEASE}" in notes
    assert re.search(r"kubectl apply -f .*examples", notes)
