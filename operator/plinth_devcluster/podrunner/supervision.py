"""A started pod's life, as a kubelet leads it: its init containers in order, then its
container with its probes (readiness reported as it changes, a failed startup or liveness
probe restarts it), restarts as `restartPolicy` asks (with a backoff, shorter than a
kubelet's: 2 s doubling to 60 s), the end reported, deletion finished, node loss obeyed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from plinth_devcluster.podrunner.kubelet_api import KubeletApi
from plinth_devcluster.podrunner.launch import Launcher, PodRun, PreparedContainer
from plinth_devcluster.podrunner.pod import PodFacts
from plinth_devcluster.podrunner.probes import Prober
from plinth_devcluster.podrunner.process import LocalProcess
from plinth_devcluster.podrunner.status import (
    InitStates,
    MainState,
    initializing_status,
    now,
    running_status,
    terminated_state,
    terminated_status,
)

PROBE_TICK_SECONDS = 0.5
BACKOFF_SECONDS = (2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
MESSAGE_LIMIT = 1024


def backoff(restarts: int) -> float:
    return BACKOFF_SECONDS[min(restarts, len(BACKOFF_SECONDS) - 1)]


def last_line(container: PreparedContainer) -> str:
    """The container's last line of output (its termination message on failure)."""
    try:
        lines = container.log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][-MESSAGE_LIMIT:] if lines else ""


def _ending(run: PodRun, stopping: threading.Event) -> bool:
    with run.lock:
        return stopping.is_set() or run.stop_requested or run.deletion_requested or run.node_lost


def _start(run: PodRun, launcher: Launcher, container: PreparedContainer) -> LocalProcess | None:
    with run.lock:
        if run.stop_requested or run.deletion_requested or run.node_lost:
            return None
        run.process = launcher.start(run.pod, container)
        return run.process


def _wait(seconds: float, run: PodRun, stopping: threading.Event) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not _ending(run, stopping):
        time.sleep(min(0.2, seconds))


# --------------------------------------------------------------------------------------
# Init containers
# --------------------------------------------------------------------------------------


def _initialize(
    run: PodRun, kubelet: KubeletApi, stopping: threading.Event, launcher: Launcher
) -> bool:
    """Run the init containers in order; False when the pod will not start (it failed
    for good, or is being deleted)."""
    inits = run.started.init_containers
    specs = [c.spec for c in inits]
    states: list[dict[str, Any]] = [{"waiting": {"reason": "PodInitializing"}} for _ in inits]
    failures: dict[int, dict[str, Any]] = {}
    restarts = 0
    index = 0
    while index < len(inits):
        process = _start(run, launcher, inits[index])
        if process is None:
            return False
        states[index] = {"running": {"startedAt": now()}}
        report = InitStates(specs, list(states), dict(failures), restarts)
        kubelet.report(
            run.pod, initializing_status(run.pod.containers, report, run.pod.pod_ip, run.started_at)
        )
        code = process.wait()
        if _ending(run, stopping):
            return False
        if code == 0:
            states[index] = terminated_state(process.pid, run.started_at, 0)
            failures.pop(index, None)
            index += 1
            continue
        failures[index] = terminated_state(
            process.pid, run.started_at, code, last_line(inits[index])
        )
        if run.pod.restart_policy == "Never":
            status = terminated_status(run.pod.container, process.pid, run.started_at, code)
            status["initContainerStatuses"] = InitStates(specs, states, failures).statuses()
            kubelet.report(run.pod, status)
            return False
        states[index] = {"waiting": {"reason": "CrashLoopBackOff"}}
        report = InitStates(specs, list(states), dict(failures), restarts + 1)
        kubelet.report(
            run.pod, initializing_status(run.pod.containers, report, run.pod.pod_ip, run.started_at)
        )
        _wait(backoff(restarts), run, stopping)
        restarts += 1
    return True


# --------------------------------------------------------------------------------------
# The container and its probes
# --------------------------------------------------------------------------------------


@dataclass
class _Life:
    """The container's life so far: restarts, its last end, its current readiness."""

    restarts: int = 0
    last_state: dict[str, Any] | None = None
    ready: bool = True
    restart_reason: str | None = None
    inits: InitStates = field(default_factory=InitStates)


def _report_running(
    run: PodRun, kubelet: KubeletApi, process: LocalProcess, life: _Life, waiting: str | None = None
) -> None:
    main = MainState(
        pid=process.pid,
        started=now(),
        ready=life.ready and waiting is None,
        restarts=life.restarts,
        last_state=life.last_state,
        waiting=waiting,
    )
    status = running_status(
        run.pod.container, process.pid, run.started_at, run.pod.pod_ip, main=main, init=life.inits
    )
    kubelet.report(run.pod, status)


def _probe(
    run: PodRun, kubelet: KubeletApi, process: LocalProcess, life: _Life, done: threading.Event
) -> None:
    """Probe the container until it exits; report readiness changes, restart on failure."""
    prober = Prober.of(run.pod.container, run.pod.pod_ip, time.monotonic())
    while not done.wait(PROBE_TICK_SECONDS):
        result = prober.tick(time.monotonic())
        if result.restart:
            life.restart_reason = result.restart
            life.ready = False
            process.stop(run.pod.grace_seconds)
            return
        if result.ready != life.ready:
            life.ready = result.ready
            _report_running(run, kubelet, process, life)


def _run_container(run: PodRun, kubelet: KubeletApi, process: LocalProcess, life: _Life) -> int:
    """Run the started container to its end, probing it; returns its exit code."""
    has_probes = Prober.of(run.pod.container, run.pod.pod_ip, 0.0).has_probes
    life.ready, life.restart_reason = not has_probes, None
    _report_running(run, kubelet, process, life)
    done = threading.Event()
    prober = None
    if has_probes:
        prober = threading.Thread(
            target=_probe, args=(run, kubelet, process, life, done), daemon=True
        )
        prober.start()
    code = process.wait()
    done.set()
    if prober is not None:
        prober.join(timeout=10)
    return code


def _restarts(run: PodRun, code: int, life: _Life) -> bool:
    policy = run.pod.restart_policy
    return policy == "Always" or (
        policy == "OnFailure" and (code != 0 or life.restart_reason is not None)
    )


def supervise(
    run: PodRun, kubelet: KubeletApi, stopping: threading.Event, launcher: Launcher
) -> None:
    """Lead the pod's life (see the module doc); finish a requested deletion."""
    life = _Life()
    if run.started.init_containers:
        if not _initialize(run, kubelet, stopping, launcher):
            _finish(run, kubelet)
            return
        specs = [c.spec for c in run.started.init_containers]
        done = [terminated_state(0, run.started_at, 0) for _ in specs]
        life.inits = InitStates(specs, done)
    container = launcher.main_container(run.started, run.pod)
    process = (
        run.process
        if run.process is not None and not run.started.init_containers
        else _start(run, launcher, container)
    )
    while process is not None:
        code = _run_container(run, kubelet, process, life)
        if stopping.is_set():
            return
        if _ending(run, stopping) or not _restarts(run, code, life):
            if not run.node_lost:
                kubelet.report(
                    run.pod,
                    terminated_status(
                        run.pod.container, process.pid, run.started_at, code, life.restarts
                    ),
                )
            break
        life.last_state = terminated_state(
            process.pid, run.started_at, code, life.restart_reason or ""
        )
        _report_running(run, kubelet, process, life, waiting="CrashLoopBackOff")
        _wait(backoff(life.restarts), run, stopping)
        life.restarts += 1
        process = _start(run, launcher, container)
    _finish(run, kubelet)


def _finish(run: PodRun, kubelet: KubeletApi) -> None:
    with run.lock:
        run.finished = True
        delete = run.deletion_requested
    if delete:
        kubelet.delete_now(run.pod)


def terminate(pod: PodFacts, run: PodRun | None, kubelet: KubeletApi) -> None:
    """The pod is being deleted: stop its process, then delete it with grace period 0."""
    if run is None:
        if pod.node_name:
            kubelet.delete_now(pod)
        return
    with run.lock:
        run.deletion_requested = True
        finished = run.finished
    if finished:
        kubelet.delete_now(pod)
    else:
        run.stop(pod.grace_seconds)


def kill_on_lost_nodes(runs: Sequence[PodRun], kubelet: KubeletApi) -> None:
    """A deleted node takes its pods' processes with it, unreported: no kubelet is left."""
    running = [run for run in runs if not run.finished and not run.node_lost]
    for node in {run.pod.node_name for run in running}:
        if node is None or kubelet.node_exists(node):
            continue
        for run in running:
            if run.pod.node_name == node:
                run.node_lost = True
                run.kill()
