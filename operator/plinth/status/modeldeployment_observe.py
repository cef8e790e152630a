"""A ModelDeployment's children as the planner sees them: serving Deployments, their pods
(Triton servers) and HPAs, parsed once from what the API server writes.

Also the pages a server answers (its metrics, its model repository index), read into
what the planner takes: a `TritonSample` per replica, and Triton's own load error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plinth.api.wellknown import (
    LABEL_MODEL_REVISION,
    MODEL_LOADER_CONTAINER,
    TRITON_CONTAINER,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
)
from plinth.serving.autoscalers import HpaView, hpa_view
from plinth.serving.metrics import TritonSample, triton_sample
from plinth.status.plan import PodReading, PodRequest

METRICS_PATH = "/metrics"
REPOSITORY_INDEX_PATH = "/v2/repository/index"
#: Restarts of a server after which it is treated as crash-looping.
CRASH_LOOP_RESTARTS = 3


@dataclass(frozen=True)
class ObservedDeployment:
    """A serving Deployment (one model revision)."""

    name: str
    revision: str
    replicas: int
    ready: int
    updated: int
    current: bool


@dataclass(frozen=True)
class ObservedServer:
    """A Triton pod: where it answers, whether it is ready, what went wrong if anything."""

    name: str
    revision: str
    address: str | None
    running: bool
    ready: bool
    terminating: bool
    restarts: int
    #: Why the model-loader init container failed (its last message), if it did.
    fetch_error: str | None
    #: A waiting reason of the Triton container (CrashLoopBackOff, ImagePullBackOff...).
    waiting: str | None

    @property
    def answers(self) -> bool:
        """Whether Triton may answer at its pod IP."""
        return self.running and not self.terminating and self.address is not None


@dataclass(frozen=True)
class ObservedModelDeployment:
    deployments: tuple[ObservedDeployment, ...] = ()
    servers: tuple[ObservedServer, ...] = ()
    #: HPAs with the owner label: Plinth's own (by name) and those KEDA made.
    hpas: tuple[tuple[str, bool, HpaView], ...] = ()

    def deployment(self, revision: str) -> ObservedDeployment | None:
        return next((d for d in self.deployments if d.revision == revision), None)

    def servers_of(self, revision: str) -> tuple[ObservedServer, ...]:
        return tuple(s for s in self.servers if s.revision == revision)


def _revision(obj: Mapping[str, Any]) -> str:
    return str((obj["metadata"].get("labels") or {}).get(LABEL_MODEL_REVISION, ""))


def observe_deployment(deployment: Mapping[str, Any]) -> ObservedDeployment:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = deployment["metadata"].get("generation")
    return ObservedDeployment(
        name=str(deployment["metadata"]["name"]),
        revision=_revision(deployment),
        replicas=int(spec.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        current=status.get("observedGeneration") == generation,
    )


def _container_status(statuses: Iterable[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    return next((s for s in statuses if s.get("name") == name), {})


def _fetch_error(status: Mapping[str, Any]) -> str | None:
    loader = _container_status(status.get("initContainerStatuses") or (), MODEL_LOADER_CONTAINER)
    for state in (loader.get("state") or {}, loader.get("lastState") or {}):
        terminated = state.get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            return str(terminated.get("message") or f"exit code {terminated.get('exitCode')}")
    return None


def observe_server(pod: Mapping[str, Any]) -> ObservedServer:
    metadata, status = pod["metadata"], pod.get("status") or {}
    triton = _container_status(status.get("containerStatuses") or (), TRITON_CONTAINER)
    waiting = ((triton.get("state") or {}).get("waiting") or {}).get("reason")
    return ObservedServer(
        name=str(metadata["name"]),
        revision=_revision(pod),
        address=status.get("podIP") or None,
        running=status.get("phase") == "Running",
        ready=bool(triton.get("ready")),
        terminating=bool(metadata.get("deletionTimestamp")),
        restarts=int(triton.get("restartCount") or 0),
        fetch_error=_fetch_error(status),
        waiting=str(waiting) if waiting else None,
    )


def _is_keda_made(hpa: Mapping[str, Any]) -> bool:
    owners = hpa["metadata"].get("ownerReferences") or ()
    return any(owner.get("kind") == "ScaledObject" for owner in owners)


def observe_modeldeployment(
    deployments: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    hpas: Iterable[Mapping[str, Any]],
) -> ObservedModelDeployment:
    return ObservedModelDeployment(
        deployments=tuple(sorted(map(observe_deployment, deployments), key=lambda d: d.name)),
        servers=tuple(sorted(map(observe_server, pods), key=lambda s: s.name)),
        hpas=tuple((str(h["metadata"]["name"]), _is_keda_made(h), hpa_view(h)) for h in hpas),
    )


# --------------------------------------------------------------------------------------
# Pages of the servers
# --------------------------------------------------------------------------------------


def metrics_request(server: ObservedServer) -> PodRequest:
    assert server.address is not None
    return PodRequest(server.name, server.address, TRITON_METRICS_PORT, METRICS_PATH)


def index_request(server: ObservedServer) -> PodRequest:
    assert server.address is not None
    return PodRequest(
        server.name, server.address, TRITON_HTTP_PORT, REPOSITORY_INDEX_PATH, method="POST"
    )


def samples(
    reading: PodReading | None, servers: Iterable[ObservedServer], model: str, version: int
) -> dict[str, TritonSample]:
    """Each server's sample of the model in `reading` (servers that answered)."""
    found: dict[str, TritonSample] = {}
    if reading is None:
        return found
    for server in servers:
        if not server.answers:
            continue
        response = reading.responses.get(metrics_request(server))
        if response is not None and response.ok:
            sample = triton_sample(response.body, model, version)
            if sample is not None:
                found[server.name] = sample
    return found


def read_errors(reading: PodReading | None, servers: Iterable[ObservedServer]) -> list[str]:
    """Why metrics could not be read from `servers` (one line per server)."""
    errors = []
    for server in servers:
        response = reading.responses.get(metrics_request(server)) if reading else None
        if server.answers and response is not None and not response.ok:
            detail = response.error or f"HTTP {response.status}"
            errors.append(f"{server.name}: {detail}")
    return errors


def load_error(
    reading: PodReading | None, server: ObservedServer, model: str, version: int
) -> str | None:
    """Triton's own reason why the model is not loaded on `server`, if it says one."""
    response = reading.responses.get(index_request(server)) if reading and server.answers else None
    if response is None or not response.ok:
        return None
    try:
        index = json.loads(response.body)
    except json.JSONDecodeError:
        return None
    for entry in index if isinstance(index, list) else ():
        same = entry.get("name") == model and str(entry.get("version", version)) == str(version)
        if same and entry.get("state") == "UNAVAILABLE" and entry.get("reason"):
            return str(entry["reason"]).strip()
    return None
