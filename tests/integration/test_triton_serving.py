"""Real Triton (the nvidia-pytriton wheel's tritonserver, CPU, python backend) on loopback,
serving repositories Plinth's own serving layer made: the model loads and answers through
tritonclient (HTTP and gRPC), its metrics read into Plinth's samples; the builtin
autoscaler asks for more replicas under load and for fewer after, without flapping; a
broken model's load error is Triton's own message in ModelReady; a slow-loading model is
not restarted by the probes the builder gives it (and would be with a too-short window)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from plinth.api.v1alpha1 import ModelDeploymentStatus
from plinth.builders.modeldeployment import triton_container
from plinth.kube.podmetrics import fetch, read_pods
from plinth.serving.metrics import TritonSample, triton_sample
from plinth.serving.repository import ResolvedModel
from plinth.status.modeldeployment import ModelDeploymentInputs, plan_modeldeployment
from plinth.status.modeldeployment_observe import index_request, observe_modeldeployment
from plinth.status.modeldeployment_scaling import Samples, builtin_scaling
from plinth.status.plan import PodRequest
from plinth_devcluster.podrunner.probes import Prober
from tests.support.serving import (
    BROKEN_MODEL,
    SLOW_MODEL,
    ModelDeploymentFactory,
    a_modeldeployment,
    a_server_pod,
)
from tests.support.triton import Load, LocalTriton, local_triton

pytestmark = pytest.mark.timeout(300)


def infer_once(server: LocalTriton, model: str = "scale") -> np.ndarray:
    client = httpclient.InferenceServerClient(server.http, network_timeout=30)
    data = httpclient.InferInput("INPUT", [1, 4], "FP32")
    data.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
    result = client.infer(model, [data]).as_numpy("OUTPUT")
    assert result is not None
    return result


def settled_sample(server: LocalTriton, successes: int) -> TritonSample | None:
    """The model's metrics once they count `successes` requests, or the last read after 10 s.

    Triton's backends report a request's statistics after its response is sent, so a
    client can read /metrics between the two and see the previous count."""
    deadline = time.monotonic() + 10
    while True:
        page = fetch(PodRequest("p", server.address, 8002, "/metrics"))
        sample = triton_sample(page.body, "scale", 1)
        if (sample and sample.success >= successes) or time.monotonic() > deadline:
            return sample
        time.sleep(0.1)


@pytest.fixture
def scale_server(tmp_path: Path) -> Iterator[LocalTriton]:
    spec = a_modeldeployment().with_runtime(maxBatchSize=8).with_env(SCALE_DELAY_MS="20").spec()
    with local_triton(spec, tmp_path) as server:
        client = httpclient.InferenceServerClient(server.http)
        deadline = time.monotonic() + 60
        while not client.is_model_ready("scale") and time.monotonic() < deadline:
            time.sleep(0.2)
        yield server


def test_a_repository_rendered_by_plinth_loads_and_serves(scale_server: LocalTriton) -> None:
    config = (scale_server.repository / "scale" / "config.pbtxt").read_text()
    assert "max_batch_size: 8" in config
    assert infer_once(scale_server).tolist() == [[0.0, 2.0, 4.0, 6.0]]
    grpc = grpcclient.InferenceServerClient(scale_server.grpc)
    assert grpc.is_model_ready("scale", "1")
    data = grpcclient.InferInput("INPUT", [1, 4], "FP32")
    data.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    assert grpc.infer("scale", [data]).as_numpy("OUTPUT").tolist() == [[2.0] * 4]
    sample = settled_sample(scale_server, successes=2)
    assert sample is not None and sample.success == 2 and sample.failure == 0
    assert sample.request_us > 0 and 0 <= sample.cpu_utilization <= 1


def test_the_builtin_autoscaler_follows_real_load_without_flapping(
    scale_server: LocalTriton,
) -> None:
    autoscaling = (
        a_modeldeployment().scaled(1, 4, target=15, scaleDownDelaySeconds=4).spec().autoscaling
    )
    request = PodRequest("scale-a", scale_server.address, 8002, "/metrics")
    history: list[int] = []
    replicas, status, before, last = 1, None, None, None

    def read(now: datetime) -> None:
        nonlocal replicas, status, before, last
        reading = read_pods([request])
        sample = triton_sample(reading.responses[request].body, "scale", 1)
        assert sample is not None
        seconds = (reading.time - last).total_seconds() if last else None
        samples = Samples({"scale-a": sample}, before, seconds)
        decided = builtin_scaling(autoscaling, replicas, samples, status, now)
        replicas, status, before, last = (
            decided.replicas,
            decided.status,
            {"scale-a": sample},
            reading.time,
        )
        history.append(replicas)

    with Load(lambda: infer_once(scale_server), clients=6, max_seconds=30):
        for _ in range(6):
            time.sleep(1.0)
            read(datetime.now(UTC))
    assert max(history) > 1, f"load did not raise the wish: {history}, {status}"
    loaded = max(history)
    for _ in range(10):  # load stopped: queue time 0, fewer replicas after the 4 s delay
        time.sleep(1.0)
        read(datetime.now(UTC))
    assert history[-1] == 1, history
    peak = history.index(loaded)
    assert history[: peak + 1] == sorted(history[: peak + 1]), f"up, then down: {history}"
    assert history[peak:] == sorted(history[peak:], reverse=True), f"no flapping: {history}"


def test_a_broken_model_reports_tritons_own_load_error(tmp_path: Path) -> None:
    factory = a_modeldeployment().from_uri(BROKEN_MODEL)
    with local_triton(factory.spec(), tmp_path) as server:
        pod = a_server_pod("scale-a", revision(factory), ip=server.address).build()
        observed = observe_modeldeployment([], [pod], [])
        (server_view,) = observed.servers
        reading = read_pods([index_request(server_view)])
        plan = plan_modeldeployment(
            ModelDeploymentInputs(
                spec=factory.spec(),
                owner=factory.owner(),
                previous=ModelDeploymentStatus(),
                observed=observed,
                now=datetime.now(UTC),
                reading=reading,
            )
        )
        assert server.is_live(), "exit-on-error=false keeps the server up to say why"
    ready = next(c for c in plan.status.conditions if c.type == "ModelReady")
    assert (ready.status, ready.reason) == ("False", "ModelLoadFailed")
    assert "weights file is corrupt: expected 4 tensors, found 0" in ready.message


def resolved(factory: ModelDeploymentFactory) -> ResolvedModel:
    spec = factory.spec()
    assert spec.model.uri is not None
    return ResolvedModel("scale", spec.model.version, spec.model.format, spec.model.uri)


def revision(factory: ModelDeploymentFactory) -> str:
    return resolved(factory).revision


def probe_until_ready(
    server: LocalTriton, factory: ModelDeploymentFactory, limit: float
) -> tuple[bool, str | None]:
    """Run the builder's probes on the real server as a kubelet would: (ready, restart reason)."""
    container = triton_container(factory.spec(), resolved(factory))
    prober = Prober.of(container, server.address, time.monotonic())
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = prober.tick(time.monotonic())
        if result.restart or result.ready:
            return result.ready, result.restart
        time.sleep(0.5)
    return False, None


def test_a_slow_loading_model_is_not_restarted_by_its_probes(tmp_path: Path) -> None:
    slow = a_modeldeployment().from_uri(SLOW_MODEL).with_env(SLOW_LOAD_SECONDS="15")
    patient = slow.with_runtime(startupTimeoutSeconds=60)
    with local_triton(patient.spec(), tmp_path / "patient", wait_live=False) as server:
        started = time.monotonic()
        ready, restart = probe_until_ready(server, patient, limit=90)
        assert (ready, restart) == (True, None), server.log_text()[-2000:]
        assert time.monotonic() - started >= 10, "ready only once the model loaded"
    hasty = slow.with_runtime(startupTimeoutSeconds=10)
    with local_triton(hasty.spec(), tmp_path / "hasty", wait_live=False) as server:
        ready, restart = probe_until_ready(server, hasty, limit=60)
        assert (ready, restart) == (False, "Startup probe failed")
