"""The Helm chart: lints, renders secure defaults, installs, and its RBAC is enough — and no more.

The operator is run locally with the chart's ServiceAccount token, so a missing permission
shows up as a resource that never becomes Accepted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import (
    EXAMPLES_DIR,
    REPO_ROOT,
    OperatorProcess,
    cluster_tool,
    condition,
    kubectl,
    kubectl_json,
    start_operator,
)

CHART = REPO_ROOT / "charts" / "plinth"
RELEASE = "plinth"


def helm(cluster: ClusterInfo, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster_tool(cluster.binaries.helm, cluster, *args, timeout=180)


def rendered(cluster: ClusterInfo, *values: str) -> list[dict[str, Any]]:
    args = [arg for value in values for arg in ("--set", value)]
    output = helm(
        cluster,
        "template",
        RELEASE,
        str(CHART),
        "-n",
        "plinth-system",
        "--kube-version",
        "1.37.2",
        *args,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


def test_chart_lints(cluster: ClusterInfo) -> None:
    helm(cluster, "lint", "--strict", str(CHART))
    helm(cluster, "lint", "--strict", str(CHART), "--set", "watchNamespaces={team-a,team-b}")


def test_operator_pod_is_non_root_and_read_only(cluster: ClusterInfo) -> None:
    (deployment,) = of_kind(rendered(cluster), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {
        probe["httpGet"]["path"]
        for probe in (container["livenessProbe"], container["readinessProbe"])
    } == {"/healthz", "/readyz"}


def test_watch_namespaces_gives_roles_not_cluster_wide_writes(cluster: ClusterInfo) -> None:
    documents = rendered(cluster, "watchNamespaces={team-a,team-b}")
    assert sorted(role["metadata"]["namespace"] for role in of_kind(documents, "Role")) == [
        "team-a",
        "team-b",
    ]
    (cluster_role,) = of_kind(documents, "ClusterRole")
    verbs = {verb for rule in cluster_role["rules"] for verb in rule["verbs"]}
    assert verbs <= {"get", "list", "watch", "patch"}


def test_chart_crds_match_generated_crds() -> None:
    for generated in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        packaged = CHART / "crds" / generated.name
        assert packaged.read_text() == generated.read_text(), f"run `make crds` ({generated.name})"


@pytest.fixture(scope="module")
def release(installed_crds: ClusterInfo) -> Iterator[str]:
    namespace = "plinth-system"
    helm(
        installed_crds,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "120s",
    )
    yield namespace
    helm(installed_crds, "uninstall", RELEASE, "-n", namespace, "--wait")
    kubectl(installed_crds, "delete", "namespace", namespace, "--wait=false")


def service_account_kubeconfig(cluster: ClusterInfo, namespace: str, path: Path) -> Path:
    token = kubectl(
        cluster, "-n", namespace, "create", "token", RELEASE, "--duration=1h"
    ).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def can_i(cluster: ClusterInfo, namespace: str, *request: str) -> bool:
    subject = f"system:serviceaccount:{namespace}:{RELEASE}"
    result = kubectl(cluster, "auth", "can-i", "--as", subject, *request, check=False)
    return result.stdout.strip() == "yes"


def test_release_installs_operator_deployment(installed_crds: ClusterInfo, release: str) -> None:
    deployment = kubectl_json(installed_crds, "-n", release, "get", "deployment", RELEASE)
    assert deployment["status"].get("readyReplicas") == 1
    assert (
        kubectl(installed_crds, "-n", release, "get", "service", f"{RELEASE}-metrics").returncode
        == 0
    )


def test_rbac_is_least_privilege(installed_crds: ClusterInfo, release: str) -> None:
    assert can_i(
        installed_crds,
        release,
        "patch",
        "trainingjobs.plinth.dev",
        "--subresource=status",
        "-n",
        "default",
    )
    assert can_i(installed_crds, release, "watch", "nodes")
    assert not can_i(installed_crds, release, "delete", "nodes")
    assert not can_i(installed_crds, release, "delete", "customresourcedefinitions")
    assert not can_i(installed_crds, release, "create", "clusterrolebindings")
    assert not can_i(
        installed_crds, release, "delete", "modeldeployments.plinth.dev", "-n", "default"
    )
    # The TTL after finishing is the one reason to delete a user's resource.
    assert can_i(installed_crds, release, "delete", "trainingjobs.plinth.dev", "-n", "default")
    # Metrics tokens are derived from a mounted key: no Secret is ever read back.
    for verb in ("get", "list", "watch"):
        assert not can_i(installed_crds, release, verb, "secrets", "-n", "default")
        assert not can_i(installed_crds, release, verb, "secrets", "-n", release)
    assert can_i(installed_crds, release, "create", "secrets", "-n", "default")
    assert not can_i(
        installed_crds, release, "create", "pods", "--subresource=exec", "-n", "default"
    )


def test_operator_with_chart_identity_accepts_examples(
    installed_crds: ClusterInfo, release: str, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(installed_crds, release, tmp_path / "kubeconfig")
    operator: OperatorProcess = start_operator(
        kubeconfig, tmp_path / "operator.log", "--peering", "plinth"
    )
    try:
        kubectl(installed_crds, "-n", namespace, "apply", "-f", str(EXAMPLES_DIR))
        for plural in ("trainingjobs", "automlsweeps", "modeldeployments"):

            def all_accepted(plural: str = plural) -> bool:
                items = kubectl_json(installed_crds, "-n", namespace, "get", plural)["items"]
                return bool(items) and all(
                    (condition(item, "Accepted") or {}).get("status") == "True" for item in items
                )

            wait_for(all_accepted, what=f"{plural} Accepted under the chart's RBAC", timeout=60)
        assert "Forbidden" not in operator.log_text()
    finally:
        operator.stop()
