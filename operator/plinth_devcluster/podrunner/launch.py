"""A bound pod made local processes: what to run (argv, environment, log) for each of its
init containers and its container, then their start."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubernetes import client

from plinth_devcluster.podrunner import triton
from plinth_devcluster.podrunner.addresses import LocalAddresses
from plinth_devcluster.podrunner.command import LocalImage, local_argv
from plinth_devcluster.podrunner.environment import EnvironmentResolver, base_environment
from plinth_devcluster.podrunner.logs import PodFiles
from plinth_devcluster.podrunner.pod import LOCAL_IP, PodFacts
from plinth_devcluster.podrunner.process import LocalProcess
from plinth_devcluster.podrunner.status import now
from plinth_devcluster.podrunner.volumes import local_volumes, mount_table


@dataclass(frozen=True)
class PreparedContainer:
    """One container of a pod, ready to run as a local process."""

    name: str
    argv: tuple[str, ...]
    environment: Mapping[str, str]
    log: Path
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class StartedPod:
    """What the runner started for a pod: a record for tests to read."""

    namespace: str
    name: str
    uid: str
    argv: tuple[str, ...]
    environment: Mapping[str, str]
    log: Path
    pid: int
    pod_ip: str = LOCAL_IP
    init_containers: tuple[PreparedContainer, ...] = ()


@dataclass
class PodRun:
    """A pod this runner started: its current process and how its end must be handled."""

    pod: PodFacts
    started: StartedPod
    process: LocalProcess | None
    started_at: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    deletion_requested: bool = False
    node_lost: bool = False
    stop_requested: bool = False
    thread: threading.Thread | None = None

    @property
    def exited(self) -> bool:
        """Whether no process of the pod is running."""
        return self.process is None or self.process.exited

    def stop(self, grace_seconds: float) -> None:
        """Stop the running process (if any) and start no other."""
        with self.lock:
            self.stop_requested = True
            process = self.process
        if process is not None:
            process.stop(grace_seconds)

    def kill(self) -> None:
        with self.lock:
            self.stop_requested = True
            process = self.process
        if process is not None:
            process.kill()


class Launcher:
    """Prepares a pod's processes (may raise ContainerConfigError), then starts them."""

    def __init__(
        self,
        core: client.CoreV1Api,
        addresses: LocalAddresses,
        images: Mapping[str, LocalImage],
        files: PodFiles,
    ) -> None:
        self._resolver = EnvironmentResolver(core)
        self._addresses = addresses
        self._images = images
        self._files = files

    def _prepare(
        self, pod: PodFacts, container: Mapping[str, Any], volumes: Mapping[str, Path], log: Path
    ) -> PreparedContainer:
        resolved = self._resolver.resolve(pod, container)
        contract = self._addresses.localize(pod, resolved)
        mounts = mount_table(container, volumes)
        argv = local_argv(container, contract, self._images, pod_ip=pod.pod_ip, mounts=mounts)
        environment = {**base_environment(), "HOSTNAME": pod.hostname, **contract}
        if Path(argv[0]).name == "tritonserver":
            environment = triton.server_environment(environment)
        return PreparedContainer(str(container["name"]), tuple(argv), environment, log, container)

    def prepare(self, pod: PodFacts) -> StartedPod:
        workdir = self._files.workdir(pod.namespace, pod.name)
        volumes = local_volumes(pod, workdir, self._files.root / "claims")
        log = self._files.log(pod.namespace, pod.name)
        main = self._prepare(pod, pod.container, volumes, log)
        init = tuple(
            self._prepare(
                pod,
                container,
                volumes,
                self._files.log(pod.namespace, f"{pod.name}.{container['name']}"),
            )
            for container in pod.init_containers
        )
        return StartedPod(
            namespace=pod.namespace,
            name=pod.name,
            uid=pod.uid,
            argv=main.argv,
            environment=main.environment,
            log=log,
            pid=0,
            pod_ip=pod.pod_ip,
            init_containers=init,
        )

    def start(self, pod: PodFacts, container: PreparedContainer) -> LocalProcess:
        workdir = self._files.workdir(pod.namespace, pod.name)
        return LocalProcess(container.argv, container.environment, container.log, workdir)

    def main_container(self, started: StartedPod, pod: PodFacts) -> PreparedContainer:
        return PreparedContainer(
            pod.container["name"], started.argv, started.environment, started.log, pod.container
        )

    def launch(self, pod: PodFacts, started: StartedPod) -> PodRun:
        """The pod's run; its container starts now unless init containers must run first."""
        if started.init_containers:
            return PodRun(pod, started, None, now())
        process = self.start(pod, self.main_container(started, pod))
        return PodRun(pod, replace(started, pid=process.pid), process, now())
