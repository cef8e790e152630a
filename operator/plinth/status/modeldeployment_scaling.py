"""What a ModelDeployment's autoscaler sees and decides, whatever its backend.

builtin: the metric is computed from Triton's metrics of the serving replicas (rates from
two readings, `METRICS_PERIOD_SECONDS` apart) and `serving.scaling` decides. hpa and keda:
the HPA (Plinth's, or the one KEDA made for its ScaledObject) reports what it sees in its
own status, read back here. Either way the status carries the value, the replicas wanted
and why, and ScalingActive says whether the metric can be read at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from plinth.api.v1alpha1 import (
    AutoscalerStatus,
    Autoscaling,
    ConditionStatus,
    ScalingBackend,
    ScalingMetric,
)
from plinth.serving.autoscalers import HpaView
from plinth.serving.metrics import TritonSample, served_by
from plinth.serving.scaling import ScaleDecision, decide, held, recommended_replicas
from plinth.status.conditions import ConditionUpdate

#: How often the builtin autoscaler (and a canary's gates) read Triton's metrics.
METRICS_PERIOD_SECONDS = 5.0
SCALING_ACTIVE = "ScalingActive"

UNITS: Mapping[ScalingMetric, str] = {
    ScalingMetric.QUEUE_TIME: "ms queue time per request",
    ScalingMetric.PENDING_REQUESTS: "pending requests per replica",
    ScalingMetric.INFERENCE_RATE: "inferences/s per replica",
    ScalingMetric.CPU: "% CPU",
    ScalingMetric.GPU_UTILIZATION: "% GPU",
}


@dataclass(frozen=True)
class Samples:
    """Two readings of the serving replicas' Triton metrics, `seconds` apart."""

    now: Mapping[str, TritonSample]
    before: Mapping[str, TritonSample] | None
    seconds: float | None
    errors: Sequence[str] = ()


@dataclass(frozen=True)
class Scaling:
    """The replicas to run, the autoscaler's status, and its ScalingActive condition."""

    replicas: int
    status: AutoscalerStatus
    condition: ConditionUpdate


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def metric_value(metric: ScalingMetric, samples: Samples) -> float | None:
    """The metric per replica (or per request) now; None when it needs a second reading."""
    now = list(samples.now.values())
    if metric == ScalingMetric.PENDING_REQUESTS:
        return _mean([s.pending for s in now])
    if metric == ScalingMetric.CPU:
        return 100 * _mean([s.cpu_utilization for s in now])
    if metric == ScalingMetric.GPU_UTILIZATION:
        gpus = [s.gpu_utilization for s in now if s.gpu_utilization is not None]
        return 100 * _mean(gpus) if gpus else None
    if samples.before is None or not samples.seconds:
        return None
    served = served_by(samples.before, samples.now)
    if metric == ScalingMetric.QUEUE_TIME:
        return served.queue_us / served.requests / 1000 if served.requests else 0.0
    return served.inferences / samples.seconds / len(now)


def _update(status: ConditionStatus, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(SCALING_ACTIVE, status, reason, message)


def _status(
    autoscaling: Autoscaling,
    decision: ScaleDecision,
    value: float | None,
    previous: AutoscalerStatus | None,
    now: datetime,
) -> AutoscalerStatus:
    changed = previous is None or previous.desired_replicas != decision.replicas
    last_scale = (
        now if changed and previous is not None else (previous and previous.last_scale_time)
    )
    return AutoscalerStatus(
        backend=autoscaling.backend,
        metric=autoscaling.metric,
        current_value=None if value is None else round(value, 2),
        target=autoscaling.target,
        desired_replicas=decision.replicas,
        reason=decision.reason,
        last_scale_time=last_scale,
        scale_down=decision.scale_down,
    )


def fixed_scaling(autoscaling: Autoscaling) -> Scaling:
    replicas = autoscaling.min_replicas
    reason = f"minReplicas == maxReplicas: {replicas} replicas"
    status = AutoscalerStatus(
        backend=autoscaling.backend,
        metric=autoscaling.metric,
        desired_replicas=replicas,
        reason=reason,
    )
    return Scaling(replicas, status, _update(ConditionStatus.TRUE, "FixedReplicas", reason))


def builtin_scaling(
    autoscaling: Autoscaling,
    current: int,
    samples: Samples,
    previous: AutoscalerStatus | None,
    now: datetime,
) -> Scaling:
    """The builtin autoscaler's decision from the serving replicas' metrics."""
    assert autoscaling.target is not None
    if not samples.now:
        why = "; ".join(samples.errors) or "no replica is ready to be read"
        decision = held(autoscaling, current, f"cannot read Triton's metrics: {why}")
        status = _status(autoscaling, decision, None, previous, now)
        # no replica ready yet is a deployment starting; replicas that refuse are a fault
        reason = "MetricsUnavailable" if samples.errors else "WaitingForReplicas"
        return Scaling(
            decision.replicas, status, _update(ConditionStatus.FALSE, reason, decision.reason)
        )
    value = metric_value(autoscaling.metric, samples)
    if value is None:
        decision = held(autoscaling, current, "a first reading of Triton's metrics; rates need two")
        status = _status(autoscaling, decision, None, previous, now)
        return Scaling(
            decision.replicas,
            status,
            _update(ConditionStatus.UNKNOWN, "CollectingMetrics", decision.reason),
        )
    recommended = recommended_replicas(value, autoscaling.target, len(samples.now), current)
    pending = previous.scale_down if previous else None
    decision = decide(autoscaling, current, recommended, pending, now)
    seen = f"{value:.2f} {UNITS[autoscaling.metric]} (target {autoscaling.target:g})"
    status = _status(autoscaling, decision, value, previous, now)
    return Scaling(
        decision.replicas,
        status.model_copy(update={"reason": f"{seen}: {decision.reason}"}),
        _update(ConditionStatus.TRUE, "ValidMetricValue", seen),
    )


def external_scaling(autoscaling: Autoscaling, current: int, view: HpaView | None) -> Scaling:
    """What the HPA (Plinth's, or KEDA's) reports; it sets the replicas itself."""
    base = AutoscalerStatus(
        backend=autoscaling.backend,
        metric=autoscaling.metric,
        target=autoscaling.target,
        desired_replicas=current,
    )
    if view is None:
        waiting = (
            "the ScaledObject's HPA has not appeared: is KEDA installed and running?"
            if autoscaling.backend == ScalingBackend.KEDA
            else "the HorizontalPodAutoscaler has not reported yet"
        )
        status = base.model_copy(update={"reason": waiting})
        return Scaling(current, status, _update(ConditionStatus.UNKNOWN, "Waiting", waiting))
    desired = view.desired_replicas if view.desired_replicas is not None else current
    status = base.model_copy(
        update={
            "current_value": view.current_value,
            "desired_replicas": desired,
            "reason": f"{view.reason}: {view.message}",
        }
    )
    condition = ConditionStatus.TRUE if view.able else ConditionStatus.FALSE
    return Scaling(current, status, _update(condition, view.reason, view.message))
