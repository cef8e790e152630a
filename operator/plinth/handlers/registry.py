"""Every kind the operator reconciles: one line per kind."""

from __future__ import annotations

from collections.abc import Mapping

from plinth.handlers import modeldeployment
from plinth.handlers.automlsweep import AutoMLSweepAdapter
from plinth.handlers.trainingjob import TrainingJobAdapter
from plinth.runtime.reconciler import AnyAdapter

ADAPTERS: Mapping[str, AnyAdapter] = {
    adapter.info.kind: adapter
    for adapter in (TrainingJobAdapter(), AutoMLSweepAdapter(), modeldeployment.ADAPTER)
}
