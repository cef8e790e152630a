"""ModelDeployment on the shared runtime (spec checking only, until its controller lands)."""

from __future__ import annotations

from plinth.api.v1alpha1 import MODEL_DEPLOYMENT, ModelDeploymentPhase
from plinth.handlers.accept_only import AcceptOnlyAdapter

ADAPTER = AcceptOnlyAdapter(
    info=MODEL_DEPLOYMENT,
    pending=ModelDeploymentPhase.PENDING,
    failed=ModelDeploymentPhase.FAILED,
)
