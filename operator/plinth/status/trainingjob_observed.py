"""What the operator observed of a TrainingJob's children, as plain values for the planner.

The kube layer parses Jobs and Pods into these; the planner in `status.trainingjob` reads
nothing else. Counters that must survive a gang restart (failures, preemptions, GPU time,
first start) travel on each attempt's Job as annotations, written once when the attempt is
created, so a reconcile interrupted anywhere recomputes the same numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class WorkerPhase(enum.StrEnum):
    """A worker pod's phase, as Kubernetes reports it."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class FailureKind(enum.StrEnum):
    """Why an attempt ended without success."""

    #: Preempted, evicted, or its node was lost: not the program's fault.
    PREEMPTED = "Preempted"
    #: The program exited with one of restartPolicy.permanentExitCodes.
    PERMANENT = "PermanentExitCode"
    #: The program failed in a way a restart may fix.
    CRASHED = "WorkerFailed"


@dataclass(frozen=True)
class ObservedWorker:
    """One worker pod of an attempt."""

    index: int
    phase: WorkerPhase
    node_name: str | None = None
    #: The scheduler's message while the pod cannot be placed (PodScheduled=False).
    unschedulable_message: str | None = None
    exit_code: int | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    terminating: bool = False

    @property
    def active(self) -> bool:
        """Whether the pod may still hold its node's resources."""
        return self.phase in (WorkerPhase.PENDING, WorkerPhase.RUNNING)

    @property
    def scheduled(self) -> bool:
        return self.node_name is not None


@dataclass(frozen=True)
class AttemptFailure:
    """How an attempt failed, read from its Job's Failed condition and pods."""

    kind: FailureKind
    message: str
    exit_code: int | None = None


@dataclass(frozen=True)
class CarriedCounts:
    """Totals from earlier attempts, stamped on an attempt's Job when it is created."""

    failures: int = 0
    preemptions: int = 0
    gpu_seconds: float = 0.0
    start_time: datetime | None = None


@dataclass(frozen=True)
class ObservedAttempt:
    """One attempt: a batch/v1 Job `<name>-r<attempt>` and its worker pods."""

    attempt: int
    created: datetime
    suspended: bool = False
    completed: bool = False
    completion_time: datetime | None = None
    failure: AttemptFailure | None = None
    carried: CarriedCounts = field(default_factory=CarriedCounts)
    #: Set when Plinth released the gang because it could not be placed in time.
    gang_released_at: datetime | None = None
    #: When the gang's current wait for placement began (creation or the last retry).
    gang_window_start: datetime | None = None
    workers: tuple[ObservedWorker, ...] = ()

    @property
    def active_workers(self) -> tuple[ObservedWorker, ...]:
        return tuple(w for w in self.workers if w.active)

    @property
    def first_start(self) -> datetime | None:
        """When every worker of this attempt had started (None until all have)."""
        starts = [w.start_time for w in self.workers]
        if not starts or any(start is None for start in starts):
            return None
        return max(start for start in starts if start is not None)


@dataclass(frozen=True)
class ObservedTrainingJob:
    """Everything observed for one TrainingJob, newest attempt last."""

    attempts: tuple[ObservedAttempt, ...] = ()
    #: How many nodes could take one worker right now; None when not looked up.
    nodes_that_fit: int | None = None

    @property
    def latest(self) -> ObservedAttempt | None:
        return max(self.attempts, key=lambda a: a.attempt) if self.attempts else None
