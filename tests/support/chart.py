"""The Helm chart as the chart tests use it: render, install, and act as its ServiceAccount."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from plinth_devcluster import ClusterInfo
from tests.plinth_testing import REPO_ROOT, cluster_tool, kubectl

CHART = REPO_ROOT / "charts" / "plinth"
RELEASE = "plinth"

#: Rules every authenticated identity gets from the cluster's default roles
#: (system:basic-user, system:public-info-viewer): not the chart's doing.
Rule = tuple[str, str, str]


def helm(cluster: ClusterInfo, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cluster_tool(cluster.binaries.helm, cluster, *args, timeout=180, check=check)


def set_args(values: tuple[str, ...]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def rendered(
    cluster: ClusterInfo, *values: str, namespace: str = "plinth-system"
) -> list[dict[str, Any]]:
    """The chart's manifests as `helm template` writes them (no --kube-version: the helm
    built for the emulated cluster knows its Kubernetes version)."""
    output = helm(
        cluster, "template", RELEASE, str(CHART), "-n", namespace, *set_args(values)
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


@contextmanager
def installed_release(
    cluster: ClusterInfo,
    namespace: str,
    *values: str,
    labels: dict[str, str] | None = None,
    release: str = RELEASE,
) -> Iterator[str]:
    """The chart installed (and waited for) as `release` in `namespace`, created with
    `labels`; uninstalled afterwards. (Two releases at once need two names: the cluster-wide
    objects are named after the release.)"""
    kubectl(cluster, "create", "namespace", namespace)
    if labels:
        kubectl(
            cluster,
            "label",
            "namespace",
            namespace,
            *(f"{key}={value}" for key, value in labels.items()),
        )
    try:
        helm(
            cluster,
            "install",
            release,
            str(CHART),
            "-n",
            namespace,
            "--wait",
            "--timeout",
            "120s",
            *set_args(values),
        )
        yield namespace
    finally:
        helm(cluster, "uninstall", release, "-n", namespace, "--wait", check=False)
        kubectl(cluster, "delete", "namespace", namespace, "--wait=false", check=False)


def service_account_kubeconfig(
    cluster: ClusterInfo, namespace: str, path: Path, account: str = RELEASE
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount `account` (a real token)."""
    token = kubectl(
        cluster, "-n", namespace, "create", "token", account, "--duration=1h"
    ).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def as_identity(
    cluster: ClusterInfo,
    kubeconfig: Path,
    *args: str,
    check: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """kubectl authenticated by `kubeconfig` (e.g. a ServiceAccount's token)."""
    return subprocess.run(
        [str(cluster.binaries.kubectl), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        input=input_text,
    )


def allowed_rules(cluster: ClusterInfo, kubeconfig: Path, namespace: str) -> set[Rule]:
    """(apiGroup, resource, verb) the identity of `kubeconfig` may use in `namespace`, as
    the API server answers a SelfSubjectRulesReview (cluster-wide grants included)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    answer = json.loads(
        as_identity(
            cluster,
            kubeconfig,
            "create",
            "--validate=false",
            "-o",
            "json",
            "-f",
            "-",
            input_text=json.dumps(review),
        ).stdout
    )["status"]
    assert not answer.get("incomplete"), answer.get("evaluationError")
    return {
        (group, resource, verb)
        for rule in answer["resourceRules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    }


def can_i(cluster: ClusterInfo, account: str, *request: str) -> bool:
    """`kubectl auth can-i` as the ServiceAccount `namespace:name` given in `account`."""
    result = kubectl(
        cluster, "auth", "can-i", "--as", f"system:serviceaccount:{account}", *request, check=False
    )
    return result.stdout.strip() == "yes"
