"""Why a worker pod is not placed or not started, named by its real cause.

The scheduler explains an unschedulable pod in one message (PodScheduled=False), and the
kubelet a container that cannot start in its waiting state. Capacity is only one cause: a
missing PersistentVolumeClaim, a node selector or taint that no node matches, an image that
cannot be pulled or a missing Secret or ConfigMap key are others, and the user fixes each
differently. `placement_problem` turns what a pod reports into a condition reason; where
the message names nothing but capacity it returns None and the gang's capacity is reported.
Patterns are the kube-scheduler's and kubelet's own wording (Kubernetes 1.30 to 1.37).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Scheduler message fragments that name a cause other than capacity, and their reason.
_UNSCHEDULABLE_CAUSES = (
    (re.compile(r'persistentvolumeclaim "[^"]*" not found'), "PersistentVolumeClaimNotFound"),
    (
        re.compile(r'persistentvolumeclaim "[^"]*" is being deleted'),
        "PersistentVolumeClaimNotFound",
    ),
    (re.compile(r"unbound immediate PersistentVolumeClaims"), "PersistentVolumeClaimUnbound"),
    (re.compile(r"didn't match Pod's node affinity/selector"), "NoMatchingNodes"),
    (re.compile(r"untolerated taint"), "UntoleratedTaint"),
)
#: Container waiting reasons that will not go away by waiting (the kubelet's names).
CONTAINER_ERRORS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class PlacementProblem:
    """A cause other than capacity: the condition reason and the pod's own words."""

    reason: str
    message: str


def _counts_capacity(message: str) -> bool:
    """Whether the scheduler says some node lacked resources (then the other causes it
    lists may only be the remaining nodes' ones)."""
    return "Insufficient " in message or "minCount" in message


def unschedulable_cause(message: str) -> PlacementProblem | None:
    """The cause in a scheduler's message when it is not capacity, else None."""
    if _counts_capacity(message):
        missing_claim = _UNSCHEDULABLE_CAUSES[0][0].search(message)
        if missing_claim is None:
            return None
    for pattern, reason in _UNSCHEDULABLE_CAUSES:
        if pattern.search(message):
            return PlacementProblem(reason, message)
    return None


def container_problem(reason: str | None, message: str | None) -> PlacementProblem | None:
    """A worker container that cannot start (image, configuration), else None."""
    if reason in CONTAINER_ERRORS:
        return PlacementProblem(reason, message or reason)
    return None
