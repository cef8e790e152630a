"""The autoscaler backends behind one interface: builtin, hpa and keda.

A backend says whether Plinth itself sets the serving Deployment's replicas (builtin, and
every backend when minReplicas == maxReplicas), which objects scale it otherwise (an
autoscaling/v2 HorizontalPodAutoscaler, or a KEDA ScaledObject, for which KEDA makes an HPA
of its own), and how those report what they see. The HPA reads Triton's metrics as custom
Pods metrics named below, which prometheus-adapter serves with the rules in the chart's
values (`prometheusAdapter.rules`); KEDA queries Prometheus directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from plinth.api.v1alpha1 import Autoscaling, ScalingBackend, ScalingMetric
from plinth.api.wellknown import Manifest

#: The custom metric each Triton metric is served as by prometheus-adapter (chart values).
ADAPTER_METRICS: Mapping[ScalingMetric, str] = {
    ScalingMetric.QUEUE_TIME: "triton_queue_time_ms",
    ScalingMetric.PENDING_REQUESTS: "triton_pending_requests",
    ScalingMetric.INFERENCE_RATE: "triton_inference_rate",
    ScalingMetric.GPU_UTILIZATION: "triton_gpu_utilization",
}
KEDA_API_VERSION = "keda.sh/v1alpha1"
#: Prometheus range of the rates KEDA's queries take.
RATE_WINDOW = "1m"


@dataclass(frozen=True)
class ScaleTarget:
    """The Deployment an autoscaler scales, and the model its replicas serve."""

    deployment: str
    namespace: str
    model: str
    version: int
    autoscaling: Autoscaling
    #: metadata of the autoscaler object itself (name, namespace, labels, ownership).
    metadata: Manifest


def quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers as they are, others in thousandths (m)."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def _behavior(autoscaling: Autoscaling) -> Manifest:
    return {
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {"stabilizationWindowSeconds": autoscaling.scale_down_delay_seconds},
    }


class AutoscalerBackend(Protocol):
    """One way of adjusting a serving Deployment's replicas."""

    @property
    def backend(self) -> ScalingBackend: ...

    def writes_replicas(self, autoscaling: Autoscaling) -> bool:
        """Whether Plinth sets the Deployment's replicas (else the autoscaler does)."""
        ...

    def manifests(self, target: ScaleTarget) -> tuple[Manifest, ...]:
        """The objects that scale the Deployment (none when Plinth does it)."""
        ...


@dataclass(frozen=True)
class BuiltinBackend:
    """Plinth reads Triton's metrics from the replicas and sets the replicas itself."""

    backend: ClassVar[ScalingBackend] = ScalingBackend.BUILTIN

    def writes_replicas(self, autoscaling: Autoscaling) -> bool:
        return True

    def manifests(self, target: ScaleTarget) -> tuple[Manifest, ...]:
        return ()


@dataclass(frozen=True)
class HpaBackend:
    """An autoscaling/v2 HorizontalPodAutoscaler on Triton's metrics (or CPU)."""

    backend: ClassVar[ScalingBackend] = ScalingBackend.HPA

    def writes_replicas(self, autoscaling: Autoscaling) -> bool:
        return autoscaling.fixed

    def manifests(self, target: ScaleTarget) -> tuple[Manifest, ...]:
        autoscaling = target.autoscaling
        if autoscaling.fixed or autoscaling.target is None:
            return ()
        spec = {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": target.deployment,
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [hpa_metric(autoscaling.metric, autoscaling.target)],
            "behavior": _behavior(autoscaling),
        }
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": target.metadata,
            "spec": spec,
        }
        return (hpa,)


def hpa_metric(metric: ScalingMetric, target: float) -> Manifest:
    """The HPA's metric entry: CPU as a resource, Triton's as custom Pods metrics."""
    if metric == ScalingMetric.CPU:
        utilization = {"type": "Utilization", "averageUtilization": round(target)}
        return {"type": "Resource", "resource": {"name": "cpu", "target": utilization}}
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": ADAPTER_METRICS[metric]},
            "target": {"type": "AverageValue", "averageValue": quantity(target)},
        },
    }


def _selector(target: ScaleTarget) -> str:
    return (
        f'namespace="{target.namespace}",pod=~"{target.deployment}-.*",'
        f'model="{target.model}",version="{target.version}"'
    )


def keda_query(metric: ScalingMetric, target: ScaleTarget) -> tuple[str, str]:
    """(PromQL query, KEDA metricType) for a Triton metric of the target's replicas."""
    selector, window = _selector(target), RATE_WINDOW
    if metric == ScalingMetric.QUEUE_TIME:
        query = (
            f"sum(rate(nv_inference_queue_duration_us{{{selector}}}[{window}])) / 1000 / "
            f"clamp_min(sum(rate(nv_inference_request_success{{{selector}}}[{window}])), 1e-9)"
        )
        return query, "Value"
    if metric == ScalingMetric.PENDING_REQUESTS:
        return f"sum(nv_inference_pending_request_count{{{selector}}})", "AverageValue"
    if metric == ScalingMetric.INFERENCE_RATE:
        return f"sum(rate(nv_inference_count{{{selector}}}[{window}]))", "AverageValue"
    pods = f'namespace="{target.namespace}",pod=~"{target.deployment}-.*"'
    return f"avg(nv_gpu_utilization{{{pods}}}) * 100", "Value"


def keda_trigger(target: ScaleTarget) -> Manifest:
    autoscaling = target.autoscaling
    value = quantity(autoscaling.target or 1)
    if autoscaling.metric == ScalingMetric.CPU:
        return {"type": "cpu", "metricType": "Utilization", "metadata": {"value": value}}
    query, metric_type = keda_query(autoscaling.metric, target)
    metadata = {
        "serverAddress": autoscaling.prometheus_address,
        "query": query,
        "threshold": str(autoscaling.target),
    }
    return {"type": "prometheus", "metricType": metric_type, "metadata": metadata}


@dataclass(frozen=True)
class KedaBackend:
    """A KEDA ScaledObject with a Prometheus trigger (scale to zero allowed)."""

    backend: ClassVar[ScalingBackend] = ScalingBackend.KEDA

    def writes_replicas(self, autoscaling: Autoscaling) -> bool:
        return autoscaling.fixed

    def manifests(self, target: ScaleTarget) -> tuple[Manifest, ...]:
        autoscaling = target.autoscaling
        if autoscaling.fixed or autoscaling.target is None:
            return ()
        behavior = {"behavior": _behavior(autoscaling)}
        spec = {
            "scaleTargetRef": {"name": target.deployment},
            "minReplicaCount": autoscaling.min_replicas,
            "maxReplicaCount": autoscaling.max_replicas,
            "cooldownPeriod": autoscaling.scale_down_delay_seconds,
            "advanced": {"horizontalPodAutoscalerConfig": behavior},
            "triggers": [keda_trigger(target)],
        }
        return (
            {
                "apiVersion": KEDA_API_VERSION,
                "kind": "ScaledObject",
                "metadata": target.metadata,
                "spec": spec,
            },
        )


BACKENDS: Mapping[ScalingBackend, AutoscalerBackend] = {
    ScalingBackend.BUILTIN: BuiltinBackend(),
    ScalingBackend.HPA: HpaBackend(),
    ScalingBackend.KEDA: KedaBackend(),
}


def backend_for(autoscaling: Autoscaling) -> AutoscalerBackend:
    return BACKENDS[autoscaling.backend]


# --------------------------------------------------------------------------------------
# What an HPA (Plinth's, or the one KEDA made) reports
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HpaView:
    """An HPA's own account: can it read its metric, what it sees, what it wants."""

    able: bool
    reason: str
    message: str
    current_value: float | None
    desired_replicas: int | None


def _parse_quantity(text: Any) -> float | None:
    if text is None:
        return None
    raw = str(text)
    try:
        return float(raw[:-1]) / 1000 if raw.endswith("m") else float(raw)
    except ValueError:
        return None


def _current_value(metrics: Sequence[Mapping[str, Any]]) -> float | None:
    for metric in metrics:
        current = metric.get("pods") or metric.get("resource") or metric.get("external") or {}
        current = current.get("current") or {}
        if "averageUtilization" in current:
            return float(current["averageUtilization"])
        for key in ("averageValue", "value"):
            if key in current:
                return _parse_quantity(current[key])
    return None


def hpa_view(hpa: Mapping[str, Any]) -> HpaView:
    """What an HPA says in its status (ScalingActive tells whether it reads its metric)."""
    status = hpa.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or ()}
    active = conditions.get("ScalingActive")
    if active is None:
        return HpaView(False, "Waiting", "the HPA has not reported yet", None, None)
    return HpaView(
        able=active.get("status") == "True",
        reason=str(active.get("reason") or "Unknown"),
        message=str(active.get("message") or ""),
        current_value=_current_value(status.get("currentMetrics") or ()),
        desired_replicas=status.get("desiredReplicas"),
    )
