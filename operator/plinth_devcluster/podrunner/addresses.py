"""Cluster addresses made local: `.svc` hosts become loopback, gang ports become free ones,
and every pod gets a loopback address of its own as its pod IP."""

from __future__ import annotations

import re
import secrets
import socket
import threading
from collections.abc import Mapping

from plinth_devcluster.podrunner.pod import LOCAL_IP, AttemptKey, PodFacts

MASTER_PORT_VARIABLES = ("PET_MASTER_PORT", "MASTER_PORT")
SERVICE_ADDRESS = re.compile(
    r"(?P<host>[A-Za-z0-9][-A-Za-z0-9.]*\.svc(?:\.cluster\.local)?)(?::(?P<port>\d+))?(?=$|[/,])"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL_IP, 0))
        return int(probe.getsockname()[1])


class LocalAddresses:
    """Rewrites cluster addresses to loopback, with one table of local ports per attempt."""

    def __init__(self, service_ports: Mapping[str, int] | None = None) -> None:
        self._service_ports = dict(service_ports or {})
        self._lock = threading.Lock()
        self._ports: dict[AttemptKey, dict[str, int]] = {}
        self._taken: set[int] = set()

    def local_port(self, attempt: AttemptKey, port: str) -> int:
        """The local port standing for `port` in `attempt`; the same for every pod of it."""
        with self._lock:
            table = self._ports.setdefault(attempt, {})
            if port not in table:
                table[port] = self._new_port()
            return table[port]

    def _new_port(self) -> int:
        while (port := free_port()) in self._taken:
            pass
        self._taken.add(port)
        return port

    def localize(self, pod: PodFacts, environment: Mapping[str, str]) -> dict[str, str]:
        """`environment` with master ports and `.svc` addresses made local (see the package doc)."""
        localized = {name: self._addresses(pod, value) for name, value in environment.items()}
        for name in MASTER_PORT_VARIABLES:
            if localized.get(name, "").isdigit():
                localized[name] = str(self.local_port(pod.attempt, localized[name]))
        return localized

    def _addresses(self, pod: PodFacts, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            host, port = match["host"], match["port"]
            service = host.removesuffix(".cluster.local").removesuffix(".svc")
            if service in self._service_ports:
                return f"{LOCAL_IP}:{self._service_ports[service]}"
            if port is None:
                return LOCAL_IP
            if in_gang(pod, host):
                port = str(self.local_port(pod.attempt, port))
            return f"{LOCAL_IP}:{port}"

        return SERVICE_ADDRESS.sub(replace, value)


def in_gang(pod: PodFacts, host: str) -> bool:
    """Whether `host` names a pod of the same headless service: `<pod>.<subdomain>.<ns>.svc`."""
    labels = host.split(".")
    return pod.subdomain is not None and labels[1:4] == [pod.subdomain, pod.namespace, "svc"]


#: The part of 127.0.0.0/8 pod IPs are drawn from (127.0.0.1 and kwok's fake pods' range,
#: 127.128.0.0/16, stay out of it).
POD_IP_SECOND_OCTETS = range(64, 128)
POD_IP_ATTEMPTS = 200


def container_ports(pod: PodFacts) -> list[int]:
    """The TCP ports the pod's containers declare."""
    return [
        int(port["containerPort"])
        for container in pod.containers
        for port in container.get("ports") or ()
        if str(port.get("protocol", "TCP")) == "TCP"
    ]


def _binds(address: str, ports: list[int]) -> bool:
    sockets = []
    try:
        for port in ports:
            probe = socket.socket()
            sockets.append(probe)
            probe.bind((address, port))
    except OSError:
        return False
    finally:
        for probe in sockets:
            probe.close()
    return True


class PodIps:
    """Gives each local pod its own loopback address (its pod IP), on which every port
    its containers declare is free, as a pod network gives each pod its own IP."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: dict[str, str] = {}

    def assign(self, pod: PodFacts) -> str:
        with self._lock:
            if pod.uid in self._taken:
                return self._taken[pod.uid]
            ports = container_ports(pod)
            used = set(self._taken.values())
            for _ in range(POD_IP_ATTEMPTS):
                octets = (
                    secrets.choice(POD_IP_SECOND_OCTETS),
                    secrets.randbelow(256),
                    secrets.randbelow(254) + 1,
                )
                address = "127.{}.{}.{}".format(*octets)
                if address not in used and _binds(address, ports):
                    self._taken[pod.uid] = address
                    return address
        raise RuntimeError(f"no free loopback address for pod {pod.namespace}/{pod.name}")

    def release(self, uid: str) -> None:
        with self._lock:
            self._taken.pop(uid, None)
