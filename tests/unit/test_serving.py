"""The pure serving layer: config.pbtxt from the typed runtime settings, Triton's metrics
read and differenced, the builtin scaling policy (tolerance, immediate scale-up, delayed
and stabilised scale-down, no flapping on noise), canary replica shares and gates, and
the autoscaler backends' objects."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import yaml

from plinth.api.v1alpha1 import Autoscaling, Gates, ModelFormat, Traffic
from plinth.serving.autoscalers import (
    ADAPTER_METRICS,
    ScaleTarget,
    backend_for,
    hpa_metric,
    hpa_view,
    keda_query,
    quantity,
)
from plinth.serving.canary import Outcome, canary_replicas, judge, replica_share
from plinth.serving.metrics import (
    TritonSample,
    parse_prometheus,
    served_between,
    served_by,
    triton_sample,
)
from plinth.serving.repository import ResolvedModel, joined_uri, loader_source, pvc_location
from plinth.serving.scaling import decide, recommended_replicas
from plinth.serving.triton_config import render_model_config
from tests.support.serving import REPO_ROOT, T0, a_modeldeployment, metrics_page

# ---- config.pbtxt -------------------------------------------------------------------------


def test_config_carries_every_runtime_setting() -> None:
    spec = (
        a_modeldeployment()
        .with_runtime(
            maxBatchSize=32,
            dynamicBatching={
                "preferredBatchSizes": [8, 16],
                "maxQueueDelayMicroseconds": 2000,
                "preserveOrdering": True,
                "maxQueueSize": 64,
                "queueTimeoutMicroseconds": 500_000,
            },
            instanceGroups=[{"count": 2, "kind": "gpu"}, {"count": 1, "kind": "cpu"}],
        )
        .with_resources(gpus=1)
        .spec()
    )
    config = render_model_config("scale", spec.model, spec.runtime, gpus=1)
    assert config.splitlines()[:4] == [
        'name: "scale"',
        'backend: "python"',
        "max_batch_size: 32",
        "version_policy: { specific: { versions: [ 1 ] } }",
    ]
    for line in (
        '  { name: "INPUT" data_type: TYPE_FP32 dims: [ 4 ] }',
        "  { count: 2 kind: KIND_GPU },",
        "  { count: 1 kind: KIND_CPU }",
        "  preferred_batch_size: [ 8, 16 ]",
        "  max_queue_delay_microseconds: 2000",
        "  preserve_ordering: true",
        "    timeout_action: REJECT",
        "    default_timeout_microseconds: 500000",
        "    max_queue_size: 64",
    ):
        assert line in config.splitlines(), line


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("onnx", 'backend: "onnxruntime"'),
        ("tensorrt", 'platform: "tensorrt_plan"'),
        ("tensorflow", 'platform: "tensorflow_savedmodel"'),
    ],
)
def test_config_names_the_backend_of_each_format(fmt: str, line: str) -> None:
    spec = a_modeldeployment().with_model(format=fmt, inputs=None, outputs=None).spec()
    config = render_model_config("m", spec.model, spec.runtime, gpus=0)
    assert line in config
    assert "input [" not in config, "tensors left to Triton's auto-complete"
    assert "{ count: 1 kind: KIND_CPU }" in config, "auto is the CPU without GPUs"


def test_model_revision_changes_exactly_with_the_model() -> None:
    model = ResolvedModel("m", 1, ModelFormat.ONNX, "https://h/m.onnx")
    assert model.revision == ResolvedModel("m", 1, ModelFormat.ONNX, "https://h/m.onnx").revision
    assert model.revision != ResolvedModel("m", 2, ModelFormat.ONNX, "https://h/m.onnx").revision
    assert model.revision != ResolvedModel("m", 1, ModelFormat.ONNX, "https://h/n.onnx").revision
    assert len(model.revision) == 10
    assert model.version_directory == "/models/m/1"


def test_pvc_uris_are_read_where_the_claim_is_mounted() -> None:
    assert pvc_location("pvc://models/resnet/v2") is not None
    assert loader_source("pvc://models/resnet/v2") == "/mnt/model-source/resnet/v2"
    assert loader_source("https://h/m.onnx") == "https://h/m.onnx"
    assert joined_uri("/ckpt/run-1/", "/model") == "/ckpt/run-1/model"


# ---- metrics --------------------------------------------------------------------------------


def test_a_metrics_page_reads_into_a_sample_of_one_model_version() -> None:
    page = metrics_page("scale", success=90, failure=10, queue_us=5000, request_us=20000, pending=3)
    page += metrics_page("other", success=1000)
    sample = triton_sample(page, "scale", 1)
    assert sample is not None
    assert (sample.success, sample.failure, sample.requests) == (90, 10, 100)
    assert (sample.queue_us, sample.request_us, sample.pending) == (5000, 20000, 3)
    assert sample.cpu_utilization == pytest.approx(0.1)
    assert sample.gpu_utilization is None
    assert triton_sample(page, "scale", 2) is None
    assert triton_sample('garbage\n# comment\nnv_x{a="1"} nan-ish', "scale", 1) is None
    assert [line.name for line in parse_prometheus('a_b{x="1"} 2\n# c\nbad')] == ["a_b"]


def test_served_between_two_samples_and_across_a_server_restart() -> None:
    before = TritonSample(success=100, failure=0, queue_us=1000, request_us=5000, inferences=100)
    after = TritonSample(success=150, failure=10, queue_us=3000, request_us=9000, inferences=160)
    served = served_between(before, after)
    assert (served.requests, served.failures, served.queue_us) == (60, 10, 2000)
    restarted = TritonSample(success=5, queue_us=50)
    assert served_between(after, restarted).requests == 5
    total = served_by({"a": before, "gone": before}, {"a": after, "new": after})
    assert total.requests == 60, "only replicas read both times count"


# ---- scaling policy -------------------------------------------------------------------------


def autoscaling(low: int = 1, high: int = 4, delay: int = 60) -> Autoscaling:
    return Autoscaling(
        min_replicas=low, max_replicas=high, target=20, scale_down_delay_seconds=delay
    )


def test_recommendation_follows_the_hpa_formula_with_tolerance() -> None:
    assert recommended_replicas(60, 20, ready=1, current=1) == 3
    assert recommended_replicas(21, 20, ready=2, current=2) == 2, "within 10%"
    assert recommended_replicas(5, 20, ready=4, current=4) == 1
    assert recommended_replicas(60, 20, ready=0, current=2) == 2, "nothing ready: hold"


def test_scale_up_is_immediate_and_bounded() -> None:
    decision = decide(autoscaling(), current=1, recommended=9, pending=None, now=T0)
    assert (decision.replicas, decision.scale_down) == (4, None)


def test_scale_down_waits_for_the_delay_and_takes_the_highest_wish() -> None:
    policy = autoscaling(delay=60)
    first = decide(policy, current=4, recommended=1, pending=None, now=T0)
    assert first.replicas == 4 and first.scale_down is not None
    later = decide(policy, 4, 2, first.scale_down, T0 + timedelta(seconds=30))
    assert later.replicas == 4 and later.scale_down and later.scale_down.replicas == 2
    done = decide(policy, 4, 1, later.scale_down, T0 + timedelta(seconds=61))
    assert (done.replicas, done.scale_down) == (2, None)
    back_up = decide(policy, 4, 4, first.scale_down, T0 + timedelta(seconds=10))
    assert back_up.scale_down is None, "load came back: the pending scale-down is dropped"


def test_a_steady_noisy_load_makes_no_decision_once_settled() -> None:
    noise = random.Random(7)
    policy, replicas, pending, changes = autoscaling(delay=120), 3, None, 0
    for tick in range(720):  # an hour of readings 5 s apart, load +-8% around the target
        value = 20 * (1 + noise.uniform(-0.08, 0.08))
        wish = recommended_replicas(value, 20, ready=replicas, current=replicas)
        decision = decide(policy, replicas, wish, pending, T0 + timedelta(seconds=5 * tick))
        changes += decision.replicas != replicas
        replicas, pending = decision.replicas, decision.scale_down
    assert changes == 0


# ---- canary ------------------------------------------------------------------------------


def test_canary_replicas_make_the_weight_of_all_replicas() -> None:
    assert canary_replicas(4, 50) == 4
    assert canary_replicas(9, 10) == 1
    assert canary_replicas(1, 10) == 1, "at least one"
    assert replica_share(4, 4) == 50
    assert replica_share(1, 1) == 50


def test_gates_wait_for_min_requests_then_judge_error_rate_and_latency() -> None:
    gates = Gates(max_error_rate=0.05, max_latency_ms=50, max_latency_ratio=1.5, min_requests=100)
    stable = Traffic(requests=1000, failures=0, latency_microseconds=1000 * 10_000)
    assert judge(gates, Traffic(requests=10), stable).outcome == Outcome.WAIT
    good = Traffic(requests=200, failures=2, latency_microseconds=200 * 12_000)
    assert judge(gates, good, stable).outcome == Outcome.PASS
    failing = Traffic(requests=200, failures=40, latency_microseconds=200 * 12_000)
    verdict = judge(gates, failing, stable)
    assert (
        verdict.outcome == Outcome.FAIL
        and "error rate 0.200 > maxErrorRate 0.05" in verdict.message
    )
    slow = Traffic(requests=200, failures=0, latency_microseconds=200 * 40_000)
    assert "x stable's 10.0 ms" in judge(gates, slow, stable).message


# ---- autoscaler backends ---------------------------------------------------------------------


def target(**autoscaling_fields: object) -> ScaleTarget:
    fields = {"min_replicas": 1, "max_replicas": 4, "target": 20, **autoscaling_fields}
    return ScaleTarget(
        deployment="scale-abc",
        namespace="ml",
        model="scale",
        version=1,
        autoscaling=Autoscaling(**fields),  # type: ignore[arg-type]
        metadata={"name": "scale", "namespace": "ml"},
    )


def test_builtin_sets_replicas_and_makes_no_object() -> None:
    scale = target()
    assert backend_for(scale.autoscaling).writes_replicas(scale.autoscaling)
    assert backend_for(scale.autoscaling).manifests(scale) == ()


def test_hpa_scales_on_triton_metrics_through_the_adapter() -> None:
    scale = target(backend="hpa", scale_down_delay_seconds=120)
    (hpa,) = backend_for(scale.autoscaling).manifests(scale)
    assert not backend_for(scale.autoscaling).writes_replicas(scale.autoscaling)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "scale-abc"
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "triton_queue_time_ms"},
                "target": {"type": "AverageValue", "averageValue": "20"},
            },
        }
    ]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    cpu = hpa_metric(Autoscaling(metric="cpu", target=70).metric, 70)
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert quantity(0.5) == "500m"


def test_keda_queries_prometheus_and_may_scale_to_zero() -> None:
    scale = target(backend="keda", min_replicas=0, prometheus_address="http://prom:9090")
    (scaled_object,) = backend_for(scale.autoscaling).manifests(scale)
    assert scaled_object["spec"]["minReplicaCount"] == 0
    (trigger,) = scaled_object["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
    assert trigger["metadata"]["serverAddress"] == "http://prom:9090"
    assert 'pod=~"scale-abc-.*"' in trigger["metadata"]["query"]
    query, kind = keda_query(Autoscaling(metric="pendingRequests").metric, scale)
    assert kind == "AverageValue" and query.startswith("sum(nv_inference_pending_request_count")


def test_an_hpa_that_cannot_read_its_metric_says_so() -> None:
    hpa = {
        "status": {
            "desiredReplicas": 2,
            "currentMetrics": [{"type": "Pods", "pods": {"current": {"averageValue": "1500m"}}}],
            "conditions": [
                {
                    "type": "ScalingActive",
                    "status": "False",
                    "reason": "FailedGetPodsMetric",
                    "message": "unable to get metric triton_queue_time_ms",
                }
            ],
        }
    }
    view = hpa_view(hpa)
    assert (view.able, view.reason, view.current_value, view.desired_replicas) == (
        False,
        "FailedGetPodsMetric",
        1.5,
        2,
    )
    assert hpa_view({}).reason == "Waiting"


def test_the_shipped_prometheus_adapter_rules_serve_every_metric_the_hpa_asks_for() -> None:
    values = yaml.safe_load(
        (REPO_ROOT / "charts/plinth/prometheus-adapter-values.yaml").read_text()
    )
    served = {rule["name"]["as"] for rule in values["rules"]["custom"]}
    assert served == set(ADAPTER_METRICS.values())
