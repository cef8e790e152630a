"""Triton's Prometheus metrics, read from one replica's metrics port.

Triton exports counters per model version (requests succeeded and failed, inferences,
cumulative queue and request time in microseconds) and gauges (pending requests, CPU and
GPU utilisation). A reading of one replica is a `TritonSample`; what happened between two
readings of the same replica is `Served`, with counter resets (a restarted server) read
as counting from zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')

SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
INFERENCES = "nv_inference_count"
QUEUE_US = "nv_inference_queue_duration_us"
REQUEST_US = "nv_inference_request_duration_us"
PENDING = "nv_inference_pending_request_count"
CPU_UTILIZATION = "nv_cpu_utilization"
GPU_UTILIZATION = "nv_gpu_utilization"


@dataclass(frozen=True)
class MetricLine:
    """One sample line of the Prometheus text format."""

    name: str
    labels: Mapping[str, str]
    value: float


def parse_prometheus(text: str) -> Iterator[MetricLine]:
    """The sample lines of a Prometheus text exposition (comments and junk skipped)."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = {m["key"]: m["value"] for m in _LABEL.finditer(match["labels"] or "")}
        yield MetricLine(match["name"], labels, value)


@dataclass(frozen=True)
class TritonSample:
    """One replica's counters and gauges for one model version."""

    success: float = 0.0
    failure: float = 0.0
    inferences: float = 0.0
    queue_us: float = 0.0
    request_us: float = 0.0
    pending: float = 0.0
    #: The server's CPU utilisation (0..1), and the mean of its GPUs' (None: no GPU).
    cpu_utilization: float = 0.0
    gpu_utilization: float | None = None

    @property
    def requests(self) -> float:
        return self.success + self.failure


def _is_model(line: MetricLine, model: str, version: int) -> bool:
    return line.labels.get("model") == model and line.labels.get("version") == str(version)


def _model_sums(lines: Iterable[MetricLine], model: str, version: int) -> dict[str, float]:
    sums: dict[str, float] = {}
    for line in lines:
        if _is_model(line, model, version):
            sums[line.name] = sums.get(line.name, 0.0) + line.value
    return sums


def triton_sample(text: str, model: str, version: int) -> TritonSample | None:
    """The sample of `model` version `version` in a metrics page; None when the page has
    no counters for it (the model is not loaded there)."""
    lines = list(parse_prometheus(text))
    sums = _model_sums(lines, model, version)
    if SUCCESS not in sums:
        return None
    gpus = [line.value for line in lines if line.name == GPU_UTILIZATION]
    cpu = next((line.value for line in lines if line.name == CPU_UTILIZATION), 0.0)
    return TritonSample(
        success=sums.get(SUCCESS, 0.0),
        failure=sums.get(FAILURE, 0.0),
        inferences=sums.get(INFERENCES, 0.0),
        queue_us=sums.get(QUEUE_US, 0.0),
        request_us=sums.get(REQUEST_US, 0.0),
        pending=sums.get(PENDING, 0.0),
        cpu_utilization=cpu,
        gpu_utilization=sum(gpus) / len(gpus) if gpus else None,
    )


@dataclass(frozen=True)
class Served:
    """What replicas served between two readings (summed over replicas)."""

    requests: float = 0.0
    failures: float = 0.0
    inferences: float = 0.0
    queue_us: float = 0.0
    request_us: float = 0.0

    def __add__(self, other: Served) -> Served:
        return Served(
            requests=self.requests + other.requests,
            failures=self.failures + other.failures,
            inferences=self.inferences + other.inferences,
            queue_us=self.queue_us + other.queue_us,
            request_us=self.request_us + other.request_us,
        )


def _delta(before: float, after: float) -> float:
    """A counter's increase; a counter that went down was reset and counts from zero."""
    return after - before if after >= before else after


def served_between(before: TritonSample, after: TritonSample) -> Served:
    """What one replica served between two of its samples."""
    if after.requests < before.requests:  # the server restarted: everything is new
        before = TritonSample()
    return Served(
        requests=_delta(before.requests, after.requests),
        failures=_delta(before.failure, after.failure),
        inferences=_delta(before.inferences, after.inferences),
        queue_us=_delta(before.queue_us, after.queue_us),
        request_us=_delta(before.request_us, after.request_us),
    )


def served_by(before: Mapping[str, TritonSample], after: Mapping[str, TritonSample]) -> Served:
    """What the replicas read both times (by pod name) served in between."""
    total = Served()
    for pod, sample in after.items():
        if pod in before:
            total = total + served_between(before[pod], sample)
    return total
