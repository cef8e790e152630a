"""Canary rollouts, pure: how many replicas the new model gets, and the gates' verdict.

Traffic is shared by replicas behind one Service: at weight w the canary runs beside the
stable replicas so that it holds w% of them, at least one. The gates compare what the new
model served in the current step with its limits and with the stable model's latency in
the same step, once it has served `minRequests`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from plinth.api.v1alpha1 import Gates, Traffic


def canary_replicas(stable: int, weight: int) -> int:
    """Replicas of the new model that make it `weight`% of all, beside `stable` ones."""
    if stable <= 0:
        return 1
    return max(1, round(stable * weight / (100 - weight)))


def replica_share(stable: int, canary: int) -> int:
    """The percent of replicas (so of requests) the new model has."""
    total = stable + canary
    return round(100 * canary / total) if total else 0


class Outcome(enum.StrEnum):
    """What the gates say about the step so far."""

    PASS = "Pass"
    FAIL = "Fail"
    WAIT = "Wait"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str


def error_rate(traffic: Traffic) -> float:
    return traffic.failures / traffic.requests if traffic.requests else 0.0


def latency_ms(traffic: Traffic) -> float:
    return traffic.latency_microseconds / traffic.requests / 1000 if traffic.requests else 0.0


def _failures(gates: Gates, canary: Traffic, stable: Traffic) -> list[str]:
    found = []
    rate, latency = error_rate(canary), latency_ms(canary)
    if gates.max_error_rate is not None and rate > gates.max_error_rate:
        found.append(f"error rate {rate:.3f} > maxErrorRate {gates.max_error_rate}")
    if gates.max_latency_ms is not None and latency > gates.max_latency_ms:
        found.append(f"latency {latency:.1f} ms > maxLatencyMs {gates.max_latency_ms}")
    if gates.max_latency_ratio is not None and stable.requests:
        limit = gates.max_latency_ratio * latency_ms(stable)
        if latency > limit:
            found.append(
                f"latency {latency:.1f} ms > {gates.max_latency_ratio} x stable's "
                f"{latency_ms(stable):.1f} ms"
            )
    return found


def judge(gates: Gates, canary: Traffic, stable: Traffic) -> Verdict:
    """The gates' verdict on a step from what both models served in it."""
    if canary.requests < gates.min_requests:
        return Verdict(
            Outcome.WAIT,
            f"{canary.requests} of {gates.min_requests} requests served before gates are judged",
        )
    failures = _failures(gates, canary, stable)
    if failures:
        return Verdict(Outcome.FAIL, "; ".join(failures))
    return Verdict(
        Outcome.PASS,
        f"{canary.requests} requests, error rate {error_rate(canary):.3f}, "
        f"latency {latency_ms(canary):.1f} ms",
    )
