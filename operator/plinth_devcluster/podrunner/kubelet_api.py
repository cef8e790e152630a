"""What a kubelet writes back for its pods (status, final deletion), and node look-ups."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from plinth_devcluster.podrunner.pod import PodFacts

log = logging.getLogger(__name__)

HTTP_NOT_FOUND, HTTP_CONFLICT = 404, 409


class KubeletApi:
    """The runner's API calls; a pod gone or replaced meanwhile is not an error."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core

    def report(self, pod: PodFacts, status: dict[str, Any]) -> None:
        """Patch the pod's status (guarded by its uid), as a kubelet does."""
        body = {"metadata": {"uid": pod.uid}, "status": status}
        try:
            self._core.patch_namespaced_pod_status(
                pod.name,
                pod.namespace,
                body,
                _content_type="application/strategic-merge-patch+json",
            )
        except ApiException as error:
            if error.status not in (HTTP_NOT_FOUND, HTTP_CONFLICT):
                log.warning("pod runner: status of %s/%s: %s", pod.namespace, pod.name, error)

    def delete_now(self, pod: PodFacts) -> None:
        """Delete the pod with grace period 0: its process is gone."""
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.uid)
        )
        try:
            self._core.delete_namespaced_pod(pod.name, pod.namespace, body=options)
        except ApiException as error:
            if error.status not in (HTTP_NOT_FOUND, HTTP_CONFLICT):
                log.warning("pod runner: deleting %s/%s: %s", pod.namespace, pod.name, error)

    def node_exists(self, name: str) -> bool:
        try:
            self._core.read_node(name, _preload_content=False)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return False
            raise
        return True
