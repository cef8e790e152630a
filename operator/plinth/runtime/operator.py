"""The operator: built once at start-up from the kind adapters, it owns every piece of
running state (client, work queue, executor, indexes, intake) — nothing lives in module
globals — and runs Kopf with handlers generated for every kind.

Watch events only enqueue a (kind, namespace, name) key; a small pool of workers takes keys
off the one queue, copies the resource and its children out of the indexes, and reconciles
them on a thread (`Reconciler`). `/healthz`, `/readyz`, `/metrics` and the metrics intake
share one HTTP server.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from plinth.api.wellknown import ObjectRef
from plinth.intake.auth import load_issuer
from plinth.intake.book import ReportBook
from plinth.intake.server import Intake
from plinth.kube.client import Kube, load_api_client
from plinth.runtime.adapter import OperatorSettings
from plinth.runtime.http import ProbeState, start_probe_server, stop_probe_server
from plinth.runtime.metrics import count_api_request, observe_reconcile
from plinth.runtime.reconciler import AnyAdapter, Reconciler
from plinth.runtime.store import ObjectStore
from plinth.runtime.wiring import register_kinds
from plinth.runtime.workqueue import Key, WorkQueue

BOOKKEEPING_PREFIX = "kopf.plinth.dev"
#: Resources reconciled at once; each reconcile's API calls run on one of these threads.
RECONCILE_WORKERS = 16
#: A resource is reconciled at most once per this many seconds (a burst of pod events).
MIN_RECONCILE_INTERVAL = 1.0
#: Reports arriving within this many seconds are folded into one status update.
REPORT_BATCH_SECONDS = 2.0
#: How long a report naming a checkpoint waits to be written to status before a 503.
PERSIST_TIMEOUT_SECONDS = 10.0
LOGGER = logging.getLogger("plinth")


@dataclass(frozen=True)
class OperatorOptions:
    """How `plinth run` was asked to run."""

    namespaces: tuple[str, ...] = ()
    probe_port: int = 8080
    probe_host: str = "0.0.0.0"
    peering: str | None = None
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
    kube: Kube | None = None
    queue: WorkQueue | None = None
    executor: ThreadPoolExecutor | None = None
    reconciler: Reconciler | None = None

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        if self.queue is not None:
            self.queue.add((kind, namespace, name))

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self.book.forget((namespace, name))
        if self.reconciler is not None:
            self.reconciler.readings.forget((kind, namespace, name))
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
        with observe_reconcile(kind):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self.executor, self.reconciler.reconcile, adapter, snapshot
            )

    async def _persist_reports(self, namespace: str, name: str) -> bool:
        if self.queue is None:
            return False
        key = ("TrainingJob", namespace, name)
        return await self.queue.reconciled(key, PERSIST_TIMEOUT_SECONDS)

    def _on_report(self, namespace: str, name: str) -> None:
        if self.queue is not None:
            self.queue.add_after(("TrainingJob", namespace, name), REPORT_BATCH_SECONDS)

    async def start(self, indices: Mapping[str, Any]) -> None:
        """Start reconciling, then serving: the intake answers from its first request.
        `indices` are Kopf's (filled as the watches list)."""
        self.store.indices = indices
        issuer = load_issuer(self.options.intake_key_file)
        self.kube = Kube(api=load_api_client(), on_request=count_api_request)
        settings = OperatorSettings(
            metrics_base_url=self.options.metrics_base_url, issue_token=issuer.token_for
        )
        self.reconciler = Reconciler(
            kube=self.kube, settings=settings, book=self.book, find_object=self.find_object
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
        )
        await start_probe_server(
            self.probes, self.options.probe_host, self.options.probe_port, intake.routes()
        )
        LOGGER.info("probes, metrics and intake on port %d", self.probes.port)

    async def stop(self) -> None:
        self.probes.ready = False
        if self.queue is not None:
            await self.queue.stop()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        await stop_probe_server(self.probes)


def configure_settings(settings: kopf.OperatorSettings) -> None:
    """Keep Kopf's bookkeeping in annotations, post only explicit events, never hot-loop."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=BOOKKEEPING_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=BOOKKEEPING_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.batching.error_delays = (1, 2, 5, 10, 30, 60, 120)


def build_registry(operator: Operator, ready_flag: asyncio.Event) -> kopf.OperatorRegistry:
    """Kopf's registry for `operator`: generated kind handlers plus start-up and clean-up;
    /readyz turns ready when Kopf sets `ready_flag` (every watch started)."""
    registry = kopf.OperatorRegistry()
    index_names = register_kinds(registry, operator.adapters, operator.enqueue, operator.forget)

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


def run_operator(adapters: Mapping[str, AnyAdapter], options: OperatorOptions) -> None:
    """Run the operator until interrupted: blocks the calling thread."""
    kopf.configure(verbose=options.verbose)
    if not options.verbose:
        # One line per handled watch event is noise at the scale of pods; keep warnings.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    operator = Operator(adapters=adapters, options=options)
    loop = asyncio.new_event_loop()
    ready_flag = asyncio.Event()
    registry = build_registry(operator, ready_flag)
    namespaces = _watched_namespaces(options)
    kopf.run(
        loop=loop,
        registry=registry,
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=options.peering is None,
        peering_name=options.peering,
        ready_flag=ready_flag,
    )
