"""Operator start-up: Kopf settings, the probe and metrics server, and `plinth run`."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

import kopf

from plinth.handlers import automlsweep, modeldeployment, trainingjob, trainingjob_reports
from plinth.handlers.metrics import count_api_request
from plinth.handlers.probes import ProbeState, start_probe_server, stop_probe_server
from plinth.handlers.workqueue import WorkQueue
from plinth.kube.client import Kube, load_api_client

REGISTERED_KINDS = (trainingjob.KIND, automlsweep.KIND, modeldeployment.KIND)
BOOKKEEPING_PREFIX = "kopf.plinth.dev"
PROBES = ProbeState()
QUEUES: list[WorkQueue] = []


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


def _install_startup_handlers(options: OperatorOptions) -> None:
    @kopf.on.startup()
    async def start_probes(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings)
        await start_probe_server(
            PROBES, options.probe_host, options.probe_port, trainingjob_reports.ROUTES
        )
        logging.getLogger("plinth").info("probes and metrics on port %d", PROBES.port)
        kube = Kube(api=load_api_client(), on_request=count_api_request)
        QUEUES.append(trainingjob.start_controller(kube, options.metrics_base_url))

    @kopf.on.cleanup()
    async def stop_probes(**_: Any) -> None:
        PROBES.ready = False
        for queue in QUEUES:
            await queue.stop()
        await stop_probe_server(PROBES)


def _mark_ready_when_started(ready_flag: asyncio.Event) -> None:
    async def wait_and_mark() -> None:
        await ready_flag.wait()
        PROBES.ready = True

    @kopf.on.startup()
    async def watch_readiness(**_: Any) -> None:
        asyncio.get_running_loop().create_task(wait_and_mark())


def run_operator(options: OperatorOptions) -> None:
    """Run the operator until interrupted: blocks the calling thread."""
    kopf.configure(verbose=options.verbose)
    if not options.verbose:
        # One line per handled watch event is noise at the scale of pods; keep warnings.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    _install_startup_handlers(options)
    loop = asyncio.new_event_loop()
    ready_flag = asyncio.Event()
    _mark_ready_when_started(ready_flag)
    namespace_env = os.environ.get("PLINTH_WATCH_NAMESPACES", "")
    namespaces = options.namespaces or tuple(n for n in namespace_env.split(",") if n)
    kopf.run(
        loop=loop,
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=options.peering is None,
        peering_name=options.peering,
        ready_flag=ready_flag,
    )
