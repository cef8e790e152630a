"""Carrying out a `Plan` on the API server, the same way for every kind.

Children are server-side applied in the plan's order (complete manifests, as `plinth render`
shows them), then merge-patched, then deleted; a plan that deletes its owner (TTL after
finishing) does only that. Every step is idempotent, so a reconcile killed between two
writes and run again converges to the same objects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from plinth.api.wellknown import LABEL_TRAININGJOB, ObjectRef
from plinth.kube.client import Kube
from plinth.kube.quota import quota_room
from plinth.status.capacity import ClusterCapacity
from plinth.status.plan import Plan


def carry_out(kube: Kube, owner: ObjectRef, plan: Plan[Any]) -> None:
    """Write what `plan` asks for (its status is the status writer's business)."""
    if plan.delete_owner:
        kube.delete(owner)
        return
    for manifest in plan.children.apply:
        kube.apply(manifest)
    for patch in plan.children.patch:
        kube.merge_patch(patch)
    for ref in plan.children.delete:
        kube.delete(ref)


def read_capacity(kube: Kube, namespace: str, *, usage: bool = True) -> ClusterCapacity:
    """Every node, the ResourceQuotas and PersistentVolumeClaims of `namespace`, and with
    `usage` what holds the nodes' resources: every pod not Succeeded or Failed and every
    attempt Job of a TrainingJob."""
    selector = "status.phase!=Succeeded,status.phase!=Failed"
    claims = kube.list_objects("v1", "PersistentVolumeClaim", namespace=namespace)
    quotas = kube.list_objects("v1", "ResourceQuota", namespace=namespace)
    return ClusterCapacity(
        nodes=tuple(kube.list_objects("v1", "Node")),
        active_pods=(
            tuple(kube.list_objects("v1", "Pod", field_selector=selector)) if usage else ()
        ),
        gang_jobs=(
            tuple(kube.list_objects("batch/v1", "Job", label_selector=LABEL_TRAININGJOB))
            if usage
            else ()
        ),
        quotas=tuple(quota_room(q) for q in quotas),
        claims=frozenset(claim["metadata"]["name"] for claim in claims),
        read_at=datetime.now(UTC),
    )
