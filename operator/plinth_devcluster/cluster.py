"""Start, inspect and stop one emulated cluster: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok with fake GPU nodes, all on loopback ports chosen free at start.

`up` waits until the API server is ready, the controller manager and scheduler are healthy,
every fake node is Ready and the `default` ServiceAccount exists, then returns a `ClusterInfo`
whose kubeconfig works with kubectl and the Kubernetes Python client. `down` stops every
program `up` started (even from another process, even after an interrupted `up`) and checks
that none is left.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from plinth_devcluster import components, kubeflow, kueue
from plinth_devcluster.binaries import Binaries, ensure_binaries, say
from plinth_devcluster.components import ComponentFiles, Program
from plinth_devcluster.gobuild import Progress, format_duration, tail
from plinth_devcluster.kubeconfig import (
    certificate_credentials,
    token_credentials,
    write_kubeconfig,
)
from plinth_devcluster.network import free_ports, http_ok, unverified_context, verifying_context
from plinth_devcluster.nodes import (
    DEFAULT_GPU_PRODUCT,
    GpuNodePool,
    api_client,
    create_nodes,
    wait_nodes_ready,
)
from plinth_devcluster.pki import ClientIdentity, write_cluster_pki
from plinth_devcluster.processes import ProcessRecord, is_alive, spawn, stop_all, wait_reaped
from plinth_devcluster.state import (
    DEFAULT_NAME,
    ClusterRecord,
    Layout,
    Ports,
    load_record,
    save_record,
)
from plinth_devcluster.waiting import no_watchdog, wait_for

PROGRAMS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
#: Optional programs `up(addons=...)` starts after the rest (see `kueue.py`, `kubeflow.py`).
ADDONS = (kueue.NAME, kubeflow.NAME)
# Clients first, then the API server, then etcd: each exits at once while what it talks to
# still runs (an API server whose etcd is gone takes 20 s and more to give up).
SHUTDOWN_ORDER = (
    (kueue.NAME, kubeflow.NAME, "kwok", "kube-scheduler", "kube-controller-manager"),
    ("kube-apiserver",),
    ("etcd",),
)
NODE_SECONDS = 0.25  # readiness allowance per node, for pools of thousands
CLIENTS = {
    "controller-manager": ClientIdentity("system:kube-controller-manager"),
    "scheduler": ClientIdentity("system:kube-scheduler"),
    "kwok": ClientIdentity("kwok", ("system:masters",)),
    components.FRONT_PROXY_CLIENT: ClientIdentity(components.FRONT_PROXY_CLIENT),
}


@dataclass(frozen=True)
class ClusterInfo:
    """A running emulated cluster: where its files are and how to reach it."""

    name: str
    state_dir: Path
    kubeconfig: Path
    api_url: str
    binaries: Binaries

    @property
    def kubectl(self) -> Path:
        return self.binaries.kubectl

    @property
    def helm(self) -> Path:
        return self.binaries.helm


@dataclass(frozen=True)
class ProcessState:
    """One recorded program of a cluster, and whether it still runs."""

    name: str
    pid: int
    alive: bool
    log: Path


@dataclass(frozen=True)
class ClusterStatus:
    """What `status` found in a state folder."""

    name: str
    state_dir: Path
    processes: tuple[ProcessState, ...]
    cluster: ClusterInfo | None

    @property
    def running(self) -> bool:
        return bool(self.processes) and all(p.alive for p in self.processes)


class ClusterAlreadyRunningError(RuntimeError):
    """`up` found this cluster running; `cluster` says how to reach it."""

    def __init__(self, cluster: ClusterInfo) -> None:
        super().__init__(
            f"cluster {cluster.name!r} is already running (state in {cluster.state_dir})"
        )
        self.cluster = cluster


class ProgramExitedError(RuntimeError):
    """A program of the cluster exited while it was starting; the message has its log's end."""


@dataclass(frozen=True)
class Plan:
    """Everything one `up` decided before starting anything."""

    layout: Layout
    cluster: ClusterInfo
    ports: Ports
    files: ComponentFiles
    token: str
    timeout: float
    progress: Progress
    #: Whether the control plane serves Kubernetes' gang scheduling (Workload/PodGroup API).
    native_gang: bool = True


class Startup:
    """One `up` in progress: starts and records programs, waits for each to be ready."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.record = ClusterRecord(
            name=plan.cluster.name, api_url=plan.cluster.api_url, ports=plan.ports
        )
        save_record(plan.layout, self.record)

    def start(self, program: Program) -> ProcessRecord:
        log = self.plan.layout.log(program.name)
        started = spawn(program.name, program.argv, log, program.environment())
        self.record = self.record.with_process(started)
        save_record(self.plan.layout, self.record)
        return started

    def check_alive(self) -> None:
        """Raise ProgramExitedError if any started program is gone (a watchdog for waits)."""
        for process in self.record.processes:
            if not is_alive(process):
                raise ProgramExitedError(
                    f"{process.name} exited; end of {process.log}:\n{tail(process.log)}"
                )

    def ready(self, what: str, check: Callable[[], bool]) -> None:
        """Wait for `check`, failing fast if a program exits; report how long it took."""
        took = wait_for(check, what=what, timeout=self.plan.timeout, watchdog=self.check_alive)
        self.plan.progress(f"  {what}: ready ({format_duration(took)})")

    def start_control_plane(self) -> None:
        """etcd, then the API server, then the controller manager, scheduler and kwok together."""
        plan, binaries = self.plan, self.plan.cluster.binaries
        layout, ports, files = plan.layout, plan.ports, plan.files
        api_ca = verifying_context(files.pki.ca.cert)
        self.start(components.etcd(binaries, layout, ports))
        self.ready("etcd", lambda: http_ok(f"{loopback_url('http', ports.etcd_client)}/health"))
        gang = plan.native_gang
        self.start(components.kube_apiserver(binaries, layout, ports, files, native_gang=gang))
        readyz = f"{plan.cluster.api_url}/readyz"
        self.ready("kube-apiserver", lambda: http_ok(readyz, context=api_ca, token=plan.token))
        manager = components.kube_controller_manager(
            binaries, layout, ports, files, native_gang=gang
        )
        self.start(manager)
        self.start(components.kube_scheduler(binaries, layout, ports, files, native_gang=gang))
        self.start(components.kwok(binaries, layout, files))
        self.ready("kube-controller-manager", lambda: healthz(ports.controller_manager))
        self.ready("kube-scheduler", lambda: healthz(ports.scheduler))

    def populate(self, pool: GpuNodePool) -> None:
        """Create the fake GPU nodes; wait for them to be Ready and the default ServiceAccount."""
        progress = self.plan.progress
        with api_client(self.plan.cluster.kubeconfig) as api:
            timeout = max(self.plan.timeout, pool.count * NODE_SECONDS)
            took = add_gpu_nodes(api, pool, timeout=timeout, watchdog=self.check_alive)
            gpus = f"{pool.gpus_per_node} x {pool.gpu_product}"
            progress(f"  {pool.count} nodes with {gpus}: Ready ({format_duration(took)})")
            self.ready("default ServiceAccount", lambda: default_service_account_exists(api))

    def stop(self) -> None:
        stop_programs(self.record.processes)


def stop_programs(processes: Sequence[ProcessRecord]) -> None:
    """Stop the programs started beside the cluster (`companions`: the operator, the pod
    runner), then the cluster's in SHUTDOWN_ORDER; raise if any survives."""
    staged = {name for stage in SHUTDOWN_ORDER for name in stage}
    stop_all([p for p in processes if p.name not in staged])
    for stage in SHUTDOWN_ORDER:
        stop_all([p for p in processes if p.name in stage])
    wait_reaped(processes)


def loopback_url(scheme: str, port: int) -> str:
    return f"{scheme}://{components.LOOPBACK}:{port}"


def healthz(port: int) -> bool:
    """Whether a component's self-signed HTTPS health endpoint on loopback answers 200."""
    return http_ok(f"{loopback_url('https', port)}/healthz", context=unverified_context())


def up(
    name: str = DEFAULT_NAME,
    *,
    state_dir: Path | None = None,
    nodes: int = 4,
    gpus_per_node: int = 8,
    gpu_product: str = DEFAULT_GPU_PRODUCT,
    gpu_taint: bool = False,
    native_gang: bool = True,
    addons: Sequence[str] = (),
    kubeflow_threads: int = kubeflow.DEFAULT_THREADS,
    timeout: float = 120.0,
    progress: Progress = say,
) -> ClusterInfo:
    """Start the cluster `name` (state in `state_dir`) and wait until it is ready to use.

    `native_gang` serves Kubernetes' own gang scheduling (the scheduling.k8s.io/v1beta1
    Workload and PodGroup API, feature gate GenericWorkload); False gives a control plane
    without it, as most clusters have.

    `addons` names optional programs to start too: `("kueue",)` installs and starts real
    Kueue (see `kueue.py`); `("kubeflow",)` the Kubeflow training operator, with
    `kubeflow_threads` reconcile workers (see `kubeflow.py`).

    Raises ClusterAlreadyRunningError if it runs already. On any failure, every program
    started is stopped again and the logs stay in `<state_dir>/logs`.
    """
    layout = Layout.of(name, state_dir)
    pool = GpuNodePool(nodes, gpus_per_node, gpu_product, taint=gpu_taint)
    binaries = ensure_binaries(progress=progress)
    kueue_binary = kueue.binary(progress) if kueue.NAME in check_addons(addons) else None
    kubeflow_binary = kubeflow.binary(progress) if kubeflow.NAME in addons else None
    stop_leftovers_or_refuse(layout, binaries, progress)
    began = time.monotonic()
    layout.reset()
    ports = Ports(*free_ports(5))
    cluster = ClusterInfo(
        name=name,
        state_dir=layout.root,
        kubeconfig=layout.kubeconfig,
        api_url=loopback_url("https", ports.apiserver),
        binaries=binaries,
    )
    token = secrets.token_urlsafe(32)
    files = write_component_files(layout, cluster, token)
    plan = Plan(layout, cluster, ports, files, token, timeout, progress, native_gang)
    startup = Startup(plan)
    try:
        startup.start_control_plane()
        startup.populate(pool)
        if kueue_binary is not None:
            kueue.start(startup, layout, kueue_binary, binaries.kubectl, cluster.kubeconfig)
        if kubeflow_binary is not None:
            kubeflow.start(
                startup,
                layout,
                kubeflow_binary,
                binaries.kubectl,
                cluster.kubeconfig,
                threads=kubeflow_threads,
            )
    except BaseException:
        startup.stop()
        raise
    progress(f"cluster {name!r} ready in {format_duration(time.monotonic() - began)}")
    return cluster


def check_addons(addons: Sequence[str]) -> Sequence[str]:
    """`addons`, if each is known; ValueError names the known ones otherwise."""
    if unknown := set(addons) - set(ADDONS):
        raise ValueError(f"unknown add-ons {sorted(unknown)}; known: {', '.join(ADDONS)}")
    return addons


def stop_leftovers_or_refuse(layout: Layout, binaries: Binaries, progress: Progress) -> None:
    """Refuse if this cluster runs; stop what a crashed or interrupted run left behind."""
    record = load_record(layout)
    if record is None:
        return
    alive = [p for p in record.processes if is_alive(p)]
    if {p.name for p in alive} >= set(PROGRAMS):
        raise ClusterAlreadyRunningError(cluster_info(layout, record, binaries))
    if alive:
        progress(f"stopping what an earlier run left: {', '.join(p.name for p in alive)}")
        stop_programs(alive)


def cluster_info(layout: Layout, record: ClusterRecord, binaries: Binaries) -> ClusterInfo:
    return ClusterInfo(
        name=record.name,
        state_dir=layout.root,
        kubeconfig=layout.kubeconfig,
        api_url=record.api_url,
        binaries=binaries,
    )


def write_component_files(layout: Layout, cluster: ClusterInfo, token: str) -> ComponentFiles:
    """Keys, certificates, the token file and every component's kubeconfig."""
    pki = write_cluster_pki(layout.pki, layout.name, components.SERVICE_IP, CLIENTS)
    token_file = layout.pki / "tokens.csv"
    token_file.write_text(f'{token},admin,admin,"system:masters"\n')
    token_file.chmod(0o600)
    context = f"plinth-{layout.name}"

    def kubeconfig(path: Path, credentials: dict[str, str]) -> Path:
        return write_kubeconfig(
            path, context=context, server=cluster.api_url, ca=pki.ca.cert, credentials=credentials
        )

    def component_kubeconfig(client_name: str) -> Path:
        credentials = certificate_credentials(pki.clients[client_name])
        return kubeconfig(layout.config / f"{client_name}.kubeconfig", credentials)

    kubeconfig(cluster.kubeconfig, token_credentials(token))
    return ComponentFiles(
        pki=pki,
        token_file=token_file,
        controller_manager_kubeconfig=component_kubeconfig("controller-manager"),
        scheduler_kubeconfig=component_kubeconfig("scheduler"),
        kwok_kubeconfig=component_kubeconfig("kwok"),
        kwok_config=components.write_kwok_config(layout.config / "kwok.yaml"),
    )


def add_gpu_nodes(
    api: client.ApiClient,
    pool: GpuNodePool,
    *,
    timeout: float = 300.0,
    watchdog: Callable[[], None] = no_watchdog,
) -> float:
    """Create a pool of fake GPU nodes in a running cluster; return seconds until all Ready."""
    began = time.monotonic()
    create_nodes(api, pool)
    wait_nodes_ready(api, pool, timeout=timeout, watchdog=watchdog)
    return time.monotonic() - began


def default_service_account_exists(api: client.ApiClient) -> bool:
    try:
        client.CoreV1Api(api).read_namespaced_service_account("default", "default")
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def down(name: str = DEFAULT_NAME, *, state_dir: Path | None = None) -> int:
    """Stop every program of the cluster and verify none is left; return how many were stopped."""
    layout = Layout.of(name, state_dir)
    record = load_record(layout)
    if record is None:
        return 0
    alive = [p for p in record.processes if is_alive(p)]
    stop_programs(alive)
    return len(alive)


def status(name: str = DEFAULT_NAME, *, state_dir: Path | None = None) -> ClusterStatus:
    """Which recorded programs of the cluster still run."""
    layout = Layout.of(name, state_dir)
    record = load_record(layout)
    if record is None:
        return ClusterStatus(name=name, state_dir=layout.root, processes=(), cluster=None)
    processes = tuple(
        ProcessState(name=p.name, pid=p.pid, alive=is_alive(p), log=p.log) for p in record.processes
    )
    return ClusterStatus(
        name=name,
        state_dir=layout.root,
        processes=processes,
        cluster=cluster_info(layout, record, Binaries.from_cache()),
    )
