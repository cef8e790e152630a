"""Kopf wiring for TrainingJob: indexes of its Jobs and pods, events that enqueue, one reconcile.

Kopf keeps in-memory indexes of every TrainingJob, and of the Jobs and pods labelled with a
TrainingJob's name, so a reconcile reads the whole observed state without API calls. Watch
events only enqueue the TrainingJob's key; a small pool of workers reconciles keys, runs the
pure planner and carries out its plan through the kube layer. Kopf handlers run only after
every index is fully populated, so no reconcile acts on a half-listed cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import kopf

from plinth.api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    InvalidSpecError,
    InvalidStatusError,
    TrainingJobSpec,
    TrainingJobStatus,
    parse_spec,
    parse_status,
)
from plinth.api.v1alpha1.common import Condition, ConditionStatus
from plinth.api.v1alpha1.trainingjob import CheckpointRecord, ReportedMetrics
from plinth.builders.trainingjob import LABEL_JOB_NAME
from plinth.handlers.metrics import observe_reconcile
from plinth.handlers.workqueue import Key, WorkQueue
from plinth.kube.client import Kube
from plinth.kube.trainingjob import (
    TrainingJobRef,
    carry_out,
    ensure_token,
    nodes_that_fit,
    observe_trainingjob,
    parse_time,
)
from plinth.status.reported import with_report
from plinth.status.trainingjob import (
    JobIdentity,
    TrainingJobPlan,
    invalid_spec_status,
    plan_trainingjob,
)
from plinth.status.trainingjob_observed import ObservedTrainingJob

KIND: Final = "TrainingJob"
PLURAL = "trainingjobs"
#: A TrainingJob is looked at again at least this often, even when nothing happens.
RESYNC_SECONDS = 300.0
WARNING_CONDITIONS = frozenset({"Failed", "Restarting"})
#: TrainingJobs reconciled at once; each reconcile's API calls run on one of these threads.
RECONCILE_WORKERS = 16
EXECUTOR = ThreadPoolExecutor(max_workers=RECONCILE_WORKERS, thread_name_prefix="trainingjob")


@dataclass
class TrainingJobController:
    """The operator-wide state of TrainingJob reconciling: client, queue and caches."""

    kube: Kube | None = None
    queue: WorkQueue | None = None
    metrics_base_url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    indexes: Mapping[str, kopf.Index[Key, Any]] | None = None
    reports: dict[Key, ReportedMetrics] = field(default_factory=dict)
    checkpoints: dict[Key, CheckpointRecord] = field(default_factory=dict)


CONTROLLER = TrainingJobController()


def _key_of_labels(namespace: str | None, labels: Mapping[str, str]) -> Key:
    return (namespace or "", labels[LABEL_JOB_NAME])


@kopf.index(API_GROUP, API_VERSION, PLURAL)
def trainingjob_bodies(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Key, Any]:
    """Every TrainingJob by (namespace, name)."""
    return {(namespace or "", name): dict(body)}


@kopf.index("batch", "v1", "jobs", labels={LABEL_JOB_NAME: kopf.PRESENT})
def trainingjob_jobs(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Any]:
    """Every attempt's Job by its TrainingJob's (namespace, name)."""
    return {_key_of_labels(namespace, labels): dict(body)}


@kopf.index("", "v1", "pods", labels={LABEL_JOB_NAME: kopf.PRESENT})
def trainingjob_pods(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Any]:
    """Every worker pod by its TrainingJob's (namespace, name)."""
    return {_key_of_labels(namespace, labels): dict(body)}


def _enqueue(key: Key, indexes: Mapping[str, Any]) -> None:
    if CONTROLLER.indexes is None:
        CONTROLLER.indexes = {name: indexes[name] for name in INDEX_NAMES}
    if CONTROLLER.queue is not None:
        CONTROLLER.queue.add(key)


INDEX_NAMES = ("trainingjob_bodies", "trainingjob_jobs", "trainingjob_pods")


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def trainingjob_changed(
    namespace: str | None,
    name: str,
    uid: str,
    type: str,
    **kwargs: Any,
) -> None:
    if type == "DELETED":
        CONTROLLER.tokens.pop(uid, None)
        CONTROLLER.reports.pop((namespace or "", name), None)
        CONTROLLER.checkpoints.pop((namespace or "", name), None)
        if CONTROLLER.queue is not None:
            CONTROLLER.queue.forget((namespace or "", name))
        return
    _enqueue((namespace or "", name), kwargs)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_JOB_NAME: kopf.PRESENT})
async def attempt_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
    _enqueue(_key_of_labels(namespace, labels), kwargs)


@kopf.on.event("", "v1", "pods", labels={LABEL_JOB_NAME: kopf.PRESENT})
async def worker_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
    _enqueue(_key_of_labels(namespace, labels), kwargs)


@dataclass(frozen=True)
class Snapshot:
    """One TrainingJob and its children, copied out of the indexes for a reconcile."""

    body: Mapping[str, Any]
    jobs: tuple[Mapping[str, Any], ...]
    pods: tuple[Mapping[str, Any], ...]


def previous_status(body: Mapping[str, Any]) -> TrainingJobStatus:
    try:
        return parse_status(KIND, body.get("status"))
    except InvalidStatusError:
        return TrainingJobStatus()


def _identity(body: Mapping[str, Any]) -> JobIdentity:
    metadata = body["metadata"]
    return JobIdentity(
        name=metadata["name"],
        generation=metadata.get("generation"),
        created=parse_time(metadata.get("creationTimestamp")) or datetime.now(UTC),
    )


def _ref(body: Mapping[str, Any]) -> TrainingJobRef:
    metadata = body["metadata"]
    return TrainingJobRef(
        name=metadata["name"], namespace=metadata["namespace"], uid=metadata["uid"]
    )


def _plan(
    kube: Kube,
    spec: TrainingJobSpec,
    body: Mapping[str, Any],
    previous: TrainingJobStatus,
    observed: ObservedTrainingJob,
) -> TrainingJobPlan:
    """Plan once; when a gang is stuck, count the nodes that could take a worker and replan."""
    now = datetime.now(UTC)
    args = (spec, _identity(body), previous)
    plan = plan_trainingjob(*args, observed, now)
    if plan.wants_capacity:
        fit = nodes_that_fit(spec, _ref(body), kube.list_nodes(), kube.list_active_pods())
        plan = plan_trainingjob(*args, replace(observed, nodes_that_fit=fit), now)
    return plan


def _transitions(before: tuple[Condition, ...], after: tuple[Condition, ...]) -> list[Condition]:
    previous = {c.type: c.status for c in before}
    return [
        c
        for c in after
        if previous.get(c.type, ConditionStatus.FALSE) != c.status
        and (c.status == ConditionStatus.TRUE or c.type in previous)
    ]


def _write_status(
    kube: Kube, body: Mapping[str, Any], previous: TrainingJobStatus, status: TrainingJobStatus
) -> None:
    if status == previous:
        return
    metadata = body["metadata"]
    payload = status.to_dict()
    kube.patch_status(
        f"{API_GROUP}/{API_VERSION}", KIND, metadata["namespace"], metadata["name"], payload
    )
    for changed in _transitions(previous.conditions, status.conditions):
        warning = changed.type in WARNING_CONDITIONS and changed.status == ConditionStatus.TRUE
        kube.post_event(
            body,
            "Warning" if warning else "Normal",
            changed.reason,
            f"{changed.type}={changed.status.value}: {changed.message}",
        )


def reconcile_snapshot(kube: Kube, snapshot: Snapshot) -> float | None:
    """Reconcile one TrainingJob from a snapshot; returns when to look again."""
    body = snapshot.body
    if body["metadata"].get("deletionTimestamp"):
        return None
    previous = previous_status(body)
    try:
        spec = parse_spec(KIND, body.get("spec") or {})
    except InvalidSpecError as error:
        status = invalid_spec_status(previous, _identity(body), str(error), datetime.now(UTC))
        _write_status(kube, body, previous, status)
        return None
    observed = observe_trainingjob(snapshot.jobs, snapshot.pods)
    plan = _plan(kube, spec, body, previous, observed)
    ref = _ref(body)
    if plan.delete_trainingjob:
        kube.delete(f"{API_GROUP}/{API_VERSION}", KIND, ref.namespace, ref.name)
        return None
    token = CONTROLLER.tokens.get(ref.uid) or ensure_token(kube, ref, read=bool(observed.attempts))
    CONTROLLER.tokens[ref.uid] = token
    carry_out(
        kube,
        spec,
        ref=ref,
        plan=plan,
        observed=observed,
        token=token,
        metrics_base_url=CONTROLLER.metrics_base_url,
    )
    key = (ref.namespace, ref.name)
    status = with_report(plan.status, CONTROLLER.reports.get(key), CONTROLLER.checkpoints.get(key))
    _write_status(kube, body, previous, status)
    return min(plan.check_again_after or RESYNC_SECONDS, RESYNC_SECONDS)


def snapshot_of(key: Key) -> Snapshot | None:
    indexes = CONTROLLER.indexes
    if indexes is None:
        return None
    bodies = list(indexes["trainingjob_bodies"].get(key, ()))
    if not bodies:
        return None
    return Snapshot(
        body=bodies[0],
        jobs=tuple(indexes["trainingjob_jobs"].get(key, ())),
        pods=tuple(indexes["trainingjob_pods"].get(key, ())),
    )


def start_controller(kube: Kube, metrics_base_url: str | None) -> WorkQueue:
    """Start the TrainingJob workers; watch events enqueue keys from then on."""

    async def reconcile(key: Key) -> float | None:
        snapshot = snapshot_of(key)
        if snapshot is None:
            return None
        with observe_reconcile(KIND):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(EXECUTOR, reconcile_snapshot, kube, snapshot)

    queue = WorkQueue(reconcile=reconcile, workers=RECONCILE_WORKERS, min_interval=1.0)
    CONTROLLER.kube, CONTROLLER.queue = kube, queue
    CONTROLLER.metrics_base_url = metrics_base_url
    queue.start()
    return queue
