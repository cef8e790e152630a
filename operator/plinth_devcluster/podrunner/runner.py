"""The pod runner: the cluster's `runner: local` pods run as local processes.

`PodRunner` ties the parts together: `PodWatch` hands it pod events, `Launcher` starts a
bound pod's process, `supervision` reports and ends it, `KubeletApi` writes to the cluster.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubernetes import client

from plinth_devcluster.nodes import api_client
from plinth_devcluster.podrunner import supervision
from plinth_devcluster.podrunner.addresses import LocalAddresses, PodIps
from plinth_devcluster.podrunner.command import DEFAULT_IMAGES, LocalImage
from plinth_devcluster.podrunner.kubelet_api import KubeletApi
from plinth_devcluster.podrunner.launch import Launcher, PodRun, StartedPod
from plinth_devcluster.podrunner.logs import PodFiles
from plinth_devcluster.podrunner.pod import ContainerConfigError, PodFacts
from plinth_devcluster.podrunner.status import waiting_status
from plinth_devcluster.podrunner.watch import PodWatch
from plinth_devcluster.waiting import wait_for

log = logging.getLogger(__name__)


class PodRunner:
    """Runs the cluster's `runner: local` pods as local processes (see the package doc).

    `start()` lists and watches pods in a background thread; `stop()` stops watching, kills
    every process started (SIGTERM, SIGKILL after `stop_grace_seconds`) and checks none is
    left. Also a context manager.
    """

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        namespace: str | None = None,
        images: Mapping[str, LocalImage] = DEFAULT_IMAGES,
        service_ports: Mapping[str, int] | None = None,
        watch_seconds: int = 2,
        stop_grace_seconds: float = 5.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.namespace = namespace
        self.images = images
        self.watch_seconds = watch_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.files = PodFiles(log_dir)
        self._api: client.ApiClient | None = None
        self._addresses = LocalAddresses(service_ports)
        self._pod_ips = PodIps()
        self._runs: dict[str, PodRun] = {}
        self._blocked: dict[str, tuple[PodFacts, str]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- public API --

    def start(self) -> PodRunner:
        if self._watcher is not None:
            raise RuntimeError("this PodRunner was started already")
        self._api = api_client(self.kubeconfig)
        pods = PodWatch(self.core, self.namespace, self.watch_seconds, self._stopping)
        self._watcher = threading.Thread(
            target=pods.run, args=(self._handle, self._housekeeping), name="podrunner", daemon=True
        )
        self._watcher.start()
        return self

    def stop(self) -> None:
        """Stop watching, kill every process started, and check that none is left."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self.watch_seconds + 30)
        runs = self.runs()
        for run in runs:
            run.stop(self.stop_grace_seconds)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=self.stop_grace_seconds + 10)
        wait_for(
            lambda: all(run.exited for run in runs),
            what="every process of the pod runner to exit",
            timeout=self.stop_grace_seconds + 10,
        )
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]  # the client is untyped

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def log_path(self, namespace: str, name: str) -> Path:
        """Where the process of pod `namespace/name` writes stdout and stderr."""
        return self.files.log(namespace, name)

    def log_text(self, namespace: str, name: str) -> str:
        return self.files.log_text(namespace, name)

    def runs(self) -> list[PodRun]:
        with self._lock:
            return list(self._runs.values())

    def started(self, namespace: str | None = None) -> list[StartedPod]:
        """What was started, oldest first (optionally only in `namespace`)."""
        return [
            run.started
            for run in self.runs()
            if namespace is None or run.started.namespace == namespace
        ]

    # -- the API server --

    @property
    def core(self) -> client.CoreV1Api:
        assert self._api is not None, "start() the PodRunner first"
        return client.CoreV1Api(self._api)

    @property
    def kubelet(self) -> KubeletApi:
        return KubeletApi(self.core)

    # -- pod events --

    def _handle(self, event: str, raw: Mapping[str, Any]) -> None:
        """One pod event; errors are logged, never raised into the watch."""
        try:
            pod = PodFacts.parse(raw)
            if pod.is_local:
                self._reconcile(event, pod)
        except Exception:
            log.exception("pod runner: handling %s of a pod failed", event)

    def _reconcile(self, event: str, pod: PodFacts) -> None:
        with self._lock:
            run = self._runs.get(pod.uid)
        if event == "DELETED":
            self._blocked.pop(pod.uid, None)
            if run is not None:
                run.stop(min(pod.grace_seconds, self.stop_grace_seconds))
        elif pod.terminating:
            self._blocked.pop(pod.uid, None)
            supervision.terminate(pod, run, self.kubelet)
        elif run is None and self._should_start(pod):
            self._start(pod)

    def _housekeeping(self) -> None:
        """Between watches: retry pods that could not start, obey deleted nodes."""
        self._retry_blocked()
        supervision.kill_on_lost_nodes(self.runs(), self.kubelet)

    # -- starting --

    def _should_start(self, pod: PodFacts) -> bool:
        """Bound to a node, not started yet, and this runner is not stopping."""
        return bool(pod.node_name) and pod.phase == "Pending" and not self._stopping.is_set()

    def _start(self, pod: PodFacts) -> None:
        launcher = Launcher(self.core, self._addresses, self.images, self.files)
        try:
            pod = replace(pod, pod_ip=self._pod_ips.assign(pod))
            started = launcher.prepare(pod)
        except (ContainerConfigError, RuntimeError) as error:
            self._pod_ips.release(pod.uid)
            self._block(pod, str(error))
            return
        self._blocked.pop(pod.uid, None)
        run = launcher.launch(pod, started)
        run.thread = threading.Thread(
            target=self._supervise, args=(run, launcher), name=f"pod-{pod.name}", daemon=True
        )
        with self._lock:
            self._runs[pod.uid] = run
        run.thread.start()

    def _supervise(self, run: PodRun, launcher: Launcher) -> None:
        try:
            supervision.supervise(run, self.kubelet, self._stopping, launcher)
        finally:
            self._pod_ips.release(run.pod.uid)

    def _block(self, pod: PodFacts, message: str) -> None:
        """Report a container that cannot start (once per message); retried by the watch."""
        previous = self._blocked.get(pod.uid)
        self._blocked[pod.uid] = (pod, message)
        if previous is None or previous[1] != message:
            log.warning("pod runner: %s/%s cannot start: %s", pod.namespace, pod.name, message)
            container = pod.containers[0] if pod.containers else None
            self.kubelet.report(pod, waiting_status(container, message))

    def _retry_blocked(self) -> None:
        for pod, _ in list(self._blocked.values()):
            self._start(pod)


@contextmanager
def running(
    kubeconfig: Path,
    log_dir: Path,
    *,
    namespace: str | None = None,
    images: Mapping[str, LocalImage] = DEFAULT_IMAGES,
    service_ports: Mapping[str, int] | None = None,
    stop_grace_seconds: float = 5.0,
) -> Iterator[PodRunner]:
    """A started PodRunner (see `PodRunner`), stopped (every process killed) on leaving."""
    with PodRunner(
        kubeconfig,
        log_dir,
        namespace=namespace,
        images=images,
        service_ports=service_ports,
        stop_grace_seconds=stop_grace_seconds,
    ) as runner:
        yield runner
