"""How a ModelDeployment moves from the model it serves to the one its spec asks for.

The first model is served at once. A later one (a new URI or version, a new best trial):
- without `rollout.canary`, its replicas start beside the old ones, which are removed once
  every new replica is ready (the old keep serving if the new model never loads);
- with a canary, it runs as a share of the replicas behind the same Service, step by step;
  each step lasts its duration and until the gates have seen `minRequests`; a failed gate
  (or a model that does not load, or crash-loops) rolls it back, or pauses it, with the
  reason in status. A rolled-back model is not tried again until the spec changes it.
Step, step start and the traffic counted so far live in `status.canary`, so a restarted
operator resumes the rollout at its step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plinth.api.v1alpha1 import (
    Canary,
    CanaryState,
    CanaryStatus,
    ConditionStatus,
    RolloutFailureAction,
    ServedModel,
    Traffic,
)
from plinth.serving.canary import Outcome, canary_replicas, judge, replica_share
from plinth.serving.metrics import Served
from plinth.serving.repository import ResolvedModel
from plinth.status.conditions import ConditionUpdate
from plinth.status.modeldeployment_observe import ObservedModelDeployment
from plinth.status.plan import EventToPost

ROLLING_OUT = "RollingOut"


def served_model(model: ResolvedModel) -> ServedModel:
    return ServedModel(
        name=model.name, version=model.version, uri=model.uri, revision=model.revision
    )


@dataclass(frozen=True)
class RolloutInputs:
    """What the rollout decision depends on."""

    canary_spec: Canary | None
    stable: ServedModel | None
    target: ResolvedModel | None
    previous: CanaryStatus | None
    observed: ObservedModelDeployment
    #: Replicas the serving model runs (the autoscaler's count).
    desired: int
    #: Why the target's replicas cannot serve (fetch or load error, crash loop), if so.
    target_failure: str | None
    #: What canary and stable replicas served since the previous reading (None: unknown).
    canary_served: Served | None
    stable_served: Served | None
    now: datetime


@dataclass(frozen=True)
class RolloutDecision:
    """The model serving after this reconcile, and what to run and remove for it."""

    serving: ServedModel | None
    #: Replicas of the target model's Deployment (None: it is not applied).
    target_replicas: int | None
    canary: CanaryStatus | None
    condition: ConditionUpdate
    #: Revisions whose Deployments are removed.
    retire: tuple[str, ...] = ()
    #: Why the rollout leaves the deployment degraded (reason, message): a rollback, a
    #: paused canary, a new model that does not serve.
    degraded: tuple[str, str] | None = None
    events: tuple[EventToPost, ...] = field(default_factory=tuple)


def _rolling(status: ConditionStatus, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(ROLLING_OUT, status, reason, message)


def _others(inputs: RolloutInputs, *keep: str) -> tuple[str, ...]:
    return tuple(d.revision for d in inputs.observed.deployments if d.revision not in keep)


def _ready(inputs: RolloutInputs, revision: str) -> int:
    found = inputs.observed.deployment(revision)
    return found.ready if found else 0


def decide_rollout(inputs: RolloutInputs) -> RolloutDecision:
    """The rollout's next move (see the module doc)."""
    stable, target = inputs.stable, inputs.target
    if target is None:
        message = "the model's source is not resolved; serving what was served"
        return RolloutDecision(
            stable, None, inputs.previous, _rolling(ConditionStatus.FALSE, "Waiting", message)
        )
    if stable is None or stable.revision == target.revision:
        return _steady(inputs, target)
    if inputs.canary_spec is None:
        return _replace(inputs, stable, target)
    return _canary(inputs, inputs.canary_spec, stable, target)


def _steady(inputs: RolloutInputs, target: ResolvedModel) -> RolloutDecision:
    others = _others(inputs, target.revision)
    previous = inputs.previous
    record = (
        previous
        if previous and previous.state in (CanaryState.PROMOTED, CanaryState.ROLLED_BACK)
        else None
    )
    if others and _ready(inputs, target.revision) >= inputs.desired:
        condition = _rolling(ConditionStatus.FALSE, "Complete", f"serving {target.uri}")
        return RolloutDecision(served_model(target), inputs.desired, record, condition, others)
    if others:
        message = f"retiring the old model once {inputs.desired} new replicas are ready"
        condition = _rolling(ConditionStatus.TRUE, "Retiring", message)
        return RolloutDecision(served_model(target), inputs.desired, record, condition)
    condition = _rolling(ConditionStatus.FALSE, "Stable", f"serving {target.uri}")
    return RolloutDecision(served_model(target), inputs.desired, record, condition)


def _replace(inputs: RolloutInputs, stable: ServedModel, target: ResolvedModel) -> RolloutDecision:
    ready = _ready(inputs, target.revision)
    stale = _others(inputs, stable.revision, target.revision)
    if ready >= inputs.desired:
        condition = _rolling(ConditionStatus.TRUE, "Replaced", f"now serving {target.uri}")
        retire = _others(inputs, target.revision)
        return RolloutDecision(served_model(target), inputs.desired, None, condition, retire)
    message = f"starting {target.uri}: {ready}/{inputs.desired} replicas ready"
    degraded: tuple[str, str] | None = None
    if inputs.target_failure:
        message = f"the new model {target.uri} does not serve: {inputs.target_failure}"
        degraded = ("NewModelFailed", message)
    condition = _rolling(ConditionStatus.TRUE, "Replacing", message)
    return RolloutDecision(stable, inputs.desired, None, condition, stale, degraded)


# --------------------------------------------------------------------------------------
# Canary
# --------------------------------------------------------------------------------------


def _traffic(before: Traffic, served: Served | None) -> Traffic:
    if served is None:
        return before
    return Traffic(
        requests=before.requests + round(served.requests),
        failures=before.failures + round(served.failures),
        latency_microseconds=before.latency_microseconds + round(served.request_us),
    )


def _start(inputs: RolloutInputs, target: ResolvedModel, canary: Canary) -> CanaryStatus:
    replicas = canary_replicas(inputs.desired, canary.steps[0].weight)
    return CanaryStatus(
        state=CanaryState.PROGRESSING,
        step=0,
        weight=replica_share(inputs.desired, replicas),
        model=served_model(target),
    )


def _current(inputs: RolloutInputs, target: ResolvedModel) -> CanaryStatus | None:
    previous = inputs.previous
    if previous is None or previous.model is None or previous.model.revision != target.revision:
        return None
    return previous


def _canary(
    inputs: RolloutInputs, spec: Canary, stable: ServedModel, target: ResolvedModel
) -> RolloutDecision:
    current = _current(inputs, target)
    events: tuple[EventToPost, ...] = ()
    if current is None:
        current = _start(inputs, target, spec)
        message = f"canary of {target.uri} started at {spec.steps[0].weight}%"
        events = (EventToPost("CanaryStarted", message),)
    if current.state == CanaryState.ROLLED_BACK:
        return _rolled_back(inputs, stable, current)
    if current.state == CanaryState.PROMOTED:
        return _steady(inputs, target)
    decision = _canary_step(inputs, spec, stable, target, current)
    return RolloutDecision(
        decision.serving,
        decision.target_replicas,
        decision.canary,
        decision.condition,
        decision.retire,
        decision.degraded,
        events + decision.events,
    )


def _rolled_back(
    inputs: RolloutInputs, stable: ServedModel, record: CanaryStatus
) -> RolloutDecision:
    message = f"rolled back: {record.message}"
    condition = _rolling(ConditionStatus.FALSE, "RolledBack", message)
    return RolloutDecision(
        stable, None, record, condition, _others(inputs, stable.revision), ("RolledBack", message)
    )


def _fail(
    inputs: RolloutInputs, spec: Canary, stable: ServedModel, current: CanaryStatus, why: str
) -> RolloutDecision:
    if spec.on_failure == RolloutFailureAction.ROLLBACK:
        record = current.model_copy(
            update={"state": CanaryState.ROLLED_BACK, "weight": 0, "message": why[:1024]}
        )
        decision = _rolled_back(inputs, stable, record)
        event = EventToPost("CanaryRolledBack", f"canary rolled back: {why}", warning=True)
        return RolloutDecision(
            decision.serving,
            None,
            record,
            decision.condition,
            decision.retire,
            decision.degraded,
            (event,),
        )
    paused = current.model_copy(update={"state": CanaryState.PAUSED, "message": why[:1024]})
    replicas = canary_replicas(inputs.desired, spec.steps[current.step].weight)
    condition = _rolling(ConditionStatus.TRUE, "CanaryPaused", f"paused: {why}")
    event = EventToPost("CanaryPaused", f"canary paused: {why}", warning=True)
    stale = _others(inputs, stable.revision, paused.model.revision if paused.model else "")
    degraded = ("CanaryPaused", f"paused: {why}")
    return RolloutDecision(stable, replicas, paused, condition, stale, degraded, (event,))


def _canary_step(
    inputs: RolloutInputs,
    spec: Canary,
    stable: ServedModel,
    target: ResolvedModel,
    current: CanaryStatus,
) -> RolloutDecision:
    step = spec.steps[min(current.step, len(spec.steps) - 1)]
    replicas = canary_replicas(inputs.desired, step.weight)
    current = current.model_copy(update={"weight": replica_share(inputs.desired, replicas)})
    stale = _others(inputs, stable.revision, target.revision)
    if inputs.target_failure:
        return _fail(
            inputs, spec, stable, current, f"the new model does not serve: {inputs.target_failure}"
        )
    if current.state == CanaryState.PAUSED:
        condition = _rolling(ConditionStatus.TRUE, "CanaryPaused", f"paused: {current.message}")
        return RolloutDecision(
            stable,
            replicas,
            current,
            condition,
            stale,
            ("CanaryPaused", f"paused: {current.message}"),
        )
    ready = _ready(inputs, target.revision)
    if ready < replicas:
        message = f"{_step_message(spec, current)}: {ready}/{replicas} canary replicas ready"
        waiting = current.model_copy(
            update={
                "step_start_time": None,
                "canary": Traffic(),
                "stable": Traffic(),
                "message": message,
            }
        )
        return RolloutDecision(
            stable,
            replicas,
            waiting,
            _rolling(ConditionStatus.TRUE, "CanaryStarting", message),
            stale,
        )
    if current.step_start_time is None:
        started = current.model_copy(
            update={"step_start_time": inputs.now, "message": "gates watching"}
        )
        condition = _rolling(
            ConditionStatus.TRUE, "CanaryProgressing", _step_message(spec, started)
        )
        return RolloutDecision(stable, replicas, started, condition, stale)
    return _judged(
        inputs,
        spec=spec,
        stable=stable,
        target=target,
        current=current,
        replicas=replicas,
        stale=stale,
    )


def _step_message(spec: Canary, current: CanaryStatus) -> str:
    step = spec.steps[current.step]
    return (
        f"step {current.step + 1}/{len(spec.steps)} at {step.weight}% for {step.duration_seconds}s"
    )


def _judged(
    inputs: RolloutInputs,
    *,
    spec: Canary,
    stable: ServedModel,
    target: ResolvedModel,
    current: CanaryStatus,
    replicas: int,
    stale: tuple[str, ...],
) -> RolloutDecision:
    canary_traffic = _traffic(current.canary, inputs.canary_served)
    stable_traffic = _traffic(current.stable, inputs.stable_served)
    verdict = judge(spec.gates, canary_traffic, stable_traffic)
    if verdict.outcome == Outcome.FAIL:
        counted = current.model_copy(update={"canary": canary_traffic, "stable": stable_traffic})
        return _fail(inputs, spec, stable, counted, verdict.message)
    assert current.step_start_time is not None
    step = spec.steps[current.step]
    elapsed = inputs.now - current.step_start_time
    done = verdict.outcome == Outcome.PASS and elapsed >= timedelta(seconds=step.duration_seconds)
    counted = current.model_copy(
        update={"canary": canary_traffic, "stable": stable_traffic, "message": verdict.message}
    )
    if not done:
        condition = _rolling(
            ConditionStatus.TRUE,
            "CanaryProgressing",
            f"{_step_message(spec, counted)}: {verdict.message}",
        )
        return RolloutDecision(stable, replicas, counted, condition, stale)
    if current.step + 1 < len(spec.steps):
        following = counted.model_copy(
            update={
                "step": current.step + 1,
                "step_start_time": None,
                "canary": Traffic(),
                "stable": Traffic(),
            }
        )
        event = EventToPost(
            "CanaryStepPassed", f"step {current.step + 1} passed: {verdict.message}"
        )
        condition = _rolling(
            ConditionStatus.TRUE, "CanaryProgressing", _step_message(spec, following)
        )
        next_replicas = canary_replicas(inputs.desired, spec.steps[following.step].weight)
        return RolloutDecision(stable, next_replicas, following, condition, stale, None, (event,))
    promoted = counted.model_copy(update={"state": CanaryState.PROMOTED, "weight": 100})
    message = f"promoted {target.uri} after {len(spec.steps)} steps: {verdict.message}"
    condition = _rolling(ConditionStatus.TRUE, "Promoted", message)
    event = EventToPost("CanaryPromoted", message)
    return RolloutDecision(
        served_model(target), inputs.desired, promoted, condition, stale, None, (event,)
    )
