"""Benchmark: a mixed burst of gangs three times the cluster, on each gang placement path.

Creates, at once, TrainingJobs of 1, 2, 4 and 8 nodes x 8 GPUs whose total demand is
DEMAND times the cluster (default 3x on 100 nodes x 8 GPUs); every worker runs RUN_SECONDS
(kwok's run-seconds annotation) and exits 0. Measured per path, each on a fresh cluster:

- held-by-incomplete-gang GPU-seconds: sampled twice a second, the GPUs of workers bound
  to a node while other workers of their attempt are not, before the gang has run whole
  (goal: 0; a gang's workers are bound one after the other within milliseconds, so a small
  figure is that binding itself, not hoarding);
- the burst's makespan (creation to every job Succeeded) against the ideal packing
  (total node-seconds / nodes: no schedule can be faster), as a ratio.

Paths: `native` (kube-scheduler gangs each attempt's PodGroup), `plinth` (no PodGroup
API: Plinth admits each gang when the whole gang fits), `kueue` (real Kueue with a
ClusterQueue quota of the whole cluster, each job in its LocalQueue).

    .venv/bin/python bench/bench_gangs.py                       # 100 nodes, all paths
    .venv/bin/python bench/bench_gangs.py --nodes 20 --paths native,plinth

Prints a table and saves bench/results/gangs-<nodes>-nodes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client

import plinth_devcluster as devcluster
from bench_trainingjob import start_operator
from plinth.api.wellknown import JOB_NAME_LABEL, LABEL_TRAININGJOB
from plinth_devcluster.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
# The tests' own CRD installer and Kueue queue helpers, rather than a second copy here.
sys.path.insert(0, str(REPO))
from tests.plinth_testing import install_crds  # noqa: E402
from tests.support.kueue import create_queues  # noqa: E402

RESULTS = REPO / "bench" / "results"
NAMESPACE = "gangs"
#: Share of the burst's node demand made of jobs of each size (nodes per job).
MIX = {8: 0.4, 4: 0.3, 2: 0.2, 1: 0.1}
SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class Burst:
    nodes: int
    demand: float
    run_seconds: int

    def jobs(self) -> list[tuple[str, int]]:
        """(name, nodes) of every job: MIX of the demand, in node-slots."""
        slots = self.nodes * self.demand
        found: list[tuple[str, int]] = []
        for size, share in MIX.items():
            found += [(f"g{size}-{i}", size) for i in range(max(round(slots * share / size), 1))]
        return found

    def ideal_seconds(self) -> float:
        """The makespan of a perfect packing: node-seconds of work over the nodes."""
        return sum(size for _, size in self.jobs()) * self.run_seconds / self.nodes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--demand", type=float, default=3.0)
    parser.add_argument("--run-seconds", type=int, default=20)
    parser.add_argument("--paths", default="native,plinth,kueue")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args()


def trainingjob(name: str, nodes: int, run_seconds: int, queue: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "ghcr.io/plinth-dev/plinth-trainer:0.1.0",
        "nodes": nodes,
        "resources": {"gpus": 8},
        "podTemplate": {"annotations": {"devcluster.plinth.dev/run-seconds": str(run_seconds)}},
    }
    if queue:
        spec["queueName"] = queue
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


class HoardingSampler:
    """Samples bound workers per attempt; integrates GPU-seconds of incomplete gangs."""

    def __init__(self, api: client.ApiClient, gang_sizes: dict[str, int]) -> None:
        self.core = client.CoreV1Api(api)
        self.sizes = gang_sizes
        self.gpu_seconds = 0.0
        self.peak_gpus = 0
        #: Attempts whose whole gang has run at once, and each attempt's TrainingJob.
        self.started: set[str] = set()
        self.owner: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        """GPUs bound to workers of attempts placed in part: fewer workers on nodes than
        the gang, which has not yet run whole (a placed gang that is starting up is not
        counted: that is the kubelet's time, not hoarding)."""
        pods = self.core.list_namespaced_pod(NAMESPACE, label_selector=LABEL_TRAININGJOB).items
        bound: dict[str, int] = {}
        ran: dict[str, int] = {}
        for pod in pods:
            labels = pod.metadata.labels or {}
            attempt = labels.get(JOB_NAME_LABEL, "")
            self.owner[attempt] = labels[LABEL_TRAININGJOB]
            phase = pod.status.phase
            if pod.spec.node_name and phase in ("Pending", "Running"):
                bound[attempt] = bound.get(attempt, 0) + 1
            if phase in ("Running", "Succeeded"):
                ran[attempt] = ran.get(attempt, 0) + 1
        for attempt, count in ran.items():
            if count >= self.sizes[self.owner[attempt]]:
                self.started.add(attempt)
        return sum(
            8 * count
            for attempt, count in bound.items()
            if attempt not in self.started and count < self.sizes[self.owner[attempt]]
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            held = self._sample()
            self.peak_gpus = max(self.peak_gpus, held)
            self._stop.wait(SAMPLE_SECONDS)
            self.gpu_seconds += held * (time.monotonic() - began)

    def __enter__(self) -> HoardingSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def fresh_cluster(path: str, burst: Burst, state: Path) -> Iterator[devcluster.ClusterInfo]:
    name = f"bench-gangs-{path}"
    addons = ("kueue",) if path == "kueue" else ()
    info = devcluster.up(
        name, state_dir=state, nodes=burst.nodes, native_gang=path != "plinth", addons=addons
    )
    try:
        yield info
    finally:
        devcluster.down(name, state_dir=state)


def install(info: devcluster.ClusterInfo, api: client.ApiClient, path: str) -> str | None:
    """CRDs, the namespace, and (kueue) a ClusterQueue of the whole cluster; the queue."""
    install_crds(info)
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata={"name": NAMESPACE}))
    wait_for(
        lambda: bool(client.CoreV1Api(api).list_namespaced_service_account(NAMESPACE).items),
        what="default ServiceAccount",
        timeout=60,
    )
    if path != "kueue":
        return None
    nodes = len(client.CoreV1Api(api).list_node().items)
    return create_queues(api, NAMESPACE, gpus=8 * nodes).local_queue


def succeeded(api: client.ApiClient) -> int:
    listed: dict[str, Any] = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "plinth.dev", "v1alpha1", NAMESPACE, "trainingjobs"
    )
    items: list[dict[str, Any]] = listed["items"]
    return sum((job.get("status") or {}).get("phase") == "Succeeded" for job in items)


def run_path(path: str, burst: Burst, timeout: float) -> dict[str, Any]:
    jobs = burst.jobs()
    with tempfile.TemporaryDirectory(prefix=f"bench-gangs-{path}-") as scratch:
        state = Path(scratch)
        with (
            fresh_cluster(path, burst, state) as info,
            devcluster.api_client(info.kubeconfig) as api,
        ):
            queue = install(info, api, path)
            operator, _port = start_operator(info.kubeconfig, state / "operator.log")
            try:
                custom = client.CustomObjectsApi(api)
                with HoardingSampler(api, dict(jobs)) as sampler:
                    began = time.monotonic()
                    for name, size in jobs:
                        body = trainingjob(name, size, burst.run_seconds, queue)
                        custom.create_namespaced_custom_object(
                            "plinth.dev", "v1alpha1", NAMESPACE, "trainingjobs", body
                        )
                    wait_for(
                        lambda: succeeded(api) == len(jobs),
                        what="every gang finished",
                        timeout=timeout,
                        interval=1.0,
                    )
                    makespan = time.monotonic() - began
            finally:
                operator.terminate()
                operator.wait(30)
    ideal = burst.ideal_seconds()
    return {
        "path": path,
        "jobs": len(jobs),
        "makespan_seconds": round(makespan, 1),
        "ideal_seconds": round(ideal, 1),
        "makespan_vs_ideal": round(makespan / ideal, 2),
        "incomplete_gang_gpu_hours": round(sampler.gpu_seconds / 3600, 4),
        "incomplete_gang_peak_gpus": sampler.peak_gpus,
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    header = f"{'path':8} {'jobs':>5} {'makespan s':>11} {'ideal s':>8} {'x ideal':>8} "
    header += f"{'partial-gang GPU-h':>19} {'peak GPUs':>10}"
    lines = [header]
    for row in rows:
        lines.append(
            f"{row['path']:8} {row['jobs']:>5} {row['makespan_seconds']:>11} "
            f"{row['ideal_seconds']:>8} {row['makespan_vs_ideal']:>8} "
            f"{row['incomplete_gang_gpu_hours']:>19} {row['incomplete_gang_peak_gpus']:>10}"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    burst = Burst(args.nodes, args.demand, args.run_seconds)
    rows = [run_path(path, burst, args.timeout) for path in args.paths.split(",")]
    report = {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "cluster": {"nodes": args.nodes, "gpus_per_node": 8},
        "burst": {"demand_vs_cluster": args.demand, "run_seconds": args.run_seconds},
        "paths": rows,
    }
    print(table(rows))
    target = args.output or RESULTS / f"gangs-{args.nodes}-nodes.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {target}")


if __name__ == "__main__":
    main()
