"""A kubelet's probes for a local container: startup, readiness and liveness.

As the kubelet runs them: each probe every `periodSeconds` after `initialDelaySeconds`;
until the startup probe succeeds the container is not ready and liveness is not checked,
and `failureThreshold` startup failures restart it; then readiness decides the container's
Ready (not ready until it first succeeds), and `failureThreshold` liveness failures
restart it. httpGet (2xx and 3xx succeed) and tcpSocket probes run against the pod IP;
a container without a readiness probe is ready once started.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HTTP_OK_MIN, HTTP_OK_MAX = 200, 400


@dataclass(frozen=True)
class Probe:
    """One probe of a container, resolved to an address."""

    kind: str
    url: str | None
    tcp: tuple[str, int] | None
    period: float
    timeout: float
    initial_delay: float
    failure_threshold: int
    success_threshold: int

    def check(self) -> bool:
        if self.url is not None:
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as answer:
                    return HTTP_OK_MIN <= int(answer.status) < HTTP_OK_MAX
            except urllib.error.HTTPError as error:
                return HTTP_OK_MIN <= int(error.code) < HTTP_OK_MAX
            except (OSError, ValueError):
                return False
        assert self.tcp is not None
        try:
            with socket.create_connection(self.tcp, timeout=self.timeout):
                return True
        except OSError:
            return False


def _port(value: Any, container: Mapping[str, Any]) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or ():
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"probe port {value!r} is not a port of the container")


def parse_probe(
    kind: str, probe: Mapping[str, Any] | None, container: Mapping[str, Any], address: str
) -> Probe | None:
    """A container's probe of `kind` (None when it has none, or one of another type)."""
    if not probe:
        return None
    url, tcp = None, None
    if http := probe.get("httpGet"):
        host = http.get("host") or address
        url = f"http://{host}:{_port(http['port'], container)}{http.get('path', '/')}"
    elif tcp_socket := probe.get("tcpSocket"):
        tcp = (tcp_socket.get("host") or address, _port(tcp_socket["port"], container))
    else:
        return None
    return Probe(
        kind=kind,
        url=url,
        tcp=tcp,
        period=float(probe.get("periodSeconds", 10)),
        timeout=float(probe.get("timeoutSeconds", 1)),
        initial_delay=float(probe.get("initialDelaySeconds", 0)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        success_threshold=int(probe.get("successThreshold", 1)),
    )


@dataclass
class _Track:
    probe: Probe
    next_at: float
    failures: int = 0
    successes: int = 0

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def run(self, now: float) -> bool:
        self.next_at = now + self.probe.period
        if self.probe.check():
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        return self.failures == 0


@dataclass(frozen=True)
class ProbeResult:
    """What the probes say after a tick: ready or not, and why to restart, if so."""

    started: bool
    ready: bool
    restart: str | None = None


@dataclass
class Prober:
    """The probes of one running container (see the module doc)."""

    startup: _Track | None
    readiness: _Track | None
    liveness: _Track | None
    started: bool = False
    ready: bool = False
    tracks: list[_Track] = field(default_factory=list)

    @classmethod
    def of(cls, container: Mapping[str, Any], address: str, started_at: float) -> Prober:
        def track(kind: str, key: str) -> _Track | None:
            probe = parse_probe(kind, container.get(key), container, address)
            return _Track(probe, started_at + probe.initial_delay) if probe else None

        startup = track("Startup", "startupProbe")
        return cls(
            startup=startup,
            readiness=track("Readiness", "readinessProbe"),
            liveness=track("Liveness", "livenessProbe"),
            started=startup is None,
        )

    @property
    def has_probes(self) -> bool:
        return any((self.startup, self.readiness, self.liveness))

    def tick(self, now: float) -> ProbeResult:
        if not self.started:
            return self._starting(now)
        if self.liveness and self.liveness.due(now):
            self.liveness.run(now)
            if self.liveness.failures >= self.liveness.probe.failure_threshold:
                return ProbeResult(True, False, "Liveness probe failed")
        if self.readiness is None:
            self.ready = True
        elif self.readiness.due(now):
            self.readiness.run(now)
            if self.readiness.successes >= self.readiness.probe.success_threshold:
                self.ready = True
            elif self.readiness.failures >= self.readiness.probe.failure_threshold:
                self.ready = False
        return ProbeResult(True, self.ready)

    def _starting(self, now: float) -> ProbeResult:
        assert self.startup is not None
        if self.startup.due(now):
            if self.startup.run(now):
                self.started = True
                if self.readiness is not None:
                    self.readiness.next_at = now
                if self.liveness is not None:
                    self.liveness.next_at = now + self.liveness.probe.period
                return self.tick(now)
            if self.startup.failures >= self.startup.probe.failure_threshold:
                return ProbeResult(False, False, "Startup probe failed")
        return ProbeResult(False, False)
