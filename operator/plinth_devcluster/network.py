"""Loopback networking for the cluster: choosing free ports and probing health endpoints."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

PROBE_TIMEOUT = 2.0


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now (all bound at once, then released)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def verifying_context(ca: Path) -> ssl.SSLContext:
    """TLS that trusts only the cluster's CA."""
    return ssl.create_default_context(cafile=str(ca))


def unverified_context() -> ssl.SSLContext:
    """TLS for components' self-signed health endpoints on loopback."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def http_ok(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    """Whether GET `url` answers 200 (any connection error or other status: False)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False
