"""A real Triton Inference Server on a loopback address, serving a model repository made
by Plinth's own serving layer: the model loader fetches the model and writes the
config.pbtxt rendered from the ModelDeployment's spec, and tritonserver runs with the
arguments the builder gives the Triton container (plus the local backend folder and the
address, as the pod runner adds them)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from plinth.api.v1alpha1 import ModelDeploymentSpec
from plinth.api.wellknown import TRITON_HTTP_PORT, TRITON_METRICS_PORT
from plinth.builders.modeldeployment import triton_args
from plinth.serving.repository import REPOSITORY_PATH, ResolvedModel
from plinth.serving.triton_config import render_model_config
from plinth_client.model_loader import load
from plinth_devcluster.podrunner import triton
from plinth_devcluster.waiting import wait_for

TRITON_PORTS = (8000, 8001, 8002)


def free_loopback_address() -> str:
    """A 127.x.y.z address on which Triton's three ports are free."""
    for _ in range(100):
        octets = (
            secrets.choice(range(64, 128)),
            secrets.randbelow(256),
            secrets.randbelow(254) + 1,
        )
        address = "127.{}.{}.{}".format(*octets)
        sockets = []
        try:
            for port in TRITON_PORTS:
                probe = socket.socket()
                sockets.append(probe)
                probe.bind((address, port))
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
        return address
    raise RuntimeError("no free loopback address")


@dataclass
class LocalTriton:
    """A running tritonserver and where it answers."""

    process: subprocess.Popen[bytes]
    address: str
    repository: Path
    log: Path

    @property
    def http(self) -> str:
        return f"{self.address}:{TRITON_HTTP_PORT}"

    @property
    def grpc(self) -> str:
        return f"{self.address}:8001"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}:{TRITON_METRICS_PORT}/metrics"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def is_live(self) -> bool:
        with suppress(OSError), socket.create_connection((self.address, TRITON_HTTP_PORT), 0.5):
            return True
        return False


def make_repository(spec: ModelDeploymentSpec, root: Path) -> ResolvedModel:
    """What a replica's model-loader init container makes: the model and its config."""
    assert spec.model.uri is not None
    model = ResolvedModel(
        spec.model.name or "model", spec.model.version, spec.model.format, spec.model.uri
    )
    config = render_model_config(model.name, spec.model, spec.runtime, spec.resources.gpus)
    load(model.uri, model.format.value, root / model.name, model.version, config)
    return model


@contextmanager
def local_triton(
    spec: ModelDeploymentSpec, workdir: Path, *, wait_live: bool = True
) -> Iterator[LocalTriton]:
    """Triton serving `spec`'s model, as a replica would; stopped on leaving."""
    repository = workdir / "models"
    model = make_repository(spec, repository)
    args = [
        arg.replace(f"={REPOSITORY_PATH}", f"={repository}") for arg in triton_args(spec, model)
    ]
    address = free_loopback_address()
    env = {**os.environ, **{v.name: v.value or "" for v in spec.runtime.env}}
    log = workdir / "triton.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*triton.server_argv(address), *args],
            env=triton.server_environment(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LocalTriton(process, address, repository, log)
    try:
        if wait_live:
            wait_for(server.is_live, what="tritonserver to listen", timeout=60)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its backend stubs
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Load:
    """Requests sent by `clients` threads until stopped, at most `max_seconds` (loopback
    only, bounded in time and count)."""

    def __init__(self, send: Callable[[], object], clients: int, max_seconds: float = 60) -> None:
        self._send = send
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self.sent = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                self._send()
                ok = True
            except Exception:  # a failed request is counted, the load goes on
                ok = False
            with self._lock:
                self.sent += 1
                self.failed += not ok

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
