"""The ModelDeployment planner: spec, previous status, observed children and what the
Triton servers answered in; the serving Deployments to run and the status out.

Pure and level-based, in four parts: which model the spec asks for
(`modeldeployment_source`), how many replicas serve it (`modeldeployment_scaling`), how a
changed model replaces the served one (`modeldeployment_rollout`), and the status that
tells the truth: ModelReady from the replicas' readiness (the model's own ready endpoint)
and, when it fails, Triton's own load error from its repository index; Ready, RollingOut,
Degraded and ScalingActive beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from plinth.api.v1alpha1 import (
    ConditionStatus,
    ModelDeploymentPhase,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ScalingBackend,
    ServedModel,
)
from plinth.api.wellknown import (
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    ObjectRef,
    OwnerMeta,
)
from plinth.serving.autoscalers import HpaView, backend_for
from plinth.serving.metrics import Served, served_by
from plinth.serving.repository import ResolvedModel
from plinth.status.acceptance import accepted_update
from plinth.status.conditions import ConditionUpdate, set_condition
from plinth.status.modeldeployment_observe import (
    CRASH_LOOP_RESTARTS,
    ObservedModelDeployment,
    ObservedServer,
    index_request,
    load_error,
    metrics_request,
    read_errors,
    samples,
)
from plinth.status.modeldeployment_rollout import (
    RolloutDecision,
    RolloutInputs,
    decide_rollout,
)
from plinth.status.modeldeployment_scaling import (
    METRICS_PERIOD_SECONDS,
    Samples,
    Scaling,
    builtin_scaling,
    external_scaling,
    fixed_scaling,
)
from plinth.status.modeldeployment_source import Resolution, resolve
from plinth.status.plan import EventToPost, ObjectLookups, PodReading, PodRequest

#: How often a deployment whose model comes from a TrainingJob or sweep looks at it again
#: (from the operator's cache: no API request), to follow a sweep's new best trial.
SOURCE_RECHECK_SECONDS = 15.0
#: A settled deployment is looked at again this often (reads from the cache; an unchanged
#: plan sends nothing), so a missed watch event costs at most this long.
STEADY_RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class ModelDeploymentInputs:
    spec: ModelDeploymentSpec
    owner: OwnerMeta
    previous: ModelDeploymentStatus
    observed: ObservedModelDeployment
    now: datetime
    objects: ObjectLookups | None = None
    reading: PodReading | None = None
    previous_reading: PodReading | None = None


@dataclass(frozen=True)
class ModelDeploymentPlan:
    """What the reconcile should do (the builder turns it into writes)."""

    status: ModelDeploymentStatus
    #: The model whose Deployment is applied, and its replicas (None: the autoscaler's).
    target: ResolvedModel | None = None
    target_replicas: int | None = None
    #: The model serving stable traffic (the autoscaler's target), and replicas to patch
    #: onto its Deployment when it is not the one applied.
    serving: ServedModel | None = None
    serving_replicas: int | None = None
    retire: tuple[str, ...] = ()
    delete_scaled_object: bool = False
    delete_hpas: tuple[str, ...] = ()
    events: tuple[EventToPost, ...] = ()
    check_again_after: float | None = None
    wants_objects: tuple[ObjectRef, ...] = ()
    wants_from_pods: tuple[PodRequest, ...] = ()


def service_url(owner: OwnerMeta) -> str:
    return f"http://{owner.name}.{owner.namespace}.svc:{TRITON_HTTP_PORT}"


def grpc_address(owner: OwnerMeta) -> str:
    return f"{owner.name}.{owner.namespace}.svc:{TRITON_GRPC_PORT}"


# --------------------------------------------------------------------------------------
# What to read from the servers
# --------------------------------------------------------------------------------------


def _reads_metrics(
    spec: ModelDeploymentSpec, stable: ServedModel | None, target: ResolvedModel | None
) -> bool:
    autoscaling = spec.autoscaling
    scaling = autoscaling.backend == ScalingBackend.BUILTIN and not autoscaling.fixed
    rolling = (
        spec.rollout.canary is not None
        and stable is not None
        and target is not None
        and stable.revision != target.revision
    )
    return scaling or rolling


def pod_requests(
    inputs: ModelDeploymentInputs, target: ResolvedModel | None
) -> tuple[PodRequest, ...]:
    """Metrics pages when scaling or judging a canary; the repository index of servers
    that are up but not ready (Triton's load error)."""
    servers = [s for s in inputs.observed.servers if s.answers]
    wanted = []
    if _reads_metrics(inputs.spec, inputs.previous.model, target):
        wanted += [metrics_request(s) for s in servers]
    wanted += [index_request(s) for s in servers if not s.ready]
    return tuple(wanted)


# --------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------


def _serving_samples(
    inputs: ModelDeploymentInputs, revision: str, name: str, version: int
) -> Samples:
    servers = [s for s in inputs.observed.servers_of(revision) if s.ready]
    now = samples(inputs.reading, servers, name, version)
    # A previous reading without these replicas' metrics (only repository indexes were
    # read) gives no rate: it counts as none.
    before = samples(inputs.previous_reading, servers, name, version) or None
    seconds = (
        (inputs.reading.time - inputs.previous_reading.time).total_seconds()
        if inputs.reading and inputs.previous_reading
        else None
    )
    return Samples(now, before, seconds, read_errors(inputs.reading, servers))


def _hpa_view(inputs: ModelDeploymentInputs) -> HpaView | None:
    keda = inputs.spec.autoscaling.backend == ScalingBackend.KEDA
    for name, keda_made, view in inputs.observed.hpas:
        if keda_made == keda and (keda or name == inputs.owner.name):
            return view
    return None


def _current_replicas(inputs: ModelDeploymentInputs, revision: str) -> int:
    previous = inputs.previous.autoscaler
    if (
        previous
        and previous.desired_replicas is not None
        and previous.backend == ScalingBackend.BUILTIN
    ):
        return previous.desired_replicas
    deployment = inputs.observed.deployment(revision)
    return deployment.replicas if deployment else inputs.spec.autoscaling.min_replicas


def scaling(inputs: ModelDeploymentInputs, model: ServedModel) -> Scaling:
    autoscaling = inputs.spec.autoscaling
    if autoscaling.fixed:
        return fixed_scaling(autoscaling)
    if autoscaling.backend != ScalingBackend.BUILTIN:
        deployment = inputs.observed.deployment(model.revision)
        current = deployment.replicas if deployment else autoscaling.min_replicas
        return external_scaling(autoscaling, current, _hpa_view(inputs))
    current = _current_replicas(inputs, model.revision)
    found = _serving_samples(inputs, model.revision, model.name, model.version)
    return builtin_scaling(autoscaling, current, found, inputs.previous.autoscaler, inputs.now)


# --------------------------------------------------------------------------------------
# What the servers say
# --------------------------------------------------------------------------------------


def failure_of(
    inputs: ModelDeploymentInputs, servers: tuple[ObservedServer, ...], name: str, version: int
) -> tuple[str, str] | None:
    """(reason, message) when the servers of a model cannot serve it, in their own words."""
    for server in servers:
        if server.fetch_error:
            return (
                "ModelFetchFailed",
                f"the model-loader of {server.name} failed: {server.fetch_error}",
            )
    for server in servers:
        if message := load_error(inputs.reading, server, name, version):
            return "ModelLoadFailed", f"Triton on {server.name} failed to load {name}: {message}"
    for server in servers:
        if server.restarts >= CRASH_LOOP_RESTARTS and not server.ready:
            return (
                "CrashLoop",
                f"{server.name} restarted {server.restarts} times ({server.waiting})",
            )
    return None


def _served(inputs: ModelDeploymentInputs, revision: str, name: str, version: int) -> Served | None:
    if inputs.reading is None or inputs.previous_reading is None:
        return None
    servers = inputs.observed.servers_of(revision)
    now = samples(inputs.reading, servers, name, version)
    before = samples(inputs.previous_reading, servers, name, version)
    return served_by(before, now)


def rollout(
    inputs: ModelDeploymentInputs,
    stable: ServedModel | None,
    target: ResolvedModel | None,
    desired: int,
) -> RolloutDecision:
    target_servers = inputs.observed.servers_of(target.revision) if target else ()
    failure = failure_of(inputs, target_servers, target.name, target.version) if target else None
    return decide_rollout(
        RolloutInputs(
            canary_spec=inputs.spec.rollout.canary,
            stable=stable,
            target=target,
            previous=inputs.previous.canary,
            observed=inputs.observed,
            desired=desired,
            target_failure=failure[1] if failure else None,
            canary_served=_served(inputs, target.revision, target.name, target.version)
            if target
            else None,
            stable_served=_served(inputs, stable.revision, stable.name, stable.version)
            if stable
            else None,
            now=inputs.now,
        )
    )


# --------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------


def _update(kind: str, status: ConditionStatus, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(type=kind, status=status, reason=reason, message=message)


def _readiness(
    inputs: ModelDeploymentInputs, serving: ServedModel | None, resolution: Resolution, desired: int
) -> tuple[int, ConditionUpdate, ConditionUpdate, bool]:
    """Ready replicas, ModelReady, Ready, and whether the serving model has failed."""
    if serving is None:
        reason = resolution.reason if resolution.failed else "WaitingForModel"
        return (
            0,
            _update("ModelReady", ConditionStatus.FALSE, reason, resolution.message),
            _update("Ready", ConditionStatus.FALSE, reason, resolution.message),
            resolution.failed,
        )
    servers = inputs.observed.servers_of(serving.revision)
    ready = sum(s.ready for s in servers)
    url = service_url(inputs.owner)
    if ready:
        loaded = f"{serving.name} version {serving.version} is loaded and ready on {ready} replicas"
        return (
            ready,
            _update("ModelReady", ConditionStatus.TRUE, "ModelLoaded", loaded),
            _update(
                "Ready",
                ConditionStatus.TRUE,
                "Serving",
                f"{ready}/{desired} replicas ready at {url}",
            ),
            False,
        )
    failure = failure_of(inputs, servers, serving.name, serving.version)
    reason, message = failure or (
        "Loading",
        f"loading {serving.name} version {serving.version}: 0/{desired} replicas ready",
    )
    return (
        0,
        _update("ModelReady", ConditionStatus.FALSE, reason, message),
        _update("Ready", ConditionStatus.FALSE, reason, message),
        failure is not None,
    )


def _phase(conditions: dict[str, ConditionStatus], failed: bool) -> ModelDeploymentPhase:
    if conditions["Degraded"] == ConditionStatus.TRUE or failed:
        return ModelDeploymentPhase.DEGRADED
    if conditions["RollingOut"] == ConditionStatus.TRUE:
        return ModelDeploymentPhase.ROLLING_OUT
    if conditions["Ready"] == ConditionStatus.TRUE:
        return ModelDeploymentPhase.READY
    return ModelDeploymentPhase.PENDING


def _status(
    inputs: ModelDeploymentInputs,
    resolution: Resolution,
    decision: RolloutDecision,
    scale: Scaling | None,
    desired: int,
) -> ModelDeploymentStatus:
    ready, model_ready, ready_condition, failed = _readiness(
        inputs, decision.serving, resolution, desired
    )
    degraded = decision.degraded or ((model_ready.reason, model_ready.message) if failed else None)
    resolved = (
        _update("ModelResolved", ConditionStatus.TRUE, resolution.reason, resolution.message)
        if resolution.model
        else _update("ModelResolved", ConditionStatus.FALSE, resolution.reason, resolution.message)
    )
    updates = [
        accepted_update(None),
        resolved,
        model_ready,
        ready_condition,
        decision.condition,
        _update("Degraded", ConditionStatus.TRUE, *degraded)
        if degraded
        else _update("Degraded", ConditionStatus.FALSE, "Healthy", "nothing is failing"),
    ]
    if scale is not None:
        updates.append(scale.condition)
    conditions = inputs.previous.conditions
    for update in updates:
        conditions = set_condition(conditions, update, inputs.owner.generation, inputs.now)
    phase = _phase({u.type: u.status for u in updates}, failed)
    return inputs.previous.model_copy(
        update={
            "phase": phase,
            "conditions": conditions,
            "observed_generation": inputs.owner.generation,
            "url": service_url(inputs.owner),
            "grpc_url": grpc_address(inputs.owner),
            "desired_replicas": desired if decision.serving else None,
            "ready_replicas": ready,
            "model": decision.serving,
            "canary": decision.canary,
            "autoscaler": scale.status if scale else None,
        }
    )


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------


def _autoscaler_cleanup(inputs: ModelDeploymentInputs) -> tuple[bool, tuple[str, ...]]:
    """(delete the ScaledObject, HPAs to delete) when the backend no longer uses them."""
    autoscaling = inputs.spec.autoscaling
    uses_hpa = autoscaling.backend == ScalingBackend.HPA and not autoscaling.fixed
    uses_keda = autoscaling.backend == ScalingBackend.KEDA and not autoscaling.fixed
    previous = inputs.previous.autoscaler
    delete_keda = previous is not None and previous.backend == ScalingBackend.KEDA and not uses_keda
    hpas = tuple(
        name
        for name, keda_made, _view in inputs.observed.hpas
        if not keda_made and not (uses_hpa and name == inputs.owner.name)
    )
    return delete_keda, hpas


def _check_again(inputs: ModelDeploymentInputs, target: ResolvedModel | None) -> float:
    waits = [STEADY_RECHECK_SECONDS]
    if inputs.spec.model.uri is None:
        waits.append(SOURCE_RECHECK_SECONDS)
    if _reads_metrics(inputs.spec, inputs.previous.model, target) or any(
        s.answers and not s.ready for s in inputs.observed.servers
    ):
        waits.append(METRICS_PERIOD_SECONDS)
    return min(waits)


def plan_modeldeployment(inputs: ModelDeploymentInputs) -> ModelDeploymentPlan:
    """The whole decision for one reconcile (see the module doc)."""
    resolution = resolve(inputs.spec, inputs.owner, inputs.objects)
    if resolution.wants is not None:
        return ModelDeploymentPlan(status=inputs.previous, wants_objects=(resolution.wants,))
    target = resolution.model
    requests = pod_requests(inputs, target)
    if requests and inputs.reading is None:
        return ModelDeploymentPlan(status=inputs.previous, wants_from_pods=requests)
    stable = inputs.previous.model or (served(target) if target else None)
    scale = scaling(inputs, stable) if stable else None
    desired = scale.replicas if scale else inputs.spec.autoscaling.min_replicas
    decision = rollout(inputs, inputs.previous.model, target, desired)
    delete_keda, delete_hpas = _autoscaler_cleanup(inputs)
    writes_replicas = backend_for(inputs.spec.autoscaling).writes_replicas(inputs.spec.autoscaling)
    serving = decision.serving
    target_is_serving = (
        serving is not None and target is not None and serving.revision == target.revision
    )
    return ModelDeploymentPlan(
        status=_status(inputs, resolution, decision, scale, desired),
        target=target if decision.target_replicas is not None else None,
        target_replicas=decision.target_replicas
        if writes_replicas or not target_is_serving
        else None,
        serving=serving,
        serving_replicas=desired if writes_replicas and not target_is_serving else None,
        retire=decision.retire,
        delete_scaled_object=delete_keda,
        delete_hpas=delete_hpas,
        events=decision.events,
        check_again_after=_check_again(inputs, target),
    )


def served(model: ResolvedModel) -> ServedModel:
    return ServedModel(
        name=model.name, version=model.version, uri=model.uri, revision=model.revision
    )
