"""A pod as the local runner sees it: the facts read once from the API server's JSON."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ANNOTATION_PREFIX = "devcluster.plinth.dev/"
RUNNER_ANNOTATION = f"{ANNOTATION_PREFIX}runner"
LOCAL_RUNNER = "local"
JOB_NAME_LABEL = "plinth.dev/job-name"
ATTEMPT_LABEL = "plinth.dev/attempt"
LOCAL_IP = "127.0.0.1"
DEFAULT_GRACE_SECONDS = 30.0
FIELD_PATH = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


class ContainerConfigError(ValueError):
    """The pod's container cannot be started as given; the message says why."""


@dataclass(frozen=True)
class AttemptKey:
    """The pods that share rendezvous ports: one attempt of one job in one namespace."""

    namespace: str
    job: str
    attempt: str


@dataclass(frozen=True)
class PodFacts:
    """What the runner needs of a pod, read once from its JSON."""

    uid: str
    namespace: str
    name: str
    node_name: str | None
    phase: str
    terminating: bool
    grace_seconds: float
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    subdomain: str | None
    hostname: str
    containers: tuple[Mapping[str, Any], ...]
    service_account: str
    owner_job: str | None
    init_containers: tuple[Mapping[str, Any], ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    restart_policy: str = "Always"
    #: The loopback address the runner gave the pod (its pod IP).
    pod_ip: str = LOCAL_IP

    @classmethod
    def parse(cls, pod: Mapping[str, Any]) -> PodFacts:
        metadata, spec = pod["metadata"], pod.get("spec", {})
        return cls(
            uid=str(metadata["uid"]),
            namespace=str(metadata["namespace"]),
            name=str(metadata["name"]),
            node_name=spec.get("nodeName") or None,
            phase=str(pod.get("status", {}).get("phase") or "Pending"),
            terminating=metadata.get("deletionTimestamp") is not None,
            grace_seconds=grace_seconds(metadata, spec),
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            subdomain=spec.get("subdomain") or None,
            hostname=str(spec.get("hostname") or metadata["name"]),
            containers=tuple(spec.get("containers") or ()),
            service_account=str(spec.get("serviceAccountName") or "default"),
            owner_job=owner_job(metadata),
            init_containers=tuple(spec.get("initContainers") or ()),
            volumes=tuple(spec.get("volumes") or ()),
            restart_policy=str(spec.get("restartPolicy") or "Always"),
        )

    @property
    def is_local(self) -> bool:
        return self.annotations.get(RUNNER_ANNOTATION) == LOCAL_RUNNER

    @property
    def attempt(self) -> AttemptKey:
        job = self.labels.get(JOB_NAME_LABEL) or self.owner_job or self.name
        return AttemptKey(self.namespace, job, self.labels.get(ATTEMPT_LABEL, ""))

    @property
    def container(self) -> Mapping[str, Any]:
        if len(self.containers) != 1:
            raise ContainerConfigError(
                f"the local pod runner runs single-container pods; this one has "
                f"{len(self.containers)}"
            )
        return self.containers[0]

    def field(self, path: str) -> str:
        """The value of a `fieldRef` path, as the kubelet resolves it."""
        if match := FIELD_PATH.fullmatch(path):
            values = self.labels if match[1] == "labels" else self.annotations
            return values.get(match[2], "")
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node_name or "",
            "spec.serviceAccountName": self.service_account,
        }
        if path in simple:
            return simple[path]
        if path in ("status.podIP", "status.podIPs"):
            return self.pod_ip
        if path.startswith("status.") and path.endswith(("IP", "IPs")):
            return LOCAL_IP
        raise ContainerConfigError(f"unsupported fieldRef {path!r}")


def grace_seconds(metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> float:
    """The deletion's grace period if one was asked, else the pod's own."""
    for value in (
        metadata.get("deletionGracePeriodSeconds"),
        spec.get("terminationGracePeriodSeconds"),
    ):
        if value is not None:
            return float(value)
    return DEFAULT_GRACE_SECONDS


def owner_job(metadata: Mapping[str, Any]) -> str | None:
    for owner in metadata.get("ownerReferences") or ():
        if owner.get("kind") == "Job":
            return str(owner["name"])
    return None
