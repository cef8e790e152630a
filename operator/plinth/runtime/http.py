"""The operator's HTTP server: liveness (/healthz), readiness (/readyz), /metrics, intakes.

/readyz is 200 once the replica has started watching, whether or not Kopf's peering holds
it paused: a standby is healthy, and a rolling update (maxSurge 0) or a disruption budget
waits for it to be Ready. Its answer tells which (`ready: active`, `ready: standby`); what
keeps training reports away from a standby is the intake Service, which selects the pod
labelled active (`runtime.podrole`), not readiness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from plinth.runtime.metrics import REGISTRY


def _never() -> bool:
    return False


@dataclass
class ProbeState:
    """What the probes report: ready once the operator has started watching; `paused()`
    (peering holds this replica as a standby) only tells which role it is ready in."""

    ready: bool = False
    paused: Callable[[], bool] = field(default=_never, repr=False)
    runner: web.AppRunner | None = field(default=None, repr=False)
    port: int = 0


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _readyz_handler(state: ProbeState) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(_request: web.Request) -> web.Response:
        if not state.ready:
            return web.Response(status=503, text="starting\n")
        if state.paused():
            return web.Response(text="ready: standby (paused by peering)\n")
        return web.Response(text="ready: active\n")

    return readyz


async def _metrics(_request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]


async def start_probe_server(
    state: ProbeState, host: str, port: int, extra_routes: Sequence[Route] = ()
) -> None:
    """Serve the probes (and `extra_routes`) on host:port; port 0 picks a free one."""
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz_handler(state))
    app.router.add_get("/metrics", _metrics)
    for method, path, handler in extra_routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host=host, port=port)
    await site.start()
    state.runner = runner
    state.port = runner.addresses[0][1]


async def stop_probe_server(state: ProbeState) -> None:
    """Stop serving the probes."""
    if state.runner is not None:
        await state.runner.cleanup()
        state.runner = None
