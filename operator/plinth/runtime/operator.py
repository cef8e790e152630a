"""The operator: built once at start-up from the kind adapters, it owns every piece of
running state (client, work queue, executor, indexes, intake) — nothing lives in module
globals — and runs Kopf with handlers generated for every kind.

Watch events only enqueue a (kind, namespace, name) key; a small pool of workers takes keys
off the one queue, copies the resource and its children out of the indexes, and reconciles
them on a thread (`Reconciler`). `/healthz`, `/readyz`, `/metrics` and the metrics intake
share one HTTP server; in a pod, the operator labels its pod with its peering role
(`runtime.podrole`), which the chart's intake Service selects on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from plinth.api.wellknown import POD_GROUP_API_VERSION, ObjectRef
from plinth.intake.auth import load_issuer
from plinth.intake.book import ReportBook
from plinth.intake.server import Intake
from plinth.kube.carry_out import ListedUsage, UsageSource
from plinth.kube.client import Kube, load_api_client
from plinth.runtime.adapter import OperatorSettings
from plinth.runtime.http import ProbeState, start_probe_server, stop_probe_server
from plinth.runtime.metrics import (
    REGISTRY,
    ResourceCollector,
    count_api_request,
    initialise_kinds,
    observe_reconcile,
    reconcile_cpu,
)
from plinth.runtime.node_usage import WatchedUsage, register_usage_indexes
from plinth.runtime.peering import PeeringPause
from plinth.runtime.podrole import keep_role_label, own_pod
from plinth.runtime.reconciler import AnyAdapter, Reconciler
from plinth.runtime.store import ObjectStore
from plinth.runtime.wiring import register_kinds
from plinth.runtime.workqueue import Key, WorkQueue

BOOKKEEPING_PREFIX = "kopf.plinth.dev"
#: Resources reconciled at once; each reconcile's API calls run on one of these threads.
#: Measured side by side (200 TrainingJobs x 4 workers at once, floor and Plinth alternately):
#: with 16 the Job controller's syncs took 1.2-1.4x the floor's (its requests wait behind
#: ours at the API server) and a job was reconciled 7.7 times; with 8, 0.95-1.2x and 4.9
#: times, the operator's CPU 8% lower, each Job still out a median 2.4-3 s after its
#: TrainingJob (4 workers: 3.5-4.6 s) while the Job controller starts 10 jobs a second.
RECONCILE_WORKERS = 8
#: A resource is reconciled at most once per this many seconds (a burst of pod events).
MIN_RECONCILE_INTERVAL = 1.0
#: The kinds reconciles read and write besides the operator's own: discovered at start, so
#: the first reconciles of a burst do not each discover them.
COMMON_KINDS = (
    ("v1", "Pod"),
    ("v1", "Node"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "Event"),
    ("v1", "ResourceQuota"),
    ("v1", "PersistentVolumeClaim"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
#: Reports arriving within this many seconds are folded into one status update.
REPORT_BATCH_SECONDS = 2.0
#: How long a report naming a checkpoint waits to be written to status before a 503.
PERSIST_TIMEOUT_SECONDS = 10.0
LOGGER = logging.getLogger("plinth")
#: How gangs are placed, by whether the API server serves the PodGroup API (discovered at
#: start-up; restart the operator after enabling it).
GANG_PATHS = {
    True: "the scheduler places each attempt as one PodGroup (scheduling.k8s.io/v1beta1)",
    False: "Plinth admits each gang when the whole gang fits (no PodGroup API)",
}


@dataclass(frozen=True)
class OperatorOptions:
    """How `plinth run` was asked to run."""

    namespaces: tuple[str, ...] = ()
    probe_port: int = 8080
    probe_host: str = "0.0.0.0"
    peering: str | None = None
    #: Seconds a replica's peering heartbeat stays valid: how long a replica that died
    #: without a goodbye still holds the others back.
    peering_lifetime: int = 10
    #: Kopf priority; None: the replica that started first ranks highest, so a restarted
    #: replica waits instead of taking over from a healthy active one.
    peering_priority: int | None = None
    verbose: bool = False
    #: Base URL at which training pods reach the operator's metrics intake (None: off).
    metrics_base_url: str | None = None
    #: File holding the intake's token key (default: see plinth.intake.auth).
    intake_key_file: Path | None = None


@dataclass
class Operator:
    """Every piece of the running operator's state."""

    adapters: Mapping[str, AnyAdapter]
    options: OperatorOptions
    store: ObjectStore = field(default_factory=ObjectStore)
    book: ReportBook = field(default_factory=ReportBook)
    probes: ProbeState = field(default_factory=ProbeState)
    #: Whether Kopf's peering holds this replica as a standby (never, when standalone).
    peering: PeeringPause = field(default_factory=PeeringPause)
    collector: ResourceCollector | None = None
    kube: Kube | None = None
    queue: WorkQueue | None = None
    executor: ThreadPoolExecutor | None = None
    reconciler: Reconciler | None = None
    #: Keeps this replica's pod labelled with its peering role (None outside a cluster).
    role_labeller: asyncio.Task[None] | None = None

    def active(self) -> bool:
        """Started watching and not a standby: reconciles, and its indexes are current."""
        return self.probes.ready and not self.peering.paused()

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        if self.queue is not None:
            self.queue.add((kind, namespace, name))

    def enqueue_urgent(self, kind: str, namespace: str, name: str) -> None:
        """A resource created or changed by its user: reconciled before others' children."""
        if self.queue is not None:
            self.queue.add((kind, namespace, name), urgent=True)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self.book.forget((namespace, name))
        if self.reconciler is not None:
            self.reconciler.readings.forget((kind, namespace, name))
            self.reconciler.held.release((kind, namespace, name))
            self.reconciler.deferred.forget((kind, namespace, name))
        if self.queue is not None:
            self.queue.forget((kind, namespace, name))

    async def find_trainingjob(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """For the intake: the cached TrainingJob, else the API server's."""
        cached = self.store.owner("TrainingJob", (namespace, name))
        if cached is not None or self.kube is None:
            return cached
        api_version = self.adapters["TrainingJob"].info.api_version
        return await asyncio.to_thread(
            self.kube.get_object, api_version, "TrainingJob", namespace, name
        )

    def find_object(self, ref: ObjectRef) -> Mapping[str, Any] | None:
        """For plans that read objects they do not own: a Plinth kind from the indexes
        (no API call), anything else from the API server."""
        if ref.kind in self.adapters:
            return self.store.owner(ref.kind, (ref.namespace, ref.name))
        if self.kube is None:
            return None
        return self.kube.get_object(ref.api_version, ref.kind, ref.namespace, ref.name)

    async def _reconcile(self, key: Key) -> float | None:
        kind, namespace, name = key
        adapter = self.adapters[kind]
        snapshot = self.store.snapshot(kind, adapter.child_sources, (namespace, name))
        if snapshot is None or self.reconciler is None:
            return None
        queue, reconciler = self.queue, self.reconciler
        with observe_reconcile(kind):
            loop = asyncio.get_running_loop()

            def superseded() -> bool:
                return queue is not None and queue.superseded(key)

            def others_waiting() -> bool:
                return queue is not None and queue.urgent_waiting()

            def reconcile() -> float | None:
                with reconcile_cpu(kind):
                    return reconciler.reconcile(adapter, snapshot, superseded, others_waiting)

            return await loop.run_in_executor(self.executor, reconcile)

    async def _persist_reports(self, namespace: str, name: str) -> bool:
        if self.queue is None:
            return False
        key = ("TrainingJob", namespace, name)
        return await self.queue.reconciled(key, PERSIST_TIMEOUT_SECONDS)

    def _on_report(self, namespace: str, name: str) -> None:
        if self.queue is not None:
            self.queue.add_after(("TrainingJob", namespace, name), REPORT_BATCH_SECONDS)

    def _usage_source(self, indices: Mapping[str, Any], kube: Kube) -> UsageSource:
        """The watches when they see every namespace; else list (other namespaces' pods
        hold GPUs too)."""
        if _watched_namespaces(self.options):
            return ListedUsage(kube)
        return WatchedUsage(indices)

    async def start(self, indices: Mapping[str, Any]) -> None:
        """Start reconciling, then serving: the intake answers from its first request.
        `indices` are Kopf's (filled as the watches list)."""
        self.store.indices = indices
        self.probes.paused = self.peering.paused
        initialise_kinds(self.adapters)
        self.collector = ResourceCollector(self.store.objects, self.active)
        REGISTRY.register(self.collector)
        issuer = load_issuer(self.options.intake_key_file)
        self.kube = Kube(api=load_api_client(), on_request=count_api_request)
        own = [(adapter.info.api_version, adapter.info.kind) for adapter in self.adapters.values()]
        await asyncio.to_thread(self.kube.discover, (*own, *COMMON_KINDS))
        scheduler_gangs = await asyncio.to_thread(
            self.kube.serves, POD_GROUP_API_VERSION, "PodGroup"
        )
        LOGGER.info("Gang placement: %s", GANG_PATHS[scheduler_gangs])
        settings = OperatorSettings(
            metrics_base_url=self.options.metrics_base_url,
            issue_token=issuer.token_for,
            scheduler_gangs=scheduler_gangs,
        )
        self.reconciler = Reconciler(
            kube=self.kube,
            settings=settings,
            book=self.book,
            find_object=self.find_object,
            usage=self._usage_source(indices, self.kube),
        )
        self.executor = ThreadPoolExecutor(RECONCILE_WORKERS, thread_name_prefix="reconcile")
        self.queue = WorkQueue(
            reconcile=self._reconcile,
            workers=RECONCILE_WORKERS,
            min_interval=MIN_RECONCILE_INTERVAL,
        )
        self.queue.start()
        intake = Intake(
            find_job=self.find_trainingjob,
            issuer=issuer,
            book=self.book,
            on_report=self._on_report,
            persist=self._persist_reports,
            active=lambda: not self.peering.paused(),
        )
        await start_probe_server(
            self.probes, self.options.probe_host, self.options.probe_port, intake.routes()
        )
        LOGGER.info("probes, metrics and intake on port %d", self.probes.port)
        pod = own_pod()
        if pod is not None:
            self.role_labeller = asyncio.get_running_loop().create_task(
                keep_role_label(self.kube, pod, self.active)
            )

    async def stop(self) -> None:
        self.probes.ready = False
        if self.role_labeller is not None:
            self.role_labeller.cancel()
            self.role_labeller = None
        if self.queue is not None:
            await self.queue.stop()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        await stop_probe_server(self.probes)
        if self.collector is not None:
            REGISTRY.unregister(self.collector)
            self.collector = None


class NoDiffBase(kopf.DiffBaseStorage):
    """Kopf's diff-base, for an operator with no change handlers.

    Plinth reconciles from Kopf's indexes and registers only index and event handlers (no
    on.create/update/delete), so the "essence" Kopf builds of every object at every watch
    event, to diff against the last handled one, is never read; building it deep-copies the
    whole object (profiled: a tenth of the operator's CPU in a burst of pod events). This
    storage builds an empty essence and stores nothing. A unit test fails if the registry
    gains a change handler, which would need a real one."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure_settings(settings: kopf.OperatorSettings) -> None:
    """Keep Kopf's progress in annotations and build no diff-base (`NoDiffBase`), post
    only explicit events, never hot-loop."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=BOOKKEEPING_PREFIX
    )
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.batching.error_delays = (1, 2, 5, 10, 30, 60, 120)


def build_registry(operator: Operator, ready_flag: asyncio.Event) -> kopf.OperatorRegistry:
    """Kopf's registry for `operator`: generated kind handlers plus start-up and clean-up;
    /readyz turns ready when Kopf sets `ready_flag` (every watch started)."""
    registry = kopf.OperatorRegistry()
    index_names = (
        *register_kinds(
            registry,
            operator.adapters,
            operator.enqueue,
            operator.forget,
            enqueue_urgent=operator.enqueue_urgent,
        ),
        *register_usage_indexes(registry),
    )

    async def mark_ready() -> None:
        await ready_flag.wait()
        operator.probes.ready = True

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account or kubeconfig, as the kubernetes client finds them."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        configure_settings(settings)
        await operator.start({name: kwargs[name] for name in index_names})
        asyncio.get_running_loop().create_task(mark_ready())

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await operator.stop()

    return registry


def _watched_namespaces(options: OperatorOptions) -> tuple[str, ...]:
    from_env = os.environ.get("PLINTH_WATCH_NAMESPACES", "")
    return options.namespaces or tuple(n for n in from_env.split(",") if n)


def oldest_first_priority(started: float | None = None) -> int:
    """A Kopf peering priority that is higher the earlier the replica started (milliseconds,
    so two replicas of one Deployment practically never tie: a tie pauses both)."""
    return -int((time.time() if started is None else started) * 1000)


def run_operator(adapters: Mapping[str, AnyAdapter], options: OperatorOptions) -> None:
    """Run the operator until interrupted: blocks the calling thread."""
    kopf.configure(verbose=options.verbose)
    if not options.verbose:
        # One line per handled watch event is noise at the scale of pods; keep warnings.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    peering = PeeringPause(enabled=options.peering is not None)
    peering.install()
    operator = Operator(adapters=adapters, options=options, peering=peering)
    loop = asyncio.new_event_loop()
    ready_flag = asyncio.Event()
    registry = build_registry(operator, ready_flag)
    namespaces = _watched_namespaces(options)
    settings = kopf.OperatorSettings()
    configure_settings(settings)
    settings.peering.lifetime = options.peering_lifetime
    priority = options.peering_priority
    kopf.run(
        settings=settings,
        loop=loop,
        registry=registry,
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=options.peering is None,
        peering_name=options.peering,
        priority=oldest_first_priority() if priority is None else priority,
        ready_flag=ready_flag,
    )
