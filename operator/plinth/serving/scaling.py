"""The builtin autoscaler's policy: a metric value in, the replica count out.

As the HorizontalPodAutoscaler does: replicas = ceil(ready replicas x value / target),
nothing changes while the value is within 10% of the target, and the result stays within
minReplicas..maxReplicas. Scaling up is immediate; scaling down waits until every
recommendation for `scaleDownDelaySeconds` asked for fewer replicas, then goes to the
highest of them, so a noisy load does not make the count flap. The pending scale-down is
carried in status, so a restarted operator continues where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from plinth.api.v1alpha1 import Autoscaling, ScaleDownCandidate

#: Relative distance from the target within which the replica count is left alone.
TOLERANCE = 0.1


def recommended_replicas(value: float, target: float, ready: int, current: int) -> int:
    """Replicas that would bring a per-replica `value` to `target`, measured on `ready`
    replicas (the current count when none is ready, or within tolerance)."""
    if ready == 0 or abs(value / target - 1.0) <= TOLERANCE:
        return current
    return max(1, math.ceil(ready * value / target))


@dataclass(frozen=True)
class ScaleDecision:
    """The replica count to run now, the scale-down still pending, and why."""

    replicas: int
    scale_down: ScaleDownCandidate | None
    reason: str


def _bounded(replicas: int, autoscaling: Autoscaling) -> int:
    return min(max(replicas, autoscaling.min_replicas), autoscaling.max_replicas)


def decide(
    autoscaling: Autoscaling,
    current: int,
    recommended: int,
    pending: ScaleDownCandidate | None,
    now: datetime,
) -> ScaleDecision:
    """The stabilised decision for a fresh recommendation (see the module doc)."""
    current, wanted = _bounded(current, autoscaling), _bounded(recommended, autoscaling)
    if wanted > current:
        return ScaleDecision(wanted, None, f"scaled up from {current} to {wanted}")
    if wanted == current:
        return ScaleDecision(current, None, f"{current} replicas hold the target")
    if pending is None:
        pending = ScaleDownCandidate(since=now, replicas=wanted)
    elif wanted > pending.replicas:
        pending = ScaleDownCandidate(since=pending.since, replicas=wanted)
    delay = autoscaling.scale_down_delay_seconds
    if now - pending.since >= timedelta(seconds=delay):
        return ScaleDecision(
            pending.replicas,
            None,
            f"scaled down from {current} to {pending.replicas} after {delay}s of low load",
        )
    return ScaleDecision(
        current,
        pending,
        f"{pending.replicas} would do; scaling down once load has stayed low for {delay}s",
    )


def held(autoscaling: Autoscaling, current: int, reason: str) -> ScaleDecision:
    """No new recommendation (the metric could not be read): keep the count, in bounds."""
    return ScaleDecision(_bounded(current, autoscaling), None, reason)
