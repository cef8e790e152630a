"""What the operator observed of a TrainingJob's children, as plain values for the planner.

The kube layer parses Jobs, pods and (when a plan asks) Nodes into these; the planner in
`status.trainingjob` reads nothing else. Counters that must survive a gang restart
(failures, preemptions, GPU time, time spent started, first start) travel on each attempt's
Job as annotations, written once when the attempt is created; facts about an attempt that
its pods cannot keep (when the gang first ran, how the attempt ended) are stamped on its Job
the first time Plinth sees them. So every reconcile recomputes the same numbers from what it
observes, and a reconcile interrupted anywhere converges.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from plinth.status.gang_admission import Admission


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
    #: spec.suspend stopped an attempt of a job that had started: not a failure.
    SUSPENDED = "Suspended"


@dataclass(frozen=True)
class ObservedWorker:
    """One worker pod of an attempt."""

    index: int
    phase: WorkerPhase
    node_name: str | None = None
    #: The scheduler's message while the pod cannot be placed (PodScheduled=False).
    unschedulable_message: str | None = None
    exit_code: int | None = None
    #: The pod's status.startTime: when its kubelet accepted it (it holds its GPUs from then).
    start_time: datetime | None = None
    finish_time: datetime | None = None
    #: When the worker container started running (None: it has not, as far as we know).
    ran_at: datetime | None = None
    #: The pod's Ready condition (the node lifecycle controller sets it False when the
    #: pod's node stops reporting).
    ready: bool = True
    #: metadata.deletionTimestamp: the pod is being deleted.
    deleted_at: datetime | None = None
    created: datetime | None = None
    #: The pod carries condition DisruptionTarget (evicted, preempted, node lost).
    disrupted: bool = False
    #: Pods of this index that failed before this one (a replacement): counted by the Job's
    #: backoffLimitPerIndex, and ignored by its podFailurePolicy (disruptions).
    index_failures: int = 0
    index_disruptions: int = 0
    #: Why the worker container waits (the kubelet's reason and message), if it does.
    waiting_reason: str | None = None
    waiting_message: str | None = None

    @property
    def active(self) -> bool:
        """Whether the pod may still hold its node's resources."""
        return self.phase in (WorkerPhase.PENDING, WorkerPhase.RUNNING)

    @property
    def scheduled(self) -> bool:
        return self.node_name is not None

    @property
    def terminating(self) -> bool:
        return self.deleted_at is not None

    @property
    def has_run(self) -> bool:
        """Running now, or exited 0 (a failed pod may never have run)."""
        return self.phase in (WorkerPhase.RUNNING, WorkerPhase.SUCCEEDED)


@dataclass(frozen=True)
class AttemptFailure:
    """How an attempt failed, read from its Job's Failed condition and pods."""

    kind: FailureKind
    message: str
    exit_code: int | None = None


@dataclass(frozen=True)
class AttemptEnd:
    """Plinth's verdict on an attempt that ended, stamped on its Job: why (a FailureKind
    value, or the reason of a final phase such as DeadlineExceeded or Succeeded), when, and
    the GPU-seconds its workers held until then (their pods go, the number stays)."""

    reason: str
    message: str
    at: datetime
    gpu_seconds: float = 0.0

    @property
    def failure(self) -> AttemptFailure | None:
        """The end as a failure the restart policy judges (None for a final verdict)."""
        try:
            return AttemptFailure(FailureKind(self.reason), self.message)
        except ValueError:
            return None


@dataclass(frozen=True)
class CarriedCounts:
    """Totals from earlier attempts, stamped on an attempt's Job when it is created."""

    failures: int = 0
    preemptions: int = 0
    gpu_seconds: float = 0.0
    start_time: datetime | None = None
    #: Time the job spent started in earlier attempts (what activeDeadlineSeconds limits).
    active_seconds: float = 0.0


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
    #: Stamped: when every needed worker of this attempt first ran at once.
    gang_started_at: datetime | None = None
    #: Stamped: when this attempt's share of the deadline clock started counting.
    active_since: datetime | None = None
    #: Stamped: how the attempt ended, once Plinth judged it.
    ended: AttemptEnd | None = None
    #: Stamped when the attempt was suspended in place (its pods deleted, the attempt kept):
    #: the GPU-seconds those pods held, and when; pods created later count on top.
    banked_gpu_seconds: float = 0.0
    banked_at: datetime | None = None
    #: The Job's status.startTime (when it was last resumed, for a Job created suspended).
    started_at: datetime | None = None
    workers: tuple[ObservedWorker, ...] = ()

    @property
    def active_workers(self) -> tuple[ObservedWorker, ...]:
        return tuple(w for w in self.workers if w.active)

    @property
    def members(self) -> tuple[ObservedWorker, ...]:
        """The newest pod of each index (an elastic job replaces a member that left)."""
        newest: dict[int, ObservedWorker] = {}
        for worker in self.workers:  # in creation order within each index
            newest[worker.index] = worker
        return tuple(newest[index] for index in sorted(newest))


@dataclass(frozen=True)
class ObservedNode:
    """A Node the plan asked about: is it Ready, since when, and why not."""

    name: str
    exists: bool = True
    ready: bool = True
    #: When the Ready condition last changed (None: not reported).
    since: datetime | None = None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ObservedTrainingJob:
    """Everything observed for one TrainingJob, newest attempt last."""

    attempts: tuple[ObservedAttempt, ...] = ()
    #: How many of the gang's workers the nodes could take right now; None when not looked up.
    workers_that_fit: int | None = None
    #: The Nodes of suspect workers, by name, when a plan asked for them (None: not read).
    nodes: Mapping[str, ObservedNode] | None = None
    #: Whether the whole gang of a new attempt may be created now (None: not judged).
    admission: Admission | None = None

    @property
    def latest(self) -> ObservedAttempt | None:
        return max(self.attempts, key=lambda a: a.attempt) if self.attempts else None
