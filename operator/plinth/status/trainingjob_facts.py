"""What the TrainingJob planner makes of the newest attempt's observations, once per reconcile.

Pure derivations, each from observations only (pods, the attempt's Job and its stamps, and
the Nodes of suspect workers when they were read), so that every status counter is
recomputed at every reconcile and never carried over from the previous status (one
exception: GPU-seconds never go below what status showed, since a pod deleted before any
reconcile saw it end takes its evidence with it):

- which workers are *lost*: Running, placed, or stuck terminating on a node that has not
  been Ready for `restartPolicy.nodeLostTimeoutSeconds`, or that no longer exists (Nodes are
  read only for suspect workers);
- when the gang first ran (every needed worker running at once) and when this attempt's
  share of the deadline clock started;
- the members an elastic job lost in this attempt (membership changes);
- GPU-seconds and seconds spent started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from plinth.api.v1alpha1 import TrainingJobSpec
from plinth.api.v1alpha1.trainingjob import WorkerCounts
from plinth.api.wellknown import format_time
from plinth.status.gang_admission import GangDemand
from plinth.status.trainingjob_observed import (
    FailureKind,
    ObservedAttempt,
    ObservedTrainingJob,
    ObservedWorker,
    WorkerPhase,
)

#: How often a running job's GPU time is refreshed in status: at the operator's resync
#: period, so a job running steadily costs no write between resyncs (the GPUs each job
#: holds now are on the operator's /metrics, read from its caches at scrape time).
RUNNING_RECHECK_SECONDS = 300.0


@dataclass(frozen=True)
class NodeHealth:
    """Workers on nodes that stopped reporting, and what to read or when to look again."""

    #: Lost worker -> why (its node is gone, or not Ready for longer than the bound).
    lost: Mapping[ObservedWorker, str] = field(default_factory=dict)
    #: Nodes to read (suspect workers' nodes, when not read yet).
    wants_nodes: tuple[str, ...] = ()
    #: Seconds until a suspect worker's node has been not Ready for the whole bound.
    recheck_after: float | None = None


def _suspect(worker: ObservedWorker, bound: timedelta, now: datetime) -> bool:
    """A worker whose node may have gone silent: Running but marked not Ready (the node
    lifecycle controller does that when the node stops reporting), placed but not started
    for longer than the bound, or still there after its deletion's grace period ended (its
    kubelet never confirmed)."""
    if not (worker.active and worker.scheduled):
        return False
    if worker.deleted_at is not None and now >= worker.deleted_at:
        return True
    if worker.phase == WorkerPhase.PENDING:
        return worker.created is not None and now >= worker.created + bound
    return not worker.ready


def node_health(
    spec: TrainingJobSpec, observed: ObservedTrainingJob, attempt: ObservedAttempt, now: datetime
) -> NodeHealth:
    """Which of the attempt's workers are lost; reads Nodes only for suspect workers."""
    bound = timedelta(seconds=spec.restart_policy.node_lost_timeout_seconds)
    suspects = [w for w in attempt.workers if _suspect(w, bound, now)]
    if not suspects:
        return NodeHealth()
    nodes = observed.nodes or {}
    unread = sorted({str(w.node_name) for w in suspects if w.node_name not in nodes})
    if observed.nodes is None or unread:
        return NodeHealth(wants_nodes=tuple(unread))
    lost: dict[ObservedWorker, str] = {}
    recheck: float | None = None
    for worker in suspects:
        node = nodes[str(worker.node_name)]
        if node.ready:
            continue
        if not node.exists:
            lost[worker] = f"node {node.name} no longer exists"
            continue
        since = node.since or now
        if now < since + bound:
            left = (since + bound - now).total_seconds()
            recheck = left if recheck is None else min(recheck, left)
            continue
        why = f": {node.reason}" if node.reason else ""
        lost[worker] = f"node {node.name} not Ready since {format_time(since)}{why}"
    return NodeHealth(lost=lost, recheck_after=recheck)


def needed(spec: TrainingJobSpec) -> int:
    """Workers that must run at once: every node of a fixed-size job, minNodes of an elastic one."""
    return spec.min_nodes


def gang_demand(spec: TrainingJobSpec, per_worker: Mapping[str, Decimal]) -> GangDemand:
    """What the gang that must run at once asks of the cluster, and (`per_worker`: each
    worker's requests and limits as a ResourceQuota counts them) of the namespace's quota."""
    resources = spec.resources
    template = spec.pod_template
    return GangDemand(
        workers=needed(spec),
        gpus=resources.gpus,
        gpu_type=resources.gpu_type,
        node_selector=dict(template.node_selector) if template else {},
        per_worker=per_worker,
        claims=tuple(
            claim
            for volume in (template.volumes if template else ())
            if (claim := ((volume.to_dict().get("persistentVolumeClaim") or {}).get("claimName")))
        ),
    )


@dataclass(frozen=True)
class Facts:
    """The newest attempt as the planner reads it."""

    spec: TrainingJobSpec
    attempt: ObservedAttempt
    health: NodeHealth
    #: Stamped, or seen now: when every needed worker first ran at once.
    gang_started_at: datetime | None
    #: Stamped, or starting now: when this attempt's share of the deadline clock began.
    active_since: datetime | None
    now: datetime
    #: GPU-seconds status already showed for this attempt: the one counter whose evidence can
    #: vanish (a pod deleted before any reconcile saw it end), so it never goes back.
    gpu_floor: float = 0.0

    @property
    def members(self) -> tuple[ObservedWorker, ...]:
        return self.attempt.members

    @property
    def lost(self) -> Mapping[ObservedWorker, str]:
        return self.health.lost

    @property
    def live(self) -> tuple[ObservedWorker, ...]:
        """Members that may still take part: Pending or Running, and not lost."""
        return tuple(m for m in self.members if m.active and m not in self.lost)

    @property
    def placed(self) -> tuple[ObservedWorker, ...]:
        return tuple(m for m in self.live if m.scheduled)

    @property
    def running(self) -> tuple[ObservedWorker, ...]:
        return tuple(m for m in self.live if m.phase == WorkerPhase.RUNNING)

    @property
    def succeeded(self) -> tuple[ObservedWorker, ...]:
        return tuple(m for m in self.members if m.phase == WorkerPhase.SUCCEEDED)

    @property
    def started(self) -> bool:
        """Whether this attempt's gang has run."""
        return self.gang_started_at is not None

    @property
    def job_started(self) -> bool:
        """Whether the job has run, in this attempt or an earlier one."""
        return self.attempt.carried.start_time is not None or self.started

    @property
    def start_time(self) -> datetime | None:
        return self.attempt.carried.start_time or self.gang_started_at


def _gang_started_at(
    spec: TrainingJobSpec, attempt: ObservedAttempt, now: datetime, job_start: datetime | None
) -> datetime | None:
    """When the needed workers first all ran: stamped on the Job; in the attempt in which the
    job first ran, the job's start that status records (`job_start`, status.startTime: that
    attempt's Job is not stamped, see `first_run`); else seen in these pods (a Running or
    Succeeded worker has run, since its container started; a Failed one may never have)."""
    if attempt.gang_started_at is not None:
        return attempt.gang_started_at
    if first_run(attempt) and job_start is not None:
        return job_start
    starts = sorted(m.ran_at or m.start_time or now for m in attempt.members if m.has_run)
    return starts[needed(spec) - 1] if len(starts) >= needed(spec) else None


def _active_since(
    attempt: ObservedAttempt, gang_started_at: datetime | None, now: datetime
) -> datetime | None:
    """When this attempt began counting towards the deadline: from the gang's first run for
    the attempt in which the job first starts; for a later attempt, from when it ran
    unsuspended (a restart's wait for placement counts; a suspension does not)."""
    if attempt.active_since is not None:
        return attempt.active_since
    if first_run(attempt):
        return gang_started_at
    if attempt.ended is not None:
        return None
    return None if attempt.suspended else attempt.started_at or now


def first_run(attempt: ObservedAttempt) -> bool:
    """Whether the job has not run before this attempt: its gang's first run is the job's
    start, which status records (status.startTime), and so is when the attempt began to
    count towards the deadline. Such an attempt's Job is not stamped with either: in a burst
    of new jobs that would be one more write per job as each gang starts."""
    return attempt.carried.start_time is None


def facts_of(
    spec: TrainingJobSpec,
    observed: ObservedTrainingJob,
    attempt: ObservedAttempt,
    now: datetime,
    *,
    shown_gpu_seconds: float = 0.0,
    job_start: datetime | None = None,
) -> Facts:
    """The newest attempt read once; `shown_gpu_seconds` and `job_start` are what status
    says so far (status.gpuSeconds, status.startTime)."""
    gang_started_at = _gang_started_at(spec, attempt, now, job_start)
    return Facts(
        spec=spec,
        attempt=attempt,
        health=node_health(spec, observed, attempt, now),
        gang_started_at=gang_started_at,
        active_since=_active_since(attempt, gang_started_at, now),
        now=now,
        gpu_floor=max(round(shown_gpu_seconds - attempt.carried.gpu_seconds, 1), 0.0),
    )


# --------------------------------------------------------------------------------------
# Elastic membership
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Losses:
    """Members an elastic attempt lost (each replaced, or to be), by cause."""

    crashed: int = 0
    preempted: int = 0

    @property
    def total(self) -> int:
        return self.crashed + self.preempted

    @property
    def kind(self) -> FailureKind:
        """What a gang restart for these losses counts as."""
        return FailureKind.CRASHED if self.crashed else FailureKind.PREEMPTED


def member_losses(facts: Facts, *indexes: int) -> Losses:
    """Members that left: pods of an index that failed before its newest (the Job controller
    stamps the count on the replacement), its newest if Failed, and lost ones. Disruptions
    and lost nodes are preemptions; anything else (a crash, a deleted pod) is a crash. Pods
    that fail because the attempt was stopped or suspended in place (their GPU time banked)
    are not members leaving."""
    stopped = facts.attempt.suspended or facts.attempt.ended is not None
    since_suspension = set(unbanked(facts.attempt))
    crashed = preempted = 0
    for member in facts.members:
        if (indexes and member.index not in indexes) or member not in since_suspension:
            continue
        crashed += member.index_failures
        preempted += member.index_disruptions
        if stopped:
            continue
        if member.phase == WorkerPhase.FAILED:
            preempted += member.disrupted
            crashed += not member.disrupted
        elif member in facts.lost:
            preempted += 1
    return Losses(crashed=crashed, preempted=preempted)


def regroup_deadline(facts: Facts) -> datetime:
    """For a started elastic attempt below minNodes: when its wait for replacements ends
    (scheduleTimeoutSeconds after the latest member left or was re-created)."""
    marks = [facts.attempt.created]
    for member in facts.members:
        if member in facts.placed:
            continue
        if member.active and member.created is not None and member not in facts.lost:
            marks.append(member.created)
        elif member.finish_time is not None:
            marks.append(member.finish_time)
    timeout = facts.spec.scheduling.schedule_timeout_seconds
    return max(marks) + timedelta(seconds=timeout)


# --------------------------------------------------------------------------------------
# Counters
# --------------------------------------------------------------------------------------


def _held_seconds(start: datetime, end: datetime | None, now: datetime) -> float:
    """Seconds from start to end; a worker still running counts in whole recheck periods,
    so status changes once per period instead of at every reconcile."""
    if end is not None:
        return max((end - start).total_seconds(), 0.0)
    elapsed = max((now - start).total_seconds(), 0.0)
    return elapsed - elapsed % RUNNING_RECHECK_SECONDS


def unbanked(attempt: ObservedAttempt) -> tuple[ObservedWorker, ...]:
    """The attempt's pods whose GPU time is not banked yet (created after the last bank)."""
    since = attempt.banked_at
    return tuple(
        w for w in attempt.workers if since is None or (w.created is not None and w.created > since)
    )


def held_gpu_seconds(
    spec: TrainingJobSpec, workers: tuple[ObservedWorker, ...], now: datetime
) -> float:
    """GPU time held by these pods as they are now: start to finish (or now) x GPUs."""
    total = 0.0
    for worker in workers:
        if worker.start_time is None:
            continue
        end = worker.finish_time or (None if worker.active else worker.start_time)
        total += _held_seconds(worker.start_time, end, now)
    return round(total * spec.resources.gpus, 1)


def attempt_gpu_seconds(spec: TrainingJobSpec, attempt: ObservedAttempt, now: datetime) -> float:
    """GPU time of one attempt: what was stamped when it ended (its pods may be gone since),
    else what was banked when it was suspended in place plus what its later pods held."""
    if attempt.ended is not None:
        return attempt.ended.gpu_seconds
    return round(attempt.banked_gpu_seconds + held_gpu_seconds(spec, unbanked(attempt), now), 1)


def current_gpu_seconds(facts: Facts) -> float:
    """The newest attempt's GPU time: stamped at its end, else from its pods (never less
    than status showed)."""
    attempt = facts.attempt
    if attempt.ended is not None:
        return attempt.ended.gpu_seconds
    return max(attempt_gpu_seconds(facts.spec, attempt, facts.now), facts.gpu_floor)


def attempt_active_seconds(facts: Facts, now: datetime) -> float:
    """Seconds this attempt counts towards activeDeadlineSeconds: from `active_since` to its
    end (or now). Between one attempt's end and the next attempt's start nothing counts, so
    a suspension arriving meanwhile pauses the clock as well."""
    if facts.active_since is None:
        return 0.0
    ended = facts.attempt.ended
    end = ended.at if ended is not None else now
    return max((end - facts.active_since).total_seconds(), 0.0)


def active_seconds(facts: Facts, now: datetime) -> float:
    """Time the job has spent started, earlier attempts included."""
    return facts.attempt.carried.active_seconds + attempt_active_seconds(facts, now)


def clock_running(facts: Facts) -> bool:
    return facts.active_since is not None and facts.attempt.ended is None


def gang_size(facts: Facts | None) -> int:
    """spec.nodes; for an elastic job, its members placed now (its current size)."""
    if facts is None:
        return 0
    if facts.spec.elastic is None:
        return facts.spec.max_nodes
    return len(facts.placed)


def worker_counts(facts: Facts | None) -> WorkerCounts:
    """One worker per node rank (the newest pod of each index), by phase; a worker on a lost
    node is `unknown`, whatever its pod says."""
    members = facts.members if facts else ()
    lost = facts.lost if facts else {}

    def count(phase: WorkerPhase) -> int:
        return sum(m.phase == phase and m not in lost for m in members)

    return WorkerCounts(
        pending=count(WorkerPhase.PENDING),
        running=count(WorkerPhase.RUNNING),
        succeeded=count(WorkerPhase.SUCCEEDED),
        failed=count(WorkerPhase.FAILED),
        unknown=sum(m in lost for m in members),
    )
