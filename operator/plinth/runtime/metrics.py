"""Prometheus metrics of the operator itself: reconciles, errors and latency by kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "plinth_reconciles",
    "Reconciles run, by resource kind and result (ok, invalid, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "plinth_reconcile_errors",
    "Reconciles that raised an unexpected error, by resource kind.",
    ["kind"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "plinth_reconcile_duration_seconds",
    "Wall-clock time of one reconcile, by resource kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


API_REQUESTS = Counter(
    "plinth_api_requests",
    "Requests the operator's reconciles sent to the API server, by verb.",
    ["verb"],
    registry=REGISTRY,
)


def count_api_request(verb: str) -> None:
    """Hook for the kube layer: count one request."""
    API_REQUESTS.labels(verb=verb).inc()


class ReconcileOutcome:
    """Mutable result label of one reconcile, set by the handler before it returns."""

    def __init__(self) -> None:
        self.result = "ok"


@contextmanager
def observe_reconcile(kind: str) -> Iterator[ReconcileOutcome]:
    """Count one reconcile of `kind` and time it; an exception counts as an error."""
    outcome = ReconcileOutcome()
    started = time.perf_counter()
    try:
        yield outcome
    except Exception:
        outcome.result = "error"
        RECONCILE_ERRORS.labels(kind=kind).inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)
        RECONCILES.labels(kind=kind, result=outcome.result).inc()
