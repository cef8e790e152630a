"""Property-style: the TrainingJob planner driven through random sequences of what a cluster
does (workers start, succeed, crash, are evicted or deleted; nodes go silent and come back;
users suspend and resume; time passes), checking after every reconcile what a user must be
able to trust in status:

- every counter follows the observed pods and Jobs, and is the same when planned from an
  empty previous status (nothing is carried over from the last status but phase and
  conditions, and GPU-seconds of pods that vanished before a reconcile saw them end);
  planning twice gives the same plan;
- no condition or counter claims workers run when none do;
- phases only move forward within an attempt (never back to Pending once its gang ran),
  and a final phase stays final;
- restarts, preemptions, GPU-seconds never go back; startTime is set only once every
  needed worker has run, and never changes;
- the deadline fails only a job that has spent that long started and not suspended.

The sequences come from a seeded generator, so a failure names the seed and the steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from plinth.api.v1alpha1 import TrainingJobPhase, TrainingJobSpec, TrainingJobStatus
from plinth.status.trainingjob import TrainingJobPlan
from plinth.status.trainingjob_observed import ObservedTrainingJob, WorkerPhase
from tests.support.factories import a_trainingjob
from tests.support.trainingjob_world import World, random_step

SEQUENCES = 50
STEPS = 70
FINAL = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)
COUNTERS = (
    "nodes",
    "gpus",
    "workers",
    "restarts",
    "preemptions",
    "membership_changes",
    "start_time",
)

SPECS: dict[str, TrainingJobSpec] = {
    "fixed-2": a_trainingjob()
    .with_fields(activeDeadlineSeconds=600)
    .with_restart_policy(backoffLimit=2, nodeLostTimeoutSeconds=30)
    .with_scheduling(scheduleTimeoutSeconds=60)
    .spec(),
    "fixed-1": a_trainingjob()
    .with_nodes(1)
    .with_fields(activeDeadlineSeconds=300)
    .with_restart_policy(backoffLimit=3, permanentExitCodes=[2], nodeLostTimeoutSeconds=0)
    .spec(),
    "elastic": a_trainingjob()
    .elastic(2, 3, max_restarts=2)
    .with_fields(activeDeadlineSeconds=900)
    .with_restart_policy(backoffLimit=1, nodeLostTimeoutSeconds=45)
    .with_scheduling(scheduleTimeoutSeconds=60)
    .spec(),
}


@dataclass
class Memory:
    """What the test remembers across a sequence, independently of the planner."""

    #: Time the job spent with status.startTime set and spec.suspend false.
    active_seconds: float = 0.0
    #: Whether an observation ever had every needed worker of its newest attempt run.
    gang_ran: bool = False
    #: Attempts whose status phase was Running.
    ran: set[int] = field(default_factory=set)


def condition_status(status: TrainingJobStatus, kind: str) -> str | None:
    found = next((c for c in status.conditions if c.type == kind), None)
    return found.status.value if found else None


def check(
    spec: TrainingJobSpec,
    observed: ObservedTrainingJob,
    decision: TrainingJobPlan,
    before: TrainingJobStatus,
    memory: Memory,
) -> None:
    status, latest = decision.status, observed.latest
    members = latest.members if latest else ()

    def count(phase: WorkerPhase) -> int:
        return sum(m.phase == phase for m in members)

    workers = status.workers
    # Counters follow the pods.
    assert workers.succeeded == count(WorkerPhase.SUCCEEDED)
    assert workers.failed == count(WorkerPhase.FAILED)
    assert workers.pending + workers.running + workers.unknown == sum(m.active for m in members)
    assert workers.running <= count(WorkerPhase.RUNNING)
    # Nothing claims workers run when none do.
    if condition_status(status, "Running") == "True" or status.phase == TrainingJobPhase.RUNNING:
        assert workers.running >= 1
    if condition_status(status, "Running") == "True":
        assert status.phase == TrainingJobPhase.RUNNING
    # Final phases stay final; counters never go back.
    if before.phase in FINAL:
        assert status.phase == before.phase
    assert status.restarts >= before.restarts
    assert status.preemptions >= before.preemptions
    assert status.gpu_seconds >= before.gpu_seconds - 0.1
    if before.start_time is not None:
        assert status.start_time == before.start_time
    if latest is not None and sum(m.has_run for m in members) >= spec.min_nodes:
        memory.gang_ran = True
    if status.start_time is not None:
        assert memory.gang_ran, "startTime set though no gang ever ran"
    # Within an attempt, never back to Pending once its gang ran (until it ends).
    if latest is not None and status.phase not in FINAL:
        if latest.attempt in memory.ran and latest.ended is None:
            assert status.phase != TrainingJobPhase.PENDING
        if status.phase == TrainingJobPhase.RUNNING:
            memory.ran.add(latest.attempt)
    # The deadline counts only time spent started and not suspended.
    failed = next((c for c in status.conditions if c.type == "Failed"), None)
    if failed is not None and failed.reason == "DeadlineExceeded":
        assert spec.active_deadline_seconds is not None
        assert memory.active_seconds >= spec.active_deadline_seconds - 1


def check_level_based(world: World, decision: TrainingJobPlan) -> None:
    """Planning again gives the same plan; planning from a previous status that kept only
    startTime gives the same counters (each is recomputed from the observations). The job's
    first start is recorded by status alone while its first gang runs whole (its Job is
    stamped once a worker stops), so from an empty status it is recomputed or unknown."""
    assert world.plan()[1] == decision
    if world.latest is None:
        return
    kept = TrainingJobStatus(start_time=world.status.start_time)
    fresh = world.plan(previous=kept)[1].status
    for name in COUNTERS:
        assert getattr(fresh, name) == getattr(decision.status, name), name
    empty = world.plan(previous=TrainingJobStatus())[1].status
    assert empty.start_time in (None, decision.status.start_time)
    # GPU-seconds whose pods vanished unseen are kept by status alone (never less).
    assert fresh.gpu_seconds <= decision.status.gpu_seconds


def run_sequence(spec: TrainingJobSpec, seed: int) -> None:
    rng = random.Random(seed)
    world, memory, steps = World(spec=spec), Memory(), []
    for _ in range(STEPS):
        before, started_at = world.status, world.now
        counting = before.start_time is not None and not world.spec.suspend
        steps.append(random_step(world, rng))
        if counting and before.phase not in FINAL:
            memory.active_seconds += (world.now - started_at).total_seconds()
        observed, decision = world.plan()
        try:
            check(world.spec, observed, decision, before, memory)
            check_level_based(world, decision)
        except AssertionError as error:
            trail = "; ".join(steps)
            raise AssertionError(f"seed {seed}, after: {trail}\n{decision.status}") from error
        world.carry_out(decision)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_random_histories_keep_status_truthful(name: str) -> None:
    for seed in range(SEQUENCES):
        run_sequence(SPECS[name], seed)


def test_the_generator_reaches_the_interesting_states() -> None:
    """The sequences do get jobs running, restarted, preempted, finished and failed by the
    deadline (else the properties above would hold vacuously)."""
    seen: set[str] = set()
    for name, spec in sorted(SPECS.items()):
        for seed in range(SEQUENCES):
            rng, world = random.Random(seed), World(spec=spec)
            for _ in range(STEPS):
                random_step(world, rng)
                decision = world.reconcile()
                status = decision.status
                seen.add(str(status.phase))
                seen.update(c.reason for c in status.conditions if c.status.value == "True")
                if status.preemptions:
                    seen.add(f"{name}: preempted")
                if status.membership_changes:
                    seen.add(f"{name}: membership changed")
                if status.workers.unknown:
                    seen.add("unknown workers")
    wanted = {
        "Running",
        "Succeeded",
        "Failed",
        "Suspended",
        "Restarting",
        "DeadlineExceeded",
        "BackoffLimitExceeded",
        "fixed-2: preempted",
        "elastic: membership changed",
        "unknown workers",
    }
    assert wanted <= seen, wanted - seen
