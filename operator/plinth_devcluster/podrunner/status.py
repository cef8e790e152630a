"""Pod status as a kubelet reports it: init containers, Running (ready or not, with
restarts), terminated with an exit code, waiting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plinth_devcluster.podrunner.pod import LOCAL_IP


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, status: bool, at: str, reason: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "status": str(status), "lastTransitionTime": at}
    return entry | ({"reason": reason} if reason else {})


def container_status(
    container: Mapping[str, Any],
    state: dict[str, Any],
    *,
    ready: bool,
    restarts: int = 0,
    last_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": state,
    }
    return status | ({"lastState": last_state} if last_state else {})


def terminated_state(pid: int, started: str, exit_code: int, message: str = "") -> dict[str, Any]:
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started,
        "finishedAt": now(),
        "containerID": f"local://{pid}",
    }
    return {"terminated": terminated | ({"message": message} if message else {})}


@dataclass(frozen=True)
class MainState:
    """The pod's one container, as the runner last saw it."""

    pid: int
    started: str
    ready: bool = True
    restarts: int = 0
    last_state: dict[str, Any] | None = None
    #: A waiting reason (CrashLoopBackOff) instead of running.
    waiting: str | None = None


@dataclass(frozen=True)
class InitStates:
    """The pod's init containers: their states, in order."""

    containers: Sequence[Mapping[str, Any]] = ()
    states: Sequence[dict[str, Any]] = field(default_factory=list)
    #: The last failed run of the container that is waiting to run again, by index.
    last_states: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    restarts: int = 0

    def statuses(self) -> list[dict[str, Any]]:
        return [
            container_status(
                container,
                state,
                ready="terminated" in state,
                restarts=self.restarts if index in self.last_states else 0,
                last_state=self.last_states.get(index),
            )
            for index, (container, state) in enumerate(
                zip(self.containers, self.states, strict=False)
            )
        ]


def _addresses(pod_ip: str) -> dict[str, Any]:
    return {
        "hostIP": LOCAL_IP,
        "hostIPs": [{"ip": LOCAL_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
    }


def initializing_status(
    containers: Sequence[Mapping[str, Any]], init: InitStates, pod_ip: str, started: str
) -> dict[str, Any]:
    """Pending, while init containers run (or wait to run again after one failed)."""
    waiting = {"waiting": {"reason": "PodInitializing"}}
    return {
        "phase": "Pending",
        "startTime": started,
        **_addresses(pod_ip),
        "conditions": [
            condition("PodReadyToStartContainers", True, started),
            condition("Initialized", False, started, "ContainersNotInitialized"),
            condition("ContainersReady", False, started, "ContainersNotReady"),
            condition("Ready", False, started, "ContainersNotReady"),
        ],
        "initContainerStatuses": init.statuses(),
        "containerStatuses": [container_status(c, waiting, ready=False) for c in containers],
    }


def running_status(
    container: Mapping[str, Any],
    pid: int,
    started: str,
    pod_ip: str = LOCAL_IP,
    *,
    main: MainState | None = None,
    init: InitStates | None = None,
) -> dict[str, Any]:
    main = main or MainState(pid=pid, started=started)
    at = now()
    state = (
        {"waiting": {"reason": main.waiting}}
        if main.waiting
        else {"running": {"startedAt": main.started}}
    )
    status = {
        "phase": "Running",
        "startTime": started,
        **_addresses(pod_ip),
        "conditions": [
            condition("PodReadyToStartContainers", True, started),
            condition("Initialized", True, started),
            condition(
                "ContainersReady", main.ready, at, None if main.ready else "ContainersNotReady"
            ),
            condition("Ready", main.ready, at, None if main.ready else "ContainersNotReady"),
        ],
        "containerStatuses": [
            container_status(
                container,
                state,
                ready=main.ready,
                restarts=main.restarts,
                last_state=main.last_state,
            )
            | {"containerID": f"local://{main.pid}"}
        ],
    }
    if init is not None and init.containers:
        status["initContainerStatuses"] = init.statuses()
    return status


def terminated_status(
    container: Mapping[str, Any], pid: int, started: str, exit_code: int, restarts: int = 0
) -> dict[str, Any]:
    finished = now()
    succeeded = exit_code == 0
    reason = "PodCompleted" if succeeded else "PodFailed"
    terminated = terminated_state(pid, started, exit_code)
    return {
        "phase": "Succeeded" if succeeded else "Failed",
        "conditions": [
            condition(kind, False, finished, reason) for kind in ("ContainersReady", "Ready")
        ],
        "containerStatuses": [
            container_status(container, terminated, ready=False, restarts=restarts)
            | {"containerID": f"local://{pid}"}
        ],
    }


def waiting_status(container: Mapping[str, Any] | None, message: str) -> dict[str, Any]:
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
    statuses = [] if container is None else [container_status(container, waiting, ready=False)]
    return {"containerStatuses": statuses}
