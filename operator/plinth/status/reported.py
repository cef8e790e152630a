"""Metrics and checkpoints reported by training code, folded into a TrainingJob's status.

Pure: the handler keeps the latest report per job in memory and calls `with_report` after
planning. Lowest and highest values merge with what status already holds, so an operator
restart loses nothing that was written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime

from plinth.api.v1alpha1 import TrainingJobStatus
from plinth.api.v1alpha1.metrics_report import MAX_METRICS, MetricsReport
from plinth.api.v1alpha1.trainingjob import CheckpointRecord, ReportedMetrics


def _merged(
    previous: Mapping[str, float],
    values: Mapping[str, float],
    pick: Callable[[float, float], float],
) -> dict[str, float]:
    merged = dict(previous)
    for name, value in values.items():
        if not math.isfinite(value):
            continue
        merged[name] = pick(merged[name], value) if name in merged else value
    return dict(sorted(merged.items())[:MAX_METRICS])


def _lower(a: float, b: float) -> float:
    return min(a, b)


def _higher(a: float, b: float) -> float:
    return max(a, b)


def merge_report(
    previous: ReportedMetrics | None, report: MetricsReport, received: datetime
) -> ReportedMetrics:
    """The job's reported metrics after one more report."""
    base = previous or ReportedMetrics()
    finite = {name: value for name, value in report.metrics.items() if math.isfinite(value)}
    return ReportedMetrics(
        step=report.step,
        time=received,
        latest=dict(sorted({**base.latest, **finite}.items())[:MAX_METRICS]),
        min=_merged(base.min, finite, _lower),
        max=_merged(base.max, finite, _higher),
    )


def with_report(
    status: TrainingJobStatus, metrics: ReportedMetrics | None, checkpoint: CheckpointRecord | None
) -> TrainingJobStatus:
    """`status` carrying the newest reported metrics and checkpoint, where there are any."""
    changes: dict[str, object] = {}
    if metrics is not None:
        changes["metrics"] = metrics
    if checkpoint is not None:
        changes["last_checkpoint"] = checkpoint
    return status.model_copy(update=changes) if changes else status
