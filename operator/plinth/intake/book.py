"""The intake's sink: every job's reports merged so far, until a reconcile folds them into
status.

Seeded from the job's status on the first report after a start, so the lowest and highest
values survive an operator restart. Thread-safe: the HTTP server writes while reconciles read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from plinth.api.v1alpha1.metrics_report import MetricsReport
from plinth.api.v1alpha1.trainingjob import CheckpointRecord, ReportedMetrics
from plinth.status.reported import merge_report

#: (namespace, name) of a job.
JobKey = tuple[str, str]


@dataclass(frozen=True)
class JobReports:
    """A job's merged metrics and its newest checkpoint."""

    metrics: ReportedMetrics | None = None
    checkpoint: CheckpointRecord | None = None


@dataclass
class ReportBook:
    """Merged reports by job."""

    _reports: dict[JobKey, JobReports] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self,
        key: JobKey,
        report: MetricsReport,
        seed: ReportedMetrics | None,
        received: datetime,
    ) -> None:
        """Merge one report; `seed` (what status holds) is used when nothing is held yet."""
        with self._lock:
            held = self._reports.get(key, JobReports(metrics=seed))
            metrics = merge_report(held.metrics, report, received)
            checkpoint = held.checkpoint
            if report.checkpoint:
                checkpoint = CheckpointRecord(
                    uri=report.checkpoint, step=report.step, time=received
                )
            self._reports[key] = JobReports(metrics=metrics, checkpoint=checkpoint)

    def get(self, key: JobKey) -> JobReports:
        """The job's reports (empty when it has reported nothing since the start)."""
        with self._lock:
            return self._reports.get(key, JobReports())

    def forget(self, key: JobKey) -> None:
        """Drop a deleted job's reports."""
        with self._lock:
            self._reports.pop(key, None)
