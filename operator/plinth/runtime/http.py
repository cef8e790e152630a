"""The operator's HTTP server: liveness (/healthz), readiness (/readyz), /metrics, intakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from plinth.runtime.metrics import REGISTRY


@dataclass
class ProbeState:
    """What the probes report: readiness flips once the operator has started watching."""

    ready: bool = False
    runner: web.AppRunner | None = field(default=None, repr=False)
    port: int = 0


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _readyz_handler(state: ProbeState) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(_request: web.Request) -> web.Response:
        if state.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="starting\n")

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
