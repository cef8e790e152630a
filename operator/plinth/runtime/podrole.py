"""This replica's peering role as a label on its own pod, `plinth.dev/peering-role`:
`active` on the replica that reconciles, `standby` on the one Kopf's peering holds paused.

Both replicas are Ready (a standby is healthy, and a rollout with maxSurge 0 or a
disruption budget needs it Ready); the chart's intake Service selects `active`, so
training pods' metrics reports reach only the replica that folds them into status.

The pod is the one the downward API names (POD_NAME, POD_NAMESPACE); without them
(`plinth run` outside a cluster) nothing is labelled. The role is read from the operator's
own state every `ROLE_POLL_SECONDS` (a memory read: Kopf's peering toggles) and the pod is
merge-patched when it differs from the last label written, which includes the first look:
a label left by an earlier run in the same pod (a container killed while active, then
restarted) is corrected at start. A failed patch is retried at the next look.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping

from plinth.api.wellknown import Manifest, ObjectRef
from plinth.kube.client import Kube

LOGGER = logging.getLogger("plinth")
#: The label the chart's intake Service selects on (value `ACTIVE`).
ROLE_LABEL = "plinth.dev/peering-role"
ACTIVE = "active"
STANDBY = "standby"
#: How often the role is looked at: the most a takeover waits for its label.
ROLE_POLL_SECONDS = 1.0


def own_pod(environ: Mapping[str, str] = os.environ) -> ObjectRef | None:
    """This replica's pod, from the downward API's POD_NAME and POD_NAMESPACE (None
    outside a cluster)."""
    name, namespace = environ.get("POD_NAME", ""), environ.get("POD_NAMESPACE", "")
    if not name or not namespace:
        return None
    return ObjectRef(api_version="v1", kind="Pod", namespace=namespace, name=name)


def role_patch(pod: ObjectRef, role: str) -> Manifest:
    """The merge patch that sets the role label of `pod` (and nothing else)."""
    return {
        "apiVersion": pod.api_version,
        "kind": pod.kind,
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": {ROLE_LABEL: role}},
    }


async def keep_role_label(
    kube: Kube,
    pod: ObjectRef,
    active: Callable[[], bool],
    interval: float = ROLE_POLL_SECONDS,
) -> None:
    """Label `pod` with the role `active()` tells, whenever it changes, until cancelled."""
    labelled: str | None = None
    while True:
        role = ACTIVE if active() else STANDBY
        if role != labelled:
            try:
                await asyncio.to_thread(kube.merge_patch, role_patch(pod, role))
            except Exception as error:
                LOGGER.warning(
                    "Could not label pod %s/%s %s=%s (retrying): %s",
                    pod.namespace, pod.name, ROLE_LABEL, role, error,
                )  # fmt: skip
            else:
                LOGGER.info("Pod %s/%s labelled %s=%s", pod.namespace, pod.name, ROLE_LABEL, role)
                labelled = role
        await asyncio.sleep(interval)
