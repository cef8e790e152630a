"""ResourceQuotas and pod resources as numbers, for gang admission.

Kubernetes quantities ("16Gi", "3500m", "8") are parsed here, at the I/O edge, with the
Kubernetes client's own parser, so the pure admission code (`status.gang_admission`) only
compares numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils import quantity

from plinth.api.v1alpha1 import Resources
from plinth.status.capacity import QuotaRoom


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes quantity as a number (cores, bytes, counts). Raises ValueError."""
    parsed: Decimal = quantity.parse_quantity(value)  # type: ignore[no-untyped-call]
    return parsed


def quota_room(quota: Mapping[str, Any]) -> QuotaRoom:
    """A ResourceQuota as the API server writes it, its status parsed."""
    status = quota.get("status") or {}
    return QuotaRoom(
        name=str(quota["metadata"]["name"]),
        hard={key: parse_quantity(v) for key, v in (status.get("hard") or {}).items()},
        used={key: parse_quantity(v) for key, v in (status.get("used") or {}).items()},
    )


def pod_quota_demand(resources: Resources) -> dict[str, Decimal]:
    """What one pod with `resources` counts against a ResourceQuota, by the quota's keys:
    `cpu` and `memory` mean their requests, extended resources are quoted as
    requests.<name>, and every pod counts once in `pods` and `count/pods`."""
    demand: dict[str, Decimal] = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for name, value in resources.container_requests().items():
        amount = parse_quantity(value)
        demand[f"requests.{name}"] = amount
        if "/" not in name:
            demand[name] = amount
    for name, value in resources.container_limits().items():
        demand[f"limits.{name}"] = parse_quantity(value)
    return demand
