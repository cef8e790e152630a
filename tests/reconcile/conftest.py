"""Fixtures of the reconcile tier: the operator's Reconciler (no Kopf, no operator process)
against the real API server of the emulated cluster, with Plinth's CRDs installed."""

from __future__ import annotations

import pytest
from kubernetes import client

from plinth_devcluster import ClusterInfo
from tests.plinth_testing import installed_crds
from tests.support.reconcile import ReconcileRig

__all__ = ["installed_crds"]


@pytest.fixture
def rig(installed_crds: ClusterInfo, api_client: client.ApiClient, namespace: str) -> ReconcileRig:
    """A fresh namespace and the reconcile pointed at it."""
    return ReconcileRig(api=api_client, namespace=namespace)
