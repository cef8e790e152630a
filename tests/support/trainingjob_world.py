"""A small emulated cluster for the TrainingJob planner, at the level of its observations.

`World` holds the attempts (Jobs) and their worker pods, a few 8-GPU nodes and a clock, and
plays the parts the planner reacts to: the Job controller (pods per index, verdicts, an
elastic job's replacements with the counts Kubernetes stamps on them), the scheduler, the
kubelets (pods start, finish, crash; a silent node's pods stay as they were and cannot
finish terminating), evictions, users deleting pods or toggling `spec.suspend`. `reconcile()`
runs the real planner the way the runtime does (once, and again with the Nodes it asked
for) and carries out its plan the way the kube layer and the Job controller would. The
property test drives it with a seeded random generator; unit tests use it for scenarios.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plinth.api.v1alpha1 import TrainingJobSpec, TrainingJobStatus
from plinth.api.wellknown import GPU_RESOURCE as GPU
from plinth.api.wellknown import LABEL_TRAININGJOB
from plinth.kube.quota import pod_quota_demand
from plinth.status.capacity import ClusterCapacity
from plinth.status.trainingjob import AttemptToApply, TrainingJobPlan, plan_trainingjob
from plinth.status.trainingjob_facts import gang_demand
from plinth.status.trainingjob_observe import with_reads
from plinth.status.trainingjob_observed import (
    AttemptFailure,
    FailureKind,
    ObservedAttempt,
    ObservedNode,
    ObservedTrainingJob,
    ObservedWorker,
    WorkerPhase,
)
from tests.support.factories import T0, a_trainingjob

OWNER = a_trainingjob().owner()
#: A deleted pod's deletionTimestamp is its deletion time plus this grace period.
GRACE = timedelta(seconds=60)


@dataclass
class Pod:
    """A worker pod as the world changes it."""

    index: int
    created: datetime
    node: str | None = None
    phase: WorkerPhase = WorkerPhase.PENDING
    start: datetime | None = None
    ran_at: datetime | None = None
    finish: datetime | None = None
    exit_code: int | None = None
    ready: bool = True
    disrupted: bool = False
    deleted_at: datetime | None = None
    unschedulable: str | None = None
    index_failures: int = 0
    index_disruptions: int = 0

    @property
    def active(self) -> bool:
        return self.phase in (WorkerPhase.PENDING, WorkerPhase.RUNNING)

    def observed(self) -> ObservedWorker:
        return ObservedWorker(
            index=self.index,
            phase=self.phase,
            node_name=self.node,
            unschedulable_message=self.unschedulable,
            exit_code=self.exit_code,
            start_time=self.start,
            finish_time=self.finish,
            ran_at=self.ran_at
            if self.phase in (WorkerPhase.RUNNING, WorkerPhase.SUCCEEDED)
            else None,
            ready=self.ready,
            deleted_at=self.deleted_at,
            created=self.created,
            disrupted=self.disrupted,
            index_failures=self.index_failures,
            index_disruptions=self.index_disruptions,
        )


@dataclass
class Job:
    """An attempt's Job: what the planner stamped on it, what the Job controller decided."""

    apply: AttemptToApply
    created: datetime
    pods: list[Pod] = field(default_factory=list)
    completed: bool = False
    completion_time: datetime | None = None
    failure: AttemptFailure | None = None
    started_at: datetime | None = None

    @property
    def attempt(self) -> int:
        return self.apply.attempt

    @property
    def suspended(self) -> bool:
        return self.apply.suspend

    @property
    def finished(self) -> bool:
        return self.completed or self.failure is not None

    def members(self) -> dict[int, Pod]:
        newest: dict[int, Pod] = {}
        for pod in self.pods:
            newest[pod.index] = pod
        return newest

    def observed(self) -> ObservedAttempt:
        apply = self.apply
        return ObservedAttempt(
            attempt=apply.attempt,
            created=self.created,
            suspended=apply.suspend,
            completed=self.completed,
            completion_time=self.completion_time,
            failure=self.failure,
            carried=apply.carried,
            gang_released_at=apply.gang_released_at,
            gang_window_start=apply.gang_window_start,
            gang_started_at=apply.gang_started_at,
            active_since=apply.active_since,
            ended=apply.ended,
            banked_gpu_seconds=apply.banked_gpu_seconds,
            banked_at=apply.banked_at,
            started_at=self.started_at,
            workers=tuple(pod.observed() for pod in self.pods),
        )


@dataclass
class World:
    """The cluster one TrainingJob lives in."""

    spec: TrainingJobSpec
    node_names: tuple[str, ...] = ("n0", "n1", "n2", "n3")
    now: datetime = T0
    status: TrainingJobStatus = field(default_factory=TrainingJobStatus)
    jobs: dict[int, Job] = field(default_factory=dict)
    #: Node -> since when it is silent (absent: it reports).
    silent: dict[str, datetime] = field(default_factory=dict)
    #: Every plan and the observation it was made from, in order.
    history: list[tuple[ObservedTrainingJob, TrainingJobPlan]] = field(default_factory=list)

    # ---- what the planner sees -------------------------------------------------------

    @property
    def latest(self) -> Job | None:
        return self.jobs[max(self.jobs)] if self.jobs else None

    def _node(self, name: str) -> ObservedNode:
        if name in self.silent:
            return ObservedNode(
                name=name, ready=False, since=self.silent[name], reason="NodeStatusUnknown"
            )
        return ObservedNode(name=name, since=T0, reason="KubeletReady")

    def _free_nodes(self) -> list[str]:
        busy = {p.node for job in self.jobs.values() for p in job.pods if p.active and p.node}
        return [n for n in self.node_names if n not in busy and n not in self.silent]

    def capacity(self) -> ClusterCapacity:
        """The cluster as the API server would list it: every node not silent with 8 GPUs,
        and the job's active pods on their nodes."""
        gpus = str(self.spec.resources.gpus)
        nodes = tuple(
            {"metadata": {"name": n, "labels": {}}, "status": {"allocatable": {GPU: "8"}}}
            for n in self.node_names
            if n not in self.silent
        )
        pods = tuple(
            {
                "metadata": {
                    "namespace": OWNER.namespace,
                    "labels": {LABEL_TRAININGJOB: OWNER.name},
                },
                "spec": {
                    "nodeName": pod.node,
                    "containers": [{"resources": {"requests": {GPU: gpus}}}],
                },
            }
            for job in self.jobs.values()
            for pod in job.pods
            if pod.active and pod.node
        )
        return ClusterCapacity(nodes=nodes, active_pods=pods)

    def observe(
        self, nodes: tuple[str, ...] | None = None, fit: bool = False
    ) -> ObservedTrainingJob:
        observed = ObservedTrainingJob(
            attempts=tuple(job.observed() for _, job in sorted(self.jobs.items())),
            nodes=None if nodes is None else {n: self._node(n) for n in nodes},
        )
        if not fit:
            return observed
        return with_reads(
            observed,
            owner=OWNER,
            demand=gang_demand(self.spec, pod_quota_demand(self.spec.resources)),
            capacity=self.capacity(),
            objects=None,
        )

    def plan(
        self, previous: TrainingJobStatus | None = None
    ) -> tuple[ObservedTrainingJob, TrainingJobPlan]:
        """The runtime's planning: once, and again with what the first plan asked for; the
        observation the final plan was made from, and the plan."""
        previous = self.status if previous is None else previous
        observed = self.observe()
        decision = plan_trainingjob(self.spec, OWNER, previous, observed, self.now)
        if decision.wants_nodes or decision.wants_capacity:
            nodes = decision.wants_nodes or None
            observed = self.observe(nodes, fit=decision.wants_capacity)
            decision = plan_trainingjob(self.spec, OWNER, previous, observed, self.now)
        return observed, decision

    def reconcile(self) -> TrainingJobPlan:
        observed, decision = self.plan()
        self.history.append((observed, decision))
        self.carry_out(decision)
        return decision

    # ---- carrying out a plan ---------------------------------------------------------

    def carry_out(self, decision: TrainingJobPlan) -> None:
        """What the kube layer and the Job controller make of a plan."""
        for attempt in decision.delete_attempts:
            self.jobs.pop(attempt, None)
        apply = decision.apply
        if apply is not None:
            job = self.jobs.get(apply.attempt)
            if job is None:
                self.jobs[apply.attempt] = Job(apply=apply, created=self.now)
            else:
                if apply.suspend and not job.suspended:
                    self._delete_active_pods(job)
                    job.started_at = None
                if not apply.suspend and job.suspended:
                    job.started_at = self.now
                job.apply = apply
        self.status = decision.status

    def _delete_active_pods(self, job: Job) -> None:
        """The Job controller deletes a suspended or finished Job's active pods: a kubelet
        that reports stops them at once; a silent node's pod stays, terminating forever."""
        for pod in list(job.pods):
            if not pod.active:
                continue
            if pod.node in self.silent:
                pod.deleted_at = pod.deleted_at or self.now + GRACE
            else:
                job.pods.remove(pod)

    # ---- the cluster -----------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def set_suspend(self, suspend: bool) -> None:
        self.spec = self.spec.model_copy(update={"suspend": suspend})

    def job_controller(self) -> None:
        for job in self.jobs.values():
            if job.suspended or job.finished:
                continue
            if job.started_at is None:
                job.started_at = self.now
            if self.spec.elastic is None:
                self._judge_fixed(job)
            else:
                self._judge_elastic(job)
            if job.finished:
                self._delete_active_pods(job)
                continue
            members = job.members()
            for index in range(self.spec.max_nodes):
                if index not in members:
                    job.pods.append(Pod(index=index, created=self.now))

    def _judge_fixed(self, job: Job) -> None:
        members = job.members()
        failed = [p for p in members.values() if p.phase == WorkerPhase.FAILED]
        permanent = self.spec.restart_policy.permanent_exit_codes
        if any(p.disrupted for p in failed):
            message = "Pod has condition DisruptionTarget matching FailJob rule"
            job.failure = AttemptFailure(FailureKind.PREEMPTED, message)
        elif failed and failed[0].exit_code in permanent:
            code = failed[0].exit_code
            job.failure = AttemptFailure(FailureKind.PERMANENT, f"exit code {code}", code)
        elif failed:
            message = f"worker {failed[0].index} exited with code {failed[0].exit_code}"
            job.failure = AttemptFailure(FailureKind.CRASHED, message, failed[0].exit_code)
        elif len(members) == self.spec.max_nodes and all(
            p.phase == WorkerPhase.SUCCEEDED for p in members.values()
        ):
            job.completed, job.completion_time = True, self.now

    def _judge_elastic(self, job: Job) -> None:
        assert self.spec.elastic is not None
        members = job.members()
        if (zero := members.get(0)) is not None and zero.phase == WorkerPhase.SUCCEEDED:
            job.completed, job.completion_time = True, self.now
            return
        for index, pod in members.items():
            if pod.phase != WorkerPhase.FAILED:
                continue
            if pod.exit_code in self.spec.restart_policy.permanent_exit_codes:
                job.failure = AttemptFailure(FailureKind.PERMANENT, "permanent exit code")
                return
            failures = pod.index_failures + (not pod.disrupted)
            if failures > self.spec.elastic.max_restarts:
                job.failure = AttemptFailure(FailureKind.CRASHED, "Job has failed indexes")
                return
            job.pods.append(
                Pod(
                    index=index,
                    created=self.now,
                    index_failures=failures,
                    index_disruptions=pod.index_disruptions + pod.disrupted,
                )
            )

    def schedule(self) -> None:
        for job in self.jobs.values():
            for pod in job.pods:
                if pod.phase != WorkerPhase.PENDING or pod.node is not None:
                    continue
                free = self._free_nodes()
                if free:
                    # The kubelet accepts it: its startTime is set, it is not running yet.
                    pod.node, pod.unschedulable, pod.start = free[0], None, self.now
                else:
                    pod.unschedulable = "0/4 nodes are available: Insufficient nvidia.com/gpu"

    def _reporting(self, pod: Pod) -> bool:
        return pod.node is not None and pod.node not in self.silent

    def start_pods(self) -> None:
        """Containers of the placed pods start."""
        for pod in self.placed_pods():
            pod.phase, pod.ran_at = WorkerPhase.RUNNING, self.now

    def placed_pods(self) -> list[Pod]:
        """Pods a kubelet that reports has accepted but not started."""
        return [
            p
            for p in self._pods(WorkerPhase.PENDING)
            if self._reporting(p) and p.deleted_at is None
        ]

    def _pods(self, phase: WorkerPhase) -> list[Pod]:
        return [p for job in self.jobs.values() for p in job.pods if p.phase == phase]

    def running_pods(self) -> list[Pod]:
        """Pods a kubelet that reports runs (and could end)."""
        return [p for p in self._pods(WorkerPhase.RUNNING) if self._reporting(p)]

    def end_pod(self, pod: Pod, exit_code: int, *, disrupted: bool = False) -> None:
        pod.phase = WorkerPhase.SUCCEEDED if exit_code == 0 else WorkerPhase.FAILED
        pod.exit_code, pod.finish, pod.ready, pod.disrupted = exit_code, self.now, False, disrupted

    def silence(self, node: str) -> None:
        """The node's kubelet stops reporting; the node lifecycle controller marks its pods
        not Ready."""
        self.silent.setdefault(node, self.now)
        for job in self.jobs.values():
            for pod in job.pods:
                if pod.node == node and pod.phase == WorkerPhase.RUNNING:
                    pod.ready = False

    def revive(self, node: str) -> None:
        """The node reports again: its kubelet finishes deleting what was deleted."""
        self.silent.pop(node, None)
        for job in self.jobs.values():
            for pod in list(job.pods):
                if pod.node == node and pod.deleted_at is not None:
                    job.pods.remove(pod)
                elif pod.node == node and pod.active:
                    pod.ready = True

    def tick(self) -> None:
        """The controllers that react at once: the Job controller, then the scheduler."""
        self.job_controller()
        self.schedule()
        self.job_controller()


def _time_passes(world: World, rng: random.Random) -> str:
    world.advance(rng.choice((1, 5, 20, 45, 90, 200)))
    return "time passes"


def _pod_ends(exit_codes: tuple[int, ...], what: str, *, disrupted: bool = False) -> Action:
    def act(world: World, rng: random.Random) -> str | None:
        running = world.running_pods()
        if not running:
            return None
        pod = rng.choice(running)
        world.end_pod(pod, rng.choice(exit_codes), disrupted=disrupted)
        return f"worker {pod.index} {what}"

    return act


def _containers_start(world: World, rng: random.Random) -> str | None:
    if not world.placed_pods():
        return None
    world.start_pods()
    return "containers start"


def _fails_to_start(world: World, rng: random.Random) -> str | None:
    placed = world.placed_pods()
    if not placed:
        return None
    pod = rng.choice(placed)
    world.end_pod(pod, 128)
    return f"worker {pod.index} fails to start"


def _toggle_suspend(world: World, rng: random.Random) -> str:
    world.set_suspend(not world.spec.suspend)
    return f"spec.suspend {world.spec.suspend}"


def _silence(world: World, rng: random.Random) -> str:
    busy = [p.node for p in world.running_pods() if p.node] or list(world.node_names)
    node = rng.choice(busy)
    world.silence(node)
    return f"{node} goes silent"


def _revive(world: World, rng: random.Random) -> str | None:
    if not world.silent:
        return None
    node = rng.choice(sorted(world.silent))
    world.revive(node)
    return f"{node} reports again"


def _controllers(world: World, rng: random.Random) -> str:
    world.tick()
    return "controllers"


Action = Callable[[World, random.Random], "str | None"]
#: What may happen, with how likely it is.
EVENTS: tuple[tuple[float, Action], ...] = (
    (25, _time_passes),
    (15, _pod_ends((0,), "succeeds")),
    (10, _pod_ends((1, 1, 2), "crashes")),
    (8, _pod_ends((137,), "is evicted", disrupted=True)),
    (6, _pod_ends((137,), "is deleted")),
    (8, _toggle_suspend),
    (10, _silence),
    (8, _revive),
    (12, _controllers),
    (12, _containers_start),
    (4, _fails_to_start),
)


def random_step(world: World, rng: random.Random) -> str:
    """One random thing happening to the world; returns what, for failure messages."""
    weights = [weight for weight, _ in EVENTS]
    actions = [action for _, action in EVENTS]
    while True:
        (action,) = rng.choices(actions, weights)
        what = action(world, rng)
        if what is not None:
            return what
