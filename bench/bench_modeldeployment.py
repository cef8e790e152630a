"""Benchmark: ModelDeployment autoscaling on real Triton, and 100 deployments on the
emulated cluster.

1. Reaction: a real tritonserver (the nvidia-pytriton wheel, CPU) serves the example python
   model, read every metrics period as the operator reads a replica; a load step (bounded,
   loopback only) starts, and the time until the builtin autoscaler decides to add
   replicas is measured (goal: within two metric periods).
2. Stability: a steady, noisy load is recorded on the same server (queue time per period);
   an hour of decisions is replayed from those recorded values through the same policy,
   with the queue time shared out over the replicas it decides on, and the decisions made
   once settled are counted (goal: none).
3. Scale on the emulated cluster: 100 ModelDeployments applied at once (kwok's replicas);
   the time from creation until every child (Deployment, Service, PodDisruptionBudget)
   exists, then the operator's memory and its API requests per deployment per minute at
   rest.

    .venv/bin/python bench/bench_modeldeployment.py            # all three
    .venv/bin/python bench/bench_modeldeployment.py --skip-cluster

Prints the figures and saves them under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as httpclient
from kubernetes import client

import plinth_devcluster as devcluster
from plinth.api.v1alpha1 import AutoscalerStatus, Autoscaling, ModelDeploymentSpec, parse_spec
from plinth.builders.modeldeployment import triton_args
from plinth.serving.metrics import TritonSample, triton_sample
from plinth.serving.repository import REPOSITORY_PATH, ResolvedModel
from plinth.serving.scaling import decide, recommended_replicas
from plinth.serving.triton_config import render_model_config
from plinth.status.modeldeployment_scaling import (
    METRICS_PERIOD_SECONDS,
    Samples,
    builtin_scaling,
)
from plinth_client.model_loader import load
from plinth_devcluster.network import free_ports
from plinth_devcluster.podrunner import triton
from plinth_devcluster.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MODEL = REPO / "images" / "serving" / "examples" / "scale"
NAMESPACE = "bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--rest-seconds", type=float, default=60.0)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-triton", action="store_true")
    parser.add_argument("--only-stability", action="store_true", help="skip the reaction part")
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args()


# --------------------------------------------------------------------------------------
# Real Triton
# --------------------------------------------------------------------------------------


def model_spec(delay_ms: int) -> ModelDeploymentSpec:
    tensors = [{"name": "INPUT", "dataType": "FP32", "dims": [4]}]
    spec = parse_spec(
        "ModelDeployment",
        {
            "model": {
                "uri": str(MODEL),
                "format": "python",
                "name": "scale",
                "inputs": tensors,
                "outputs": [{**tensors[0], "name": "OUTPUT"}],
            },
            "runtime": {
                "maxBatchSize": 8,
                "env": [{"name": "SCALE_DELAY_MS", "value": str(delay_ms)}],
            },
        },
    )
    assert isinstance(spec, ModelDeploymentSpec)
    return spec


def loopback_address() -> str:
    while True:
        octets = (
            secrets.choice(range(64, 128)),
            secrets.randbelow(256),
            secrets.randbelow(254) + 1,
        )
        address = "127.{}.{}.{}".format(*octets)
        with socket.socket() as probe:
            try:
                probe.bind((address, 8000))
            except OSError:
                continue
        return address


@contextmanager
def real_triton(spec: ModelDeploymentSpec, workdir: Path) -> Iterator[str]:
    """Triton serving `spec` as a replica would (loader, rendered config, builder's args)."""
    assert spec.model.uri is not None
    model = ResolvedModel("scale", 1, spec.model.format, spec.model.uri)
    repository = workdir / "models"
    config = render_model_config("scale", spec.model, spec.runtime, 0)
    load(model.uri, "python", repository / "scale", 1, config)
    args = [a.replace(f"={REPOSITORY_PATH}", f"={repository}") for a in triton_args(spec, model)]
    address = loopback_address()
    env = {**os.environ, **{v.name: v.value or "" for v in spec.runtime.env}}
    with (workdir / "triton.log").open("wb") as log:
        process = subprocess.Popen(
            [*triton.server_argv(address), *args],
            env=triton.server_environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        http = httpclient.InferenceServerClient(f"{address}:8000")

        def ready() -> bool:
            try:
                return bool(http.is_model_ready("scale"))
            except Exception:
                return False

        wait_for(ready, what="Triton ready", timeout=90)
        yield address
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server and its backend stubs, SIGKILL if they linger."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def read_sample(address: str) -> TritonSample:
    with urllib.request.urlopen(f"http://{address}:8002/metrics", timeout=2) as answer:
        sample = triton_sample(answer.read().decode(), "scale", 1)
    assert sample is not None
    return sample


class Load:
    """`clients` threads sending requests (with `think` seconds between them) until stopped
    or `max_seconds` have passed: bounded, loopback only."""

    def __init__(
        self, address: str, clients: int, think: Callable[[], float], max_seconds: float
    ) -> None:
        self.address, self.think = address, think
        self.deadline = time.monotonic() + max_seconds
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _loop(self) -> None:
        http = httpclient.InferenceServerClient(f"{self.address}:8000", network_timeout=30)
        data = httpclient.InferInput("INPUT", [1, 4], "FP32")
        data.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            http.infer("scale", [data])
            pause = self.think()
            if pause:
                self.stopping.wait(pause)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


@dataclass
class Reader:
    """Reads the replica every period and decides as the builtin autoscaler does."""

    address: str
    autoscaling: Autoscaling
    replicas: int = 1
    status: AutoscalerStatus | None = None
    before: TritonSample | None = None
    before_at: float | None = None

    def read(self) -> tuple[float | None, int]:
        now = time.monotonic()
        sample = read_sample(self.address)
        seconds = now - self.before_at if self.before_at else None
        samples = Samples({"r": sample}, {"r": self.before} if self.before else None, seconds)
        decided = builtin_scaling(
            self.autoscaling, self.replicas, samples, self.status, datetime.now(UTC)
        )
        self.replicas, self.status, self.before, self.before_at = (
            decided.replicas,
            decided.status,
            sample,
            now,
        )
        return decided.status.current_value, decided.replicas


def reaction(address: str) -> dict[str, Any]:
    """Seconds from a load step to the decision to add replicas."""
    autoscaling = Autoscaling(
        min_replicas=1, max_replicas=4, target=10, scale_down_delay_seconds=300
    )
    reader = Reader(address, autoscaling)
    readings = []
    for _ in range(2):  # idle readings before the step
        readings.append(reader.read())
        time.sleep(METRICS_PERIOD_SECONDS)
    step = time.monotonic()
    load = Load(address, clients=6, think=lambda: 0.0, max_seconds=60)
    decided_at = None
    try:
        while time.monotonic() - step < 4 * METRICS_PERIOD_SECONDS:
            time.sleep(METRICS_PERIOD_SECONDS)
            value, replicas = reader.read()
            readings.append((value, replicas))
            if replicas > 1 and decided_at is None:
                decided_at = time.monotonic()
                break
    finally:
        load.stop()
    seconds = None if decided_at is None else decided_at - step
    return {
        "metrics_period_seconds": METRICS_PERIOD_SECONDS,
        "seconds_from_load_step_to_scale_decision": None if seconds is None else round(seconds, 2),
        "metric_periods_to_decision": None
        if seconds is None
        else round(seconds / METRICS_PERIOD_SECONDS, 2),
        "readings_queue_ms_and_replicas": readings,
    }


def record_noisy_load(address: str, seconds: float, period: float) -> list[float]:
    """Queue time per request in each `period` of a steady load with random think times."""
    noise = random.Random(11)

    def think() -> float:  # bursts and lulls around a steady mean
        return 0.3 if noise.random() < 0.05 else noise.uniform(0.0, 0.06)

    load = Load(address, clients=4, think=think, max_seconds=seconds + 30)
    values: list[float] = []
    try:
        time.sleep(period)
        before = read_sample(address)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(period)
            after = read_sample(address)
            requests = after.requests - before.requests
            values.append((after.queue_us - before.queue_us) / requests / 1000 if requests else 0.0)
            before = after
    finally:
        load.stop()
    return values


def replay_hour(recorded: list[float], settle_seconds: float = 600) -> dict[str, Any]:
    """An hour of builtin decisions fed with the recorded values (queue time shared out
    over the replicas: value(r) = recorded x 2 / r, a load that needs 2 replicas)."""
    chance = random.Random(7)
    autoscaling = Autoscaling(
        min_replicas=1,
        max_replicas=8,
        target=statistics.median(recorded),
        scale_down_delay_seconds=300,
    )
    replicas, pending, decisions, settled, start = 2, None, 0, 0, datetime(2026, 1, 1, tzinfo=UTC)
    ticks = int(3600 / METRICS_PERIOD_SECONDS)
    for tick in range(ticks):
        value = chance.choice(recorded) * 2 / replicas
        assert autoscaling.target is not None
        wish = recommended_replicas(value, autoscaling.target, replicas, replicas)
        now = start + timedelta(seconds=tick * METRICS_PERIOD_SECONDS)
        decision = decide(autoscaling, replicas, wish, pending, now)
        if decision.replicas != replicas:
            decisions += 1
            settled += tick * METRICS_PERIOD_SECONDS >= settle_seconds
        replicas, pending = decision.replicas, decision.scale_down
    spread = statistics.pstdev(recorded) / statistics.mean(recorded)
    return {
        "recorded_periods": len(recorded),
        "recorded_queue_ms_median": round(statistics.median(recorded), 2),
        "recorded_relative_spread": round(spread, 3),
        "decisions_in_the_hour": decisions,
        "decisions_per_hour_once_settled": settled,
    }


def triton_figures(workdir: Path, only_stability: bool = False) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if not only_stability:
        with real_triton(model_spec(delay_ms=20), workdir / "reaction") as address:
            figures["reaction"] = reaction(address)
    with real_triton(model_spec(delay_ms=20), workdir / "noisy") as address:
        recorded = record_noisy_load(address, seconds=60, period=2.0)
    figures["stability"] = replay_hour(recorded) | {
        "recorded_queue_ms": [round(v, 2) for v in recorded]
    }
    return figures


# --------------------------------------------------------------------------------------
# 100 deployments on the emulated cluster
# --------------------------------------------------------------------------------------


def probe(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def api_requests(port: int) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in probe(port, "/metrics").splitlines()
        if line.startswith("plinth_api_requests_total{")
    )


def rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": f"https://models.example/{name}.onnx", "format": "onnx"},
            "resources": {"gpus": 1},
        },
    }


def children_created(api: client.ApiClient) -> dict[str, float]:
    """Per deployment, the creation time of its last child (Deployment, Service, PDB)."""
    apps, core, policy = client.AppsV1Api(api), client.CoreV1Api(api), client.PolicyV1Api(api)
    selector = "plinth.dev/modeldeployment"
    latest: dict[str, list[datetime]] = {}
    for listing in (
        apps.list_namespaced_deployment(NAMESPACE, label_selector=selector).items,
        core.list_namespaced_service(NAMESPACE, label_selector=selector).items,
        policy.list_namespaced_pod_disruption_budget(NAMESPACE, label_selector=selector).items,
    ):
        for item in listing:
            latest.setdefault(item.metadata.labels[selector], []).append(
                item.metadata.creation_timestamp
            )
    return {name: max(times).timestamp() for name, times in latest.items() if len(times) == 3}


def cluster_figures(count: int, rest_seconds: float, state: Path) -> dict[str, Any]:
    cluster = devcluster.up("plinth-bench-md", state_dir=state, nodes=100, gpus_per_node=8)
    operator = None
    try:
        kubectl = [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig)]
        for args in (
            ["apply", "--server-side", "-f", str(REPO / "crds")],
            ["wait", "--for=condition=Established", "-f", str(REPO / "crds")],
            ["create", "namespace", NAMESPACE],
        ):
            subprocess.run([*kubectl, *args], check=True, capture_output=True)
        port = free_ports(1)[0]
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        with (state / "operator.log").open("wb") as log:
            operator = subprocess.Popen(
                [sys.executable, "-m", "plinth", "run", "--probe-port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: probe(port, "/readyz") == "ok" or bool(probe(port, "/readyz")),
            what="operator",
            timeout=60,
        )
        with devcluster.api_client(cluster.kubeconfig) as api:
            custom = client.CustomObjectsApi(api)
            created = {}
            began = time.monotonic()
            for index in range(count):
                name = f"md-{index:03d}"
                body = custom.create_namespaced_custom_object(
                    "plinth.dev", "v1alpha1", NAMESPACE, "modeldeployments", deployment(name)
                )
                created[name] = datetime.fromisoformat(
                    body["metadata"]["creationTimestamp"].replace("Z", "+00:00")
                ).timestamp()
            wait_for(lambda: len(children_created(api)) >= count, what="every child", timeout=600)
            all_children = time.monotonic() - began
            latencies = [at - created[name] for name, at in children_created(api).items()]

            def all_ready() -> bool:
                listed = custom.list_namespaced_custom_object(
                    "plinth.dev", "v1alpha1", NAMESPACE, "modeldeployments"
                )
                return (
                    sum(i.get("status", {}).get("phase") == "Ready" for i in listed["items"])
                    >= count
                )

            wait_for(all_ready, what="every deployment Ready", timeout=600)
            all_ready_seconds = time.monotonic() - began
            time.sleep(10)  # settle
            before = api_requests(port)
            time.sleep(rest_seconds)
            at_rest = api_requests(port) - before
            rss, peak = rss_mib(operator.pid)
        return {
            "deployments": count,
            "nodes": 100,
            "seconds_to_all_children_median": round(statistics.median(latencies), 2),
            "seconds_to_all_children_p99": round(
                sorted(latencies)[int(0.99 * (len(latencies) - 1))], 2
            ),
            "seconds_until_every_child_exists": round(all_children, 2),
            "seconds_until_every_deployment_ready": round(all_ready_seconds, 2),
            "api_requests_per_deployment_per_minute_at_rest": round(
                at_rest / count / (rest_seconds / 60), 3
            ),
            "operator_rss_mib_at_rest": round(rss, 1),
            "operator_peak_rss_mib": round(peak, 1),
        }
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        devcluster.down("plinth-bench-md", state_dir=state)


def main() -> int:
    args = parse_args()
    figures: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_triton:
            figures["triton"] = triton_figures(Path(scratch), args.only_stability)
        if not args.skip_cluster:
            figures["cluster"] = cluster_figures(
                args.deployments, args.rest_seconds, Path(scratch) / "cluster"
            )
    text = json.dumps(figures, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS / "modeldeployment.json"
    output.write_text(text + "\n")
    print(f"saved {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
