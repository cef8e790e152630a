"""Prometheus metrics of the operator: reconciles, errors and latency by kind (counted as
they happen), and the resources it manages (computed at scrape time by `ResourceCollector`
from the objects the operator already holds in memory, with no API call).

Every series a dashboard names exists from start: reconciles (ok and error), reconcile
errors and the latency histogram are pre-initialised at 0 for every kind
(`initialise_kinds`), and each resource gauge carries every value of its label (every
phase, every trial state) even when it counts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plinth.api.v1alpha1 import TrainingJobPhase, TrialState

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "plinth_reconciles",
    "Reconciles run, by resource kind and result (ok, invalid, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "plinth_reconcile_errors",
    "Reconciles that raised an unexpected error, by resource kind.",
    ["kind"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "plinth_reconcile_duration_seconds",
    "Wall-clock time of one reconcile, by resource kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

RECONCILE_CPU_SECONDS = Counter(
    "plinth_reconcile_cpu_seconds",
    "CPU time of reconciles' own thread (time.thread_time: planning, rendering, parsing"
    " answers; not the waits on the API server), by resource kind. The rest of the"
    " process's CPU is its watches: Kopf decoding and dispatching every event.",
    ["kind"],
    registry=REGISTRY,
)


@contextmanager
def reconcile_cpu(kind: str) -> Iterator[None]:
    """Count the CPU time the calling thread spends inside the block as `kind`'s."""
    started = time.thread_time()
    try:
        yield
    finally:
        RECONCILE_CPU_SECONDS.labels(kind=kind).inc(time.thread_time() - started)


API_REQUESTS = Counter(
    "plinth_api_requests",
    "Requests the operator's reconciles sent to the API server, by verb and object kind.",
    ["verb", "kind"],
    registry=REGISTRY,
)


def count_api_request(verb: str, kind: str) -> None:
    """Hook for the kube layer: count one request of `verb` ("apply", "patch", "create",
    "get", "list", "delete") on an object of `kind` ("Job", "Event", "TrainingJob/status")."""
    API_REQUESTS.labels(verb=verb, kind=kind).inc()


class ReconcileOutcome:
    """Mutable result label of one reconcile, set by the handler before it returns."""

    def __init__(self) -> None:
        self.result = "ok"


@contextmanager
def observe_reconcile(kind: str) -> Iterator[ReconcileOutcome]:
    """Count one reconcile of `kind` and time it; an exception counts as an error."""
    outcome = ReconcileOutcome()
    started = time.perf_counter()
    try:
        yield outcome
    except Exception:
        outcome.result = "error"
        RECONCILE_ERRORS.labels(kind=kind).inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)
        RECONCILES.labels(kind=kind, result=outcome.result).inc()


#: Results a reconcile ends with (`ReconcileOutcome.result`), pre-initialised per kind.
RESULTS = ("ok", "error")


def initialise_kinds(kinds: Iterable[str]) -> None:
    """Create every kind's reconcile series at 0, so a query names a series that exists
    before the first reconcile or error (and a rate over it reads 0, not "no data")."""
    for kind in kinds:
        RECONCILE_ERRORS.labels(kind=kind)
        RECONCILE_SECONDS.labels(kind=kind)
        RECONCILE_CPU_SECONDS.labels(kind=kind)
        for result in RESULTS:
            RECONCILES.labels(kind=kind, result=result)


#: Every resource of a kind, as the operator's watches last saw it.
ListObjects = Callable[[str], Iterable[Mapping[str, Any]]]


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _count(value: object) -> int:
    """A non-negative count from a status field (absent or malformed: 0)."""
    return value if isinstance(value, int) and value > 0 else 0


def trainingjob_gpus_held(job: Mapping[str, Any]) -> int:
    """GPUs held by one TrainingJob's workers: Running workers of the current attempt
    (`status.workers.running`) x GPUs per worker (`status.gpus / status.nodes`, the gang's
    GPUs over its nodes). Pending workers hold none yet; workers on a node that stopped
    reporting (`unknown`) are not counted; a job without status holds none."""
    status = _status(job)
    workers = status.get("workers")
    running = _count(workers.get("running")) if isinstance(workers, Mapping) else 0
    nodes, gpus = _count(status.get("nodes")), _count(status.get("gpus"))
    return running * (gpus // nodes) if nodes else 0


class ResourceCollector(Collector):
    """Gauges of the resources the operator manages, computed at each scrape from the
    objects in its memory (`list_objects`, the watches' indexes). They are reported only
    while `active()`: a standby replica paused by peering, or one still listing, holds no
    current view, and its numbers would be counted twice next to the active one's.

    - `plinth_trainingjobs{phase}`: TrainingJobs by `status.phase`; one the operator has
      not written a status for yet counts as Pending.
    - `plinth_trainingjob_gpus_held`: the sum of `trainingjob_gpus_held` over all
      TrainingJobs (GPUs held by Running workers).
    - `plinth_automlsweep_trials{state}`: trials of all AutoMLSweeps by state, from each
      sweep's `status.trialCounts`.
    - `plinth_modeldeployment_replicas{state}`: Triton replicas of all ModelDeployments,
      `ready` (`status.readyReplicas`: model loaded and ready) and `desired`
      (`status.desiredReplicas`: what the autoscaler wants).
    - `plinth_operator_active`: 1 on the replica that reconciles, 0 on a standby or one
      still starting; summed over replicas, 1 when healthy.
    """

    def __init__(self, list_objects: ListObjects, active: Callable[[], bool]) -> None:
        self._list = list_objects
        self._active = active

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        active = self._active()
        families = self._families(self._list if active else None)
        operator_active = GaugeMetricFamily(
            "plinth_operator_active",
            "1 on the operator replica that reconciles; 0 on a standby paused by peering "
            "or a replica still starting.",
        )
        operator_active.add_metric([], 1.0 if active else 0.0)
        return [*families, operator_active]

    def _families(self, list_objects: ListObjects | None) -> list[Metric]:
        """The gauges; with samples counted from `list_objects`, or none when None."""
        objects: ListObjects = list_objects or (lambda _kind: ())
        phases = dict.fromkeys((p.value for p in TrainingJobPhase), 0)
        gpus_held = 0
        for job in objects("TrainingJob"):
            phase = _status(job).get("phase") or TrainingJobPhase.PENDING.value
            phases[phase] = phases.get(phase, 0) + 1
            gpus_held += trainingjob_gpus_held(job)
        trials = dict.fromkeys((s.value for s in TrialState), 0)
        for sweep in objects("AutoMLSweep"):
            counts = _status(sweep).get("trialCounts")
            if isinstance(counts, Mapping):
                for state in TrialState:
                    trials[state.value] += _count(counts.get(state.value.lower()))
        replicas = {"ready": 0, "desired": 0}
        for deployment in objects("ModelDeployment"):
            status = _status(deployment)
            replicas["ready"] += _count(status.get("readyReplicas"))
            replicas["desired"] += _count(status.get("desiredReplicas"))

        by_phase = GaugeMetricFamily(
            "plinth_trainingjobs", "TrainingJobs by status.phase.", labels=["phase"]
        )
        held = GaugeMetricFamily(
            "plinth_trainingjob_gpus_held",
            "GPUs held by TrainingJob workers: Running workers x GPUs per worker.",
        )
        by_state = GaugeMetricFamily(
            "plinth_automlsweep_trials", "Trials of all AutoMLSweeps by state.", labels=["state"]
        )
        serving = GaugeMetricFamily(
            "plinth_modeldeployment_replicas",
            "Triton replicas of all ModelDeployments: ready, and desired by the autoscaler.",
            labels=["state"],
        )
        if list_objects is not None:
            for phase, count in phases.items():
                by_phase.add_metric([phase], count)
            held.add_metric([], gpus_held)
            for trial_state, count in trials.items():
                by_state.add_metric([trial_state], count)
            for replica_state, count in replicas.items():
                serving.add_metric([replica_state], count)
        return [by_phase, held, by_state, serving]
