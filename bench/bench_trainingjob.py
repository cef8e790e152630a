"""Benchmark: many TrainingJobs created at once on the emulated cluster.

Creates JOBS TrainingJobs of WORKERS workers each in one burst and measures, per job, the
time from its creation until every worker is Running; then the operator's API requests per
job (its own `plinth_api_requests_total`), CPU seconds and peak memory. Workers are kept
Running by kwok (annotation devcluster.plinth.dev/run-forever), so placement and the
operator are what is timed.

    .venv/bin/python bench/bench_trainingjob.py                 # 200 jobs x 4 workers, 100 nodes
    .venv/bin/python bench/bench_trainingjob.py --nodes 1000 --gpus-per-worker 8

Prints the figures and saves them under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client, watch

import plinth_devcluster as devcluster
from plinth_devcluster.network import free_ports
from plinth_devcluster.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
NAMESPACE = "bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--gpus-per-worker", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args()


def start_operator(kubeconfig: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_ports(1)[0]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "plinth", "run", "--probe-port", str(port)],
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: probe(port, "/readyz")[0] == 200, what="operator ready", timeout=60)
    return process, port


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status), answer.read().decode()
    except OSError:
        return 0, ""


def api_requests_by_label(port: int, label: str) -> dict[str, float]:
    """The operator's `plinth_api_requests_total`, summed by one label ("verb" or "kind")."""
    counts: dict[str, float] = {}
    for line in probe(port, "/metrics")[1].splitlines():
        if line.startswith("plinth_api_requests_total{"):
            value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
            counts[value] = counts.get(value, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def api_requests_by_verb(port: int) -> dict[str, float]:
    return api_requests_by_label(port, "verb")


def api_requests(port: int) -> float:
    return sum(api_requests_by_verb(port).values())


def process_usage(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS in MiB of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = next(
        int(line.split()[1]) / 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return cpu, peak


def trainingjob(name: str, workers: int, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "ghcr.io/plinth-dev/plinth-trainer:0.1.0",
            "nodes": workers,
            "resources": {"gpus": gpus},
            "podTemplate": {"annotations": {"devcluster.plinth.dev/run-forever": "true"}},
        },
    }


class RunningTracker:
    """Watches worker pods; records when each job first had all its workers Running."""

    def __init__(
        self, api: client.ApiClient, workers: int, label: str = "plinth.dev/trainingjob"
    ) -> None:
        self.api, self.workers, self.label = api, workers, label
        self.running: dict[str, set[str]] = {}
        self.all_running_at: dict[str, float] = {}
        #: When a pod of each job was first seen (monotonic seconds).
        self.first_pod_at: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        # A watch can break under load (a dropped connection, an expired resourceVersion):
        # list and watch again. A pod found Running on a relist counts from then (later than
        # it was), so a broken watch can only make the figures worse, never lose a job.
        while not self.stop.is_set():
            try:
                self._follow()
            except Exception:
                time.sleep(1)

    def _follow(self) -> None:
        core = client.CoreV1Api(self.api)
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_pod,
            NAMESPACE,
            label_selector=self.label,
            timeout_seconds=3600,
        ):
            pod = event["object"]
            job = pod.metadata.labels[self.label]
            self.first_pod_at.setdefault(job, time.monotonic())
            if pod.status.phase == "Running":
                self.running.setdefault(job, set()).add(pod.metadata.name)
            if len(self.running.get(job, ())) >= self.workers and job not in self.all_running_at:
                self.all_running_at[job] = time.monotonic()
            if self.stop.is_set():
                stream.stop()


def create_all(
    api: client.ApiClient, names: list[str], workers: int, gpus: int
) -> dict[str, float]:
    custom = client.CustomObjectsApi(api)

    def create(name: str) -> tuple[str, float]:
        custom.create_namespaced_custom_object(
            "plinth.dev", "v1alpha1", NAMESPACE, "trainingjobs", trainingjob(name, workers, gpus)
        )
        return name, time.monotonic()

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(pool.map(create, names))


def seconds_to_first_attempt(api: client.ApiClient) -> list[float]:
    """Per job: from the TrainingJob's creation to its attempt Job's creation (Plinth's part)."""
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    created = {
        item["metadata"]["name"]: item["metadata"]["creationTimestamp"]
        for item in custom.list_namespaced_custom_object(
            "plinth.dev", "v1alpha1", NAMESPACE, "trainingjobs"
        )["items"]
    }
    delays = []
    for job in batch.list_namespaced_job(NAMESPACE).items:
        owner = job.metadata.labels["plinth.dev/trainingjob"]
        started = datetime.fromisoformat(created[owner].replace("Z", "+00:00"))
        delays.append((job.metadata.creation_timestamp - started).total_seconds())
    return delays


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)]


def run(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    cluster = devcluster.up(
        "plinth-bench", state_dir=state, nodes=args.nodes, gpus_per_node=args.gpus_per_node
    )
    operator = None
    try:
        kubectl = [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig)]
        subprocess.run(
            [*kubectl, "apply", "--server-side", "-f", str(REPO / "crds")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "-f", str(REPO / "crds")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True
        )
        operator, port = start_operator(cluster.kubeconfig, state / "operator.log")
        with devcluster.api_client(cluster.kubeconfig) as api:
            tracker = RunningTracker(api, args.workers)
            tracker.thread.start()
            requests_before = api_requests(port)
            cpu_before, _ = process_usage(operator.pid)
            names = [f"job-{i:04d}" for i in range(args.jobs)]
            began = time.monotonic()
            created = create_all(api, names, args.workers, args.gpus_per_worker)
            wait_for(
                lambda: len(tracker.all_running_at) >= args.jobs,
                what="all workers Running",
                timeout=args.timeout,
            )
            total = time.monotonic() - began
            tracker.stop.set()
            time.sleep(5)  # let the operator write the Running statuses before counting
            cpu_after, peak = process_usage(operator.pid)
            latencies = [tracker.all_running_at[n] - created[n] for n in names]
            requests = api_requests(port) - requests_before
            reaction = seconds_to_first_attempt(api)
        return {
            "jobs": args.jobs,
            "workers_per_job": args.workers,
            "gpus_per_worker": args.gpus_per_worker,
            "nodes": args.nodes,
            "gpus_per_node": args.gpus_per_node,
            "seconds_to_all_running_median": round(statistics.median(latencies), 2),
            "seconds_to_all_running_p99": round(percentile(latencies, 0.99), 2),
            "seconds_until_every_job_running": round(total, 2),
            "seconds_to_attempt_job_created_median": round(statistics.median(reaction), 2),
            "seconds_to_attempt_job_created_p99": round(percentile(reaction, 0.99), 2),
            "api_requests_per_job": round(requests / args.jobs, 2),
            "api_requests_per_job_by_verb": {
                verb: round(count / args.jobs, 2)
                for verb, count in api_requests_by_verb(port).items()
            },
            "operator_cpu_seconds": round(cpu_after - cpu_before, 2),
            "operator_peak_rss_mib": round(peak, 1),
        }
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        devcluster.down("plinth-bench", state_dir=state)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="plinth-bench-tj-") as folder:
        figures = run(args, Path(folder))
    print(json.dumps(figures, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS / f"trainingjob-{args.nodes}-nodes.json"
    output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"saved {output}")


if __name__ == "__main__":
    main()
