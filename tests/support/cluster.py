"""TrainingJobs on the test cluster through kubectl, as a user would create and read them
(the e2e tier's helpers; the objects come from tests.support.factories)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plinth.api.wellknown import LABEL_TRAININGJOB
from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import kubectl, kubectl_json
from tests.support.factories import TrainingJobFactory, a_trainingjob

#: Pod annotation: kwok keeps the worker Running until it is deleted.
RUN_FOREVER = {"devcluster.plinth.dev/run-forever": "true"}


def apply_trainingjob(cluster: ClusterInfo, job: TrainingJobFactory) -> None:
    """`kubectl apply` the TrainingJob `job` describes."""
    kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(job.body()))


def create_job(cluster: ClusterInfo, namespace: str, name: str, **fields: Any) -> None:
    """Apply the default TrainingJob (2 nodes x 8 GPUs) named `name`, with top-level spec
    `fields` (camelCase, as in YAML) replaced."""
    job = a_trainingjob().named(name).in_namespace(namespace).with_fields(**fields)
    apply_trainingjob(cluster, job)


def trainingjob(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kubectl_json(cluster, "-n", namespace, "get", "trainingjob", name)
    return found


def phase(cluster: ClusterInfo, namespace: str, name: str) -> str | None:
    found: str | None = trainingjob(cluster, namespace, name).get("status", {}).get("phase")
    return found


def children(cluster: ClusterInfo, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    """The objects of `kind` (kubectl's name: jobs, pods, ...) the TrainingJob owns."""
    selector = f"{LABEL_TRAININGJOB}={name}"
    items: list[dict[str, Any]] = kubectl_json(
        cluster, "-n", namespace, "get", kind, "-l", selector
    )["items"]
    return items


def active_pods(cluster: ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    """The TrainingJob's worker pods that may hold a node's resources."""
    return [
        pod
        for pod in children(cluster, namespace, "pods", name)
        if pod["status"].get("phase") in ("Pending", "Running")
    ]


@contextmanager
def fresh_namespace(cluster: ClusterInfo, prefix: str) -> Iterator[str]:
    """A new namespace `<prefix>-<random>` on `cluster`, ready for pods (its default
    ServiceAccount exists), deleted (without waiting) afterwards, its pods at once."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    kubectl(cluster, "create", "namespace", name)
    wait_for(
        lambda: kubectl(cluster, "-n", name, "get", "sa", "default", check=False).returncode == 0,
        what="the namespace's default ServiceAccount",
        timeout=30,
    )
    try:
        yield name
    finally:
        kubectl(cluster, "delete", "namespace", name, "--wait=false")
        # its pods at once: a pod being deleted still holds its node's GPUs
        kubectl(cluster, "-n", name, "delete", "pods", "--all", "--grace-period=0", "--force")
