"""Benchmark: one burst of training jobs three ways, each on a fresh emulated cluster.

The same burst (default: 200 jobs x 4 workers x 1 GPU on 100 kwok nodes x 8 GPUs, workers
kept Running by kwok with the annotation devcluster.plinth.dev/run-forever) is measured

- `floor`: the children Plinth renders for each TrainingJob on that cluster
  (`render_trainingjob`: the Indexed Job, the headless Service, the metrics-token Secret,
  and the PodGroup where the cluster serves the PodGroup API, as the emulated cluster does;
  without their owner reference, which would point at no object) created directly, no
  operator. The PodGroup and the Job are created first, then the Service and the Secret:
  the fastest a client can go;
- `plinth`: TrainingJobs, with Plinth's operator running (`bench_trainingjob.start_operator`);
- `kubeflow`: Kubeflow PyTorchJobs (1 master + 3 workers), with the Kubeflow training
  operator v1.8.1 (the `kubeflow` add-on of the emulated cluster) given as many reconcile
  threads as Plinth has (`--controller-threads`).

Per job it times from the moment the create call of the user's first object returned until
all its workers are Running (a pod watch), then takes the median and p99; and the same
counted from the start of the burst (what a team submitting the batch waits: the floor's
client takes seconds to create its 4 objects per job, the operators' 1, so a floor job's own
clock starts later while it would have queued behind the others anyway). For the operators it
also reads their API requests (Plinth: `plinth_api_requests_total`, which counts its
reconciles' requests, split by verb and by object kind; Kubeflow: controller-runtime's
`rest_client_requests_total`, every request of the process, watches included), CPU seconds
and peak RSS. Every mode starts its own cluster, so none inherits another's load; the modes
run one after the other on this machine.

    .venv/bin/python bench/bench_side_by_side.py                      # 200 x 4 on 100 nodes
    .venv/bin/python bench/bench_side_by_side.py --scale 50,200,800   # nodes grow with jobs
    .venv/bin/python bench/bench_side_by_side.py --modes plinth --profile
    .venv/bin/python bench/bench_side_by_side.py --modes plinth,kubeflow --steady 5

`--profile` runs py-spy (if installed in the venv) on Plinth's operator during the burst and
watches the writes of each job in resourceVersion order (which come before its Job) and the
statuses each TrainingJob showed on its way to Running (how many, the commonest sequences,
and every status of a job with the median count).
`--steady M` counts each operator's API requests for M minutes once every job is Running.
Results: bench/results/side-by-side-<nodes>x<jobs>.json (and, with --scale,
side-by-side-scale.json and .png).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

import plinth_devcluster as devcluster
from bench_trainingjob import (
    NAMESPACE,
    REPO,
    RESULTS,
    RunningTracker,
    api_requests,
    api_requests_by_label,
    percentile,
    probe,
    process_usage,
    seconds_to_first_attempt,
    start_operator,
    trainingjob,
)
from plinth.api.wellknown import POD_GROUP_API_VERSION
from plinth.builders.trainingjob import render_trainingjob
from plinth.kube.client import Kube
from plinth.runtime.operator import RECONCILE_WORKERS
from plinth_devcluster import kubeflow
from plinth_devcluster.versions import KUBEFLOW_TRAINING
from plinth_devcluster.waiting import wait_for

MODES = ("floor", "plinth", "kubeflow")
#: Plinth's reconcile workers; Kubeflow gets as many.
PLINTH_THREADS = RECONCILE_WORKERS
CLIENT_THREADS = 16  # the bench's own creators, the same in every mode
CLUSTER = "plinth-side-by-side"
RUN_FOREVER = {"devcluster.plinth.dev/run-forever": "true"}
KUBEFLOW_LABEL = "training.kubeflow.org/job-name"
PLINTH_LABEL = "plinth.dev/trainingjob"


@dataclass(frozen=True)
class Shape:
    nodes: int
    gpus_per_node: int
    jobs: int
    workers: int
    gpus_per_worker: int


@dataclass(frozen=True)
class Options:
    timeout: float
    steady_minutes: float | None
    profile: bool
    results: Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--nodes", type=int, default=None, help="default: 100, or just enough with --scale"
    )
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--gpus-per-worker", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument("--scale", default=None, help="job counts, e.g. 50,200,800")
    parser.add_argument(
        "--steady",
        type=float,
        nargs="?",
        const=5.0,
        default=None,
        metavar="MINUTES",
        help="after the burst, count the operators' requests for MINUTES (default 5)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy + write order (plinth)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args()


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


@contextmanager
def fresh_cluster(shape: Shape, state: Path, addons: Sequence[str] = ()) -> Iterator[Any]:
    """A new emulated cluster of `shape` with Plinth's CRDs and the `bench` namespace."""
    cluster = devcluster.up(
        CLUSTER,
        state_dir=state,
        nodes=shape.nodes,
        gpus_per_node=shape.gpus_per_node,
        addons=addons,
        kubeflow_threads=PLINTH_THREADS,
        timeout=300.0,
    )
    try:
        kubectl = [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig)]
        for step in (
            ["apply", "--server-side", "-f", str(REPO / "crds")],
            ["wait", "--for=condition=Established", "-f", str(REPO / "crds")],
            ["create", "namespace", NAMESPACE],
        ):
            subprocess.run([*kubectl, *step], check=True, capture_output=True)
        yield cluster
    finally:
        devcluster.down(CLUSTER, state_dir=state)


def names(shape: Shape) -> list[str]:
    return [f"job-{i:04d}" for i in range(shape.jobs)]


def floor_children(name: str, shape: Shape, scheduler_gangs: bool) -> list[dict[str, Any]]:
    """What Plinth renders for the TrainingJob `name`, the PodGroup and Job first, without
    owners."""
    document = trainingjob(name, shape.workers, shape.gpus_per_worker)
    children = []
    for manifest in render_trainingjob(document, scheduler_gangs=scheduler_gangs):
        child = copy.deepcopy(dict(manifest))
        child["metadata"].pop("ownerReferences", None)
        children.append(child)
    first = ("PodGroup", "Job")
    return sorted(children, key=lambda c: first.index(c["kind"]) if c["kind"] in first else 2)


def create_floor(api: client.ApiClient, shape: Shape) -> dict[str, float]:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    group, version = POD_GROUP_API_VERSION.split("/")
    creators: dict[str, Callable[[dict[str, Any]], object]] = {
        "PodGroup": lambda m: custom.create_namespaced_custom_object(
            group, version, NAMESPACE, "podgroups", m
        ),
        "Job": lambda m: batch.create_namespaced_job(NAMESPACE, m),  # type: ignore[arg-type]
        "Service": lambda m: core.create_namespaced_service(NAMESPACE, m),  # type: ignore[arg-type]
        "Secret": lambda m: core.create_namespaced_secret(NAMESPACE, m),  # type: ignore[arg-type]
    }
    gangs = Kube(api).serves(POD_GROUP_API_VERSION, "PodGroup")
    rendered = {name: floor_children(name, shape, gangs) for name in names(shape)}

    def create(name: str) -> tuple[str, float]:
        first: float | None = None
        for child in rendered[name]:
            creators[child["kind"]](child)
            first = time.monotonic() if first is None else first
        assert first is not None
        return name, first

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        return dict(pool.map(create, names(shape)))


def create_trainingjobs(api: client.ApiClient, shape: Shape) -> dict[str, float]:
    custom = client.CustomObjectsApi(api)

    def create(name: str) -> tuple[str, float]:
        body = trainingjob(name, shape.workers, shape.gpus_per_worker)
        custom.create_namespaced_custom_object(
            "plinth.dev", "v1alpha1", NAMESPACE, "trainingjobs", body
        )
        return name, time.monotonic()

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        return dict(pool.map(create, names(shape)))


def create_pytorchjobs(api: client.ApiClient, shape: Shape) -> dict[str, float]:
    custom = client.CustomObjectsApi(api)

    def create(name: str) -> tuple[str, float]:
        body = kubeflow.pytorchjob(
            name, NAMESPACE, shape.workers, gpus=shape.gpus_per_worker, annotations=RUN_FOREVER
        )
        custom.create_namespaced_custom_object("kubeflow.org", "v1", NAMESPACE, "pytorchjobs", body)
        return name, time.monotonic()

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        return dict(pool.map(create, names(shape)))


class JobTracker:
    """Watches the Jobs labelled `label`; records when each job's first Job was first seen
    (monotonic seconds): for the floor its client's create, for Plinth the operator's."""

    def __init__(self, api: client.ApiClient, label: str) -> None:
        self.api, self.label = api, label
        self.seen_at: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.is_set():  # a broken watch is opened again (see RunningTracker)
            try:
                stream = watch.Watch()
                for event in stream.stream(
                    client.BatchV1Api(self.api).list_namespaced_job,
                    NAMESPACE,
                    label_selector=self.label,
                    timeout_seconds=3600,
                ):
                    job = event["object"].metadata.labels[self.label]
                    self.seen_at.setdefault(job, time.monotonic())
                    if self.stop.is_set():
                        stream.stop()
            except Exception:
                time.sleep(1)


def cluster_process(state: Path, name: str) -> devcluster.ProcessState:
    """The emulated cluster's recorded program `name` (`devcluster.status`: its pid)."""
    (record,) = [p for p in devcluster.status(CLUSTER, state_dir=state).processes if p.name == name]
    return record


def control_plane_cpu(state: Path) -> dict[str, float]:
    """CPU seconds so far of each program of the emulated cluster (the Kubeflow operator,
    an add-on, included)."""
    return {
        record.name: process_usage(record.pid)[0]
        for record in devcluster.status(CLUSTER, state_dir=state).processes
        if record.alive
    }


#: The kube-controller-manager figures read around each burst: its Job controller's queue
#: (how often a Job was synced, how long keys waited, how long syncs took) and how long its
#: clients waited on their own rate limiter (--kube-api-qps).
CONTROLLER_FIGURES = (
    ("workqueue_adds_total", {"name": "job"}),
    ("workqueue_queue_duration_seconds_sum", {"name": "job"}),
    ("workqueue_queue_duration_seconds_count", {"name": "job"}),
    ("workqueue_work_duration_seconds_sum", {"name": "job"}),
    ("workqueue_work_duration_seconds_count", {"name": "job"}),
    ("rest_client_rate_limiter_duration_seconds_sum", {}),
    ("rest_client_rate_limiter_duration_seconds_count", {}),
    ("rest_client_request_duration_seconds_sum", {}),
    ("rest_client_request_duration_seconds_count", {}),
)


def controller_manager_figures(state: Path, api: client.ApiClient) -> dict[str, float]:
    """`CONTROLLER_FIGURES` from the controller manager's /metrics (summed over other
    labels), read with the cluster admin's bearer token (the controller manager asks the API
    server who it is)."""
    record = cluster_process(state, "kube-controller-manager")
    arguments = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode().split("\0")
    port = next(a.split("=", 1)[1] for a in arguments if a.startswith("--secure-port="))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/metrics",
        headers={"Authorization": api.configuration.api_key["BearerToken"]},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        text = answer.read().decode()
    sums = dict.fromkeys((name for name, _ in CONTROLLER_FIGURES), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, labels in CONTROLLER_FIGURES:
                if sample.name == name and labels.items() <= sample.labels.items():
                    sums[name] += sample.value
    return sums


def job_controller_summary(
    before: Mapping[str, float], after: Mapping[str, float]
) -> dict[str, float]:
    """What the burst cost the Job controller, from two `controller_manager_figures` reads."""
    delta = {name: after[name] - before[name] for name in after}

    def mean(prefix: str) -> float:
        count = delta[f"{prefix}_count"]
        return round(delta[f"{prefix}_sum"] / count, 4) if count else 0.0

    return {
        "job_syncs": delta["workqueue_adds_total"],
        "job_queue_wait_mean_seconds": mean("workqueue_queue_duration_seconds"),
        "job_sync_mean_seconds": mean("workqueue_work_duration_seconds"),
        "client_rate_limiter_wait_seconds_total": round(
            delta["rest_client_rate_limiter_duration_seconds_sum"], 2
        ),
        "client_requests": delta["rest_client_request_duration_seconds_count"],
        "client_request_mean_seconds": mean("rest_client_request_duration_seconds"),
    }


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores (/proc/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / ticks, sum(values) / ticks


def _median_p99(prefix: str, values: Sequence[float]) -> dict[str, float]:
    return {
        f"{prefix}_median": round(statistics.median(values), 2),
        f"{prefix}_p99": round(percentile(list(values), 0.99), 2),
    }


def burst(
    api: client.ApiClient,
    shape: Shape,
    label: str,
    create: Callable[[client.ApiClient, Shape], dict[str, float]],
    *,
    timeout: float,
    state: Path,
) -> dict[str, Any]:
    """Create every job, wait until all workers of all jobs are Running; time each job, and
    where its Jobs are watched (`label` is Plinth's), when its Job and its first pod were
    seen."""
    tracker = RunningTracker(api, shape.workers, label=label)
    tracker.thread.start()
    jobs = JobTracker(api, label) if label == PLINTH_LABEL else None
    if jobs is not None:
        jobs.thread.start()
    time.sleep(1)  # the watch is open before the first create
    cpu_before, (busy_before, all_before) = control_plane_cpu(state), machine_busy_seconds()
    controller_before = controller_manager_figures(state, api)
    began = time.monotonic()
    created = create(api, shape)
    creating = time.monotonic() - began
    wait_for(
        lambda: len(tracker.all_running_at) >= shape.jobs,
        what="all workers Running",
        timeout=timeout,
    )
    total = time.monotonic() - began
    cpu_after, (busy_after, all_after) = control_plane_cpu(state), machine_busy_seconds()
    controller_after = controller_manager_figures(state, api)
    tracker.stop.set()
    every = names(shape)
    figures = {
        **_median_p99(
            "seconds_to_all_running", [tracker.all_running_at[n] - created[n] for n in every]
        ),
        **_median_p99(
            "seconds_from_burst_start", [tracker.all_running_at[n] - began for n in every]
        ),
        **_median_p99(
            "seconds_to_first_pod_seen", [tracker.first_pod_at[n] - created[n] for n in every]
        ),
        "seconds_creating_the_burst": round(creating, 2),
        "seconds_until_every_job_running": round(total, 2),
        # what the burst cost the control plane (the same programs in every mode), and how
        # busy the machine was: a saturated machine slows every program by what others take
        "control_plane_cpu_seconds": {
            name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after
        },
        "machine_busy_fraction": round((busy_after - busy_before) / (all_after - all_before), 3),
        "controller_manager": job_controller_summary(controller_before, controller_after),
    }
    if jobs is not None:
        jobs.stop.set()
        seen = [jobs.seen_at[n] - created[n] for n in every if n in jobs.seen_at]
        figures.update(_median_p99("seconds_to_job_seen", seen))
    return figures


def run_floor(shape: Shape, options: Options, state: Path) -> dict[str, Any]:
    with fresh_cluster(shape, state) as cluster, devcluster.api_client(cluster.kubeconfig) as api:
        load = load_average()
        gangs = Kube(api).serves(POD_GROUP_API_VERSION, "PodGroup")
        writes = len(floor_children(names(shape)[0], shape, gangs))
        figures = burst(
            api, shape, PLINTH_LABEL, create_floor, timeout=options.timeout, state=state
        )
    return {"mode": "floor", "load_average_at_start": load, "writes_per_job": writes, **figures}


def steady_requests(count: Callable[[], float], minutes: float) -> dict[str, float]:
    """The requests counted by `count` over `minutes`, once the burst is Running."""
    before = count()
    time.sleep(minutes * 60)
    seen = count() - before
    return {
        "steady_minutes": minutes,
        "steady_requests": seen,
        "steady_requests_per_minute": round(seen / minutes, 2),
    }


#: The labels of `plinth_api_requests_total` the per-job request figures are split by.
LABELS = ("verb", "kind")


def run_plinth(shape: Shape, options: Options, state: Path) -> dict[str, Any]:
    with fresh_cluster(shape, state) as cluster:
        operator, port = start_operator(cluster.kubeconfig, state / "operator.log")
        try:
            with devcluster.api_client(cluster.kubeconfig) as api:
                load = load_average()
                requests_before = api_requests(port)
                before = {label: api_requests_by_label(port, label) for label in LABELS}
                cpu_before, _ = process_usage(operator.pid)
                profiler = Profiler.start(operator.pid, state, api) if options.profile else None
                figures = burst(
                    api,
                    shape,
                    PLINTH_LABEL,
                    create_trainingjobs,
                    timeout=options.timeout,
                    state=state,
                )
                time.sleep(5)  # let the operator write the Running statuses before counting
                cpu_after, peak = process_usage(operator.pid)
                requests = api_requests(port) - requests_before
                per_job = {
                    label: {
                        value: round((count - before[label].get(value, 0.0)) / shape.jobs, 2)
                        for value, count in api_requests_by_label(port, label).items()
                        if count > before[label].get(value, 0.0)
                    }
                    for label in LABELS
                }
                reaction = seconds_to_first_attempt(api)
                result: dict[str, Any] = {
                    "mode": "plinth",
                    "load_average_at_start": load,
                    **figures,
                    "seconds_to_attempt_job_created_median": round(statistics.median(reaction), 2),
                    "seconds_to_attempt_job_created_p99": round(percentile(reaction, 0.99), 2),
                    "api_requests_per_job": round(requests / shape.jobs, 2),
                    "api_requests_per_job_by_verb": per_job["verb"],
                    "api_requests_per_job_by_kind": per_job["kind"],
                    "operator_cpu_seconds": round(cpu_after - cpu_before, 2),
                    "operator_peak_rss_mib": round(peak, 1),
                    "reconciles": reconcile_figures(port, shape.jobs),
                }
                if profiler is not None:
                    result["profile"] = profiler.finish(options.results, shape)
                if options.steady_minutes:
                    result.update(
                        steady_requests(lambda: api_requests(port), options.steady_minutes)
                    )
                    result["operator_peak_rss_mib_after_steady"] = round(
                        process_usage(operator.pid)[1], 1
                    )
        finally:
            stop(operator)
    return result


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after a minute (a busy operator under load
    can take longer than that to wind down its reconcile threads)."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def reconcile_figures(port: int, jobs: int) -> dict[str, float]:
    """From Plinth's /metrics: TrainingJob reconciles per job, their mean duration and the
    CPU seconds of their threads (the rest of the operator's CPU is its watches)."""
    count = total = cpu = 0.0
    for line in probe(port, "/metrics")[1].splitlines():
        if 'kind="TrainingJob"' not in line:
            continue
        if line.startswith("plinth_reconcile_duration_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith("plinth_reconcile_duration_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("plinth_reconcile_cpu_seconds_total"):
            cpu = float(line.rsplit(" ", 1)[1])
    return {
        "reconciles_per_job": round(count / jobs, 2),
        "mean_reconcile_seconds": round(total / count, 4) if count else 0.0,
        "reconcile_cpu_seconds": round(cpu, 2),
    }


def kubeflow_requests(url: str) -> float:
    """controller-runtime's `rest_client_requests_total`, summed over codes and methods."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return math.nan
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rest_client_requests_total{")
    )


def kubeflow_requests_by_method(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("rest_client_requests_total{"):
            method = line.split('method="', 1)[1].split('"', 1)[0]
            counts[method] = counts.get(method, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def run_kubeflow(shape: Shape, options: Options, state: Path) -> dict[str, Any]:
    with fresh_cluster(shape, state, addons=(kubeflow.NAME,)) as cluster:
        url = kubeflow.metrics_url(state, CLUSTER)
        record = cluster_process(state, kubeflow.NAME)
        with devcluster.api_client(cluster.kubeconfig) as api:
            load = load_average()
            requests_before = kubeflow_requests(url)
            by_method_before = kubeflow_requests_by_method(url)
            cpu_before, _ = process_usage(record.pid)
            figures = burst(
                api, shape, KUBEFLOW_LABEL, create_pytorchjobs, timeout=options.timeout, state=state
            )
            time.sleep(5)
            cpu_after, peak = process_usage(record.pid)
            requests = kubeflow_requests(url) - requests_before
            by_method = {
                method: round((count - by_method_before.get(method, 0.0)) / shape.jobs, 2)
                for method, count in kubeflow_requests_by_method(url).items()
            }
            result: dict[str, Any] = {
                "mode": "kubeflow",
                "operator": f"{KUBEFLOW_TRAINING.module} {KUBEFLOW_TRAINING.version}",
                "controller_threads": PLINTH_THREADS,
                "load_average_at_start": load,
                **figures,
                "api_requests_per_job": round(requests / shape.jobs, 2),
                "api_requests_per_job_by_method": by_method,
                "operator_cpu_seconds": round(cpu_after - cpu_before, 2),
                "operator_peak_rss_mib": round(peak, 1),
            }
            if options.steady_minutes:
                result.update(
                    steady_requests(lambda: kubeflow_requests(url), options.steady_minutes)
                )
    return result


class Profiler:
    """py-spy on the operator during the burst, and the order of each job's writes."""

    KINDS = ("trainingjobs", "jobs", "services", "secrets", "events")

    def __init__(self, pid: int, state: Path, api: client.ApiClient) -> None:
        self.pid, self.state, self.api = pid, state, api
        self.writes: list[tuple[int, str, str, str]] = []  # (rv, kind, event type, job)
        self.statuses: dict[str, list[str]] = {}  # job -> each status its watch showed
        self.example: dict[str, list[dict[str, Any]]] = {}  # job -> its full statuses
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._watch, args=(k,), daemon=True) for k in self.KINDS
        ]
        self.spy: subprocess.Popen[bytes] | None = None
        self.raw = state / "py-spy.txt"

    @classmethod
    def start(cls, pid: int, state: Path, api: client.ApiClient) -> Profiler:
        profiler = cls(pid, state, api)
        for thread in profiler.threads:
            thread.start()
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(spy).exists():
            profiler.spy = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--idle",
                    "--threads",
                    "--rate",
                    "50",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "-o",
                    str(profiler.raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(state / "py-spy.log").open("wb"),
            )
        return profiler

    def _watch(self, kind: str) -> None:
        core, batch = client.CoreV1Api(self.api), client.BatchV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        lists: dict[str, Callable[..., Any]] = {
            "jobs": batch.list_namespaced_job,
            "services": core.list_namespaced_service,
            "secrets": core.list_namespaced_secret,
            "events": core.list_namespaced_event,
        }
        stream = watch.Watch()  # type: ignore[no-untyped-call]  # untyped client
        if kind == "trainingjobs":
            source = stream.stream(  # type: ignore[no-untyped-call]
                custom.list_namespaced_custom_object,
                "plinth.dev",
                "v1alpha1",
                NAMESPACE,
                "trainingjobs",
                timeout_seconds=3600,
            )
        else:
            source = stream.stream(  # type: ignore[no-untyped-call]
                lists[kind], NAMESPACE, timeout_seconds=3600
            )
        try:
            for event in source:
                self._record(kind, event)
                if self.stop.is_set():
                    stream.stop()  # type: ignore[no-untyped-call]
        except Exception:  # a broken watch only loses profile detail
            return

    def _record(self, kind: str, event: dict[str, Any]) -> None:
        item = event["object"]
        if isinstance(item, dict):
            metadata = item["metadata"]
            rv, job = int(metadata["resourceVersion"]), metadata["name"]
            self._record_status(job, item.get("status") or {})
        else:
            metadata = item.metadata
            rv = int(metadata.resource_version)
            if kind == "events":
                job = item.involved_object.name
                kind = f"event:{item.reason}"
            else:
                job = (metadata.labels or {}).get(PLINTH_LABEL, metadata.name)
        with self.lock:
            self.writes.append((rv, kind, event["type"], job))

    def _record_status(self, job: str, status: dict[str, Any]) -> None:
        """A TrainingJob's status in short: phase, the True conditions, running workers."""
        true = ",".join(c["type"] for c in status.get("conditions", ()) if c["status"] == "True")
        running = (status.get("workers") or {}).get("running", 0)
        seen = f"{status.get('phase')}[{true}]{running}" if status else "-"
        with self.lock:
            full = self.example.setdefault(job, [])
            if status and (not full or full[-1] != status):
                full.append(status)
            shown = self.statuses.setdefault(job, [])
            if not shown or shown[-1] != seen:
                shown.append(seen)

    def status_sequences(self) -> dict[str, Any]:
        """How many statuses each TrainingJob showed, and the commonest sequences."""
        with self.lock:
            sequences = [" > ".join(shown) for shown in self.statuses.values()]
            lengths = [len(shown) - 1 for shown in self.statuses.values()]
            writes = sorted((len(full), job) for job, full in self.example.items())
            example = self.example[writes[len(writes) // 2][1]] if writes else []
        return {
            "status_writes_median": statistics.median(lengths) if lengths else None,
            "status_writes_of_a_median_job": example,
            "status_sequences": Counter(sequences).most_common(8),
        }

    def finish(self, results: Path, shape: Shape) -> dict[str, Any]:
        self.stop.set()
        if self.spy is not None:
            self.spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
            self.spy.wait(timeout=120)
        summary: dict[str, Any] = {
            "writes_before_job": self.write_order(shape),
            "statuses": self.status_sequences(),
        }
        if self.raw.exists():
            target = results / f"side-by-side-profile-{shape.nodes}x{shape.jobs}.txt"
            shutil.copy(self.raw, target)
            summary["py_spy"] = summarise_stacks(self.raw)
            summary["py_spy_collapsed_stacks"] = str(target)
        return summary

    def write_order(self, shape: Shape) -> dict[str, Any]:
        """Per job, the writes (by resourceVersion) before its Job was created."""
        with self.lock:
            writes = sorted(self.writes)
        by_job: dict[str, list[tuple[int, str, str]]] = {}
        for rv, kind, kind_of_event, job in writes:
            by_job.setdefault(job, []).append((rv, kind, kind_of_event))
        before: Counter[str] = Counter()
        counts = []
        for job in names(shape):
            seen = by_job.get(job, [])
            created = next((rv for rv, kind, t in seen if kind == "jobs" and t == "ADDED"), None)
            if created is None:
                continue
            first = [
                f"{kind}:{t}"
                for rv, kind, t in seen
                if rv < created and not (kind == "trainingjobs" and t == "ADDED")
            ]
            before.update(first)
            counts.append(len(first))
        return {
            "jobs_seen": len(counts),
            "writes_before_job_median": statistics.median(counts) if counts else None,
            "writes_before_job_max": max(counts) if counts else None,
            "writes_before_job_per_job_by_kind": {
                k: round(v / max(len(counts), 1), 2) for k, v in before.most_common()
            },
        }


NETWORK = ("urllib3/", "http/client.py", "ssl.py", "socket.py")


def thread_kind(frame: str) -> str:
    """`thread (123): reconcile_7` -> `reconcile`."""
    return frame.split(": ", 1)[-1].rstrip("0123456789").rstrip("_") or "?"


def summarise_stacks(raw: Path, top: int = 25) -> dict[str, Any]:
    """From py-spy's collapsed stacks (idle included, so waits on sockets and queues show):
    samples per thread kind; for the reconcile threads, the share idle (waiting for work), in
    an API request (urllib3, http.client, ssl, socket) and computing (or waiting for the GIL);
    the deepest Plinth frame of each working sample; the top frames by self samples."""
    threads: Counter[str] = Counter()
    reconcile: Counter[str] = Counter()
    plinth_frames: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        kind = thread_kind(frames[0])
        threads[kind] += count
        leaf[f"{kind}: {frames[-1]}"] += count
        if kind != "reconcile":
            continue
        working = any("(plinth/" in frame for frame in frames)
        if not working:
            reconcile["idle"] += count
            continue
        network = any(any(part in frame for part in NETWORK) for frame in frames)
        reconcile["api_request" if network else "python"] += count
        deepest = next(frame for frame in reversed(frames) if "(plinth/" in frame)
        plinth_frames[deepest] += count
    return {
        "samples_by_thread": dict(threads.most_common()),
        "reconcile_threads": dict(reconcile.most_common()),
        "reconcile_deepest_plinth_frame": plinth_frames.most_common(top),
        "top_self": leaf.most_common(top),
    }


RUNNERS: dict[str, Callable[[Shape, Options, Path], dict[str, Any]]] = {
    "floor": run_floor,
    "plinth": run_plinth,
    "kubeflow": run_kubeflow,
}


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    found: dict[str, float] = {}
    plinth = results.get("plinth")
    for other in ("floor", "kubeflow"):
        if plinth is None or other not in results or "error" in plinth or "error" in results[other]:
            continue
        for stat in ("median", "p99"):
            key = f"seconds_to_all_running_{stat}"
            found[f"plinth_over_{other}_{stat}"] = round(plinth[key] / results[other][key], 2)
        for stat in ("median", "p99"):
            key = f"seconds_from_burst_start_{stat}"
            if key in plinth and key in results[other]:
                ratio = round(plinth[key] / results[other][key], 2)
                found[f"plinth_over_{other}_from_burst_start_{stat}"] = ratio
    return found


def measure(shape: Shape, modes: Sequence[str], options: Options) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        print(
            f"--- {mode}: {shape.jobs} jobs x {shape.workers} workers on {shape.nodes} nodes",
            file=sys.stderr,
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix=f"plinth-sbs-{mode}-") as folder:
            try:
                results[mode] = RUNNERS[mode](shape, options, Path(folder))
            except Exception as error:  # one failed mode must not lose the others
                results[mode] = {"mode": mode, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(results[mode]), file=sys.stderr, flush=True)
    return {
        "shape": asdict(shape),
        "machine": machine(),
        "modes": results,
        "ratios": ratios(results),
    }


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average_at_end": load_average()}


def table(report: dict[str, Any]) -> str:
    rows = [
        (
            "mode",
            "median s",
            "p99 s",
            "from start median s",
            "from start p99 s",
            "Job seen median s",
            "1st pod median s",
            "req/job",
            "cluster CPU s",
            "busy",
            "CPU s",
            "RSS MiB",
            "all Running s",
        )
    ]
    for mode, figures in report["modes"].items():
        if "error" in figures:
            rows.append((mode, "failed: " + figures["error"][:60], *[""] * 11))
            continue
        rows.append(
            (
                mode,
                f"{figures['seconds_to_all_running_median']:.1f}",
                f"{figures['seconds_to_all_running_p99']:.1f}",
                f"{figures.get('seconds_from_burst_start_median', math.nan):.1f}",
                f"{figures.get('seconds_from_burst_start_p99', math.nan):.1f}",
                f"{figures.get('seconds_to_job_seen_median', math.nan):.2f}",
                f"{figures.get('seconds_to_first_pod_seen_median', math.nan):.2f}",
                str(figures.get("api_requests_per_job", "-")),
                f"{sum(figures.get('control_plane_cpu_seconds', {}).values()):.1f}",
                f"{figures.get('machine_busy_fraction', math.nan):.2f}",
                str(figures.get("operator_cpu_seconds", "-")),
                str(figures.get("operator_peak_rss_mib", "-")),
                f"{figures['seconds_until_every_job_running']:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines += [f"{name}: {value}x" for name, value in report["ratios"].items()]
    return "\n".join(lines)


def plot(reports: list[dict[str, Any]], target: Path) -> None:
    import matplotlib  # noqa: PLC0415  (the `plot` extra)

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    jobs = [report["shape"]["jobs"] for report in reports]
    colours = {"floor": "tab:gray", "plinth": "tab:blue", "kubeflow": "tab:orange"}
    shown = [
        mode
        for mode in MODES
        if all("error" not in report["modes"].get(mode, {"error": 1}) for report in reports)
    ]
    for mode in shown:
        for stat, style in (("median", "-o"), ("p99", "--^")):
            values = [report["modes"][mode][f"seconds_to_all_running_{stat}"] for report in reports]
            axes.plot(jobs, values, style, color=colours[mode], label=f"{mode} {stat}")
    axes.set_xlabel("jobs in the burst (4 workers each; nodes grow with jobs)")
    axes.set_ylabel("seconds from creation to all workers Running")
    names = {"floor": "floor", "plinth": "Plinth", "kubeflow": "Kubeflow"}
    axes.set_title(f"Time to Running per job: {', '.join(names[m] for m in shown)}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    pyplot.close(figure)


def main() -> None:
    args = parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    if unknown := set(modes) - set(MODES):
        raise SystemExit(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES)}")
    options = Options(args.timeout, args.steady, args.profile, args.results)
    args.results.mkdir(parents=True, exist_ok=True)
    counts = [int(n) for n in args.scale.split(",")] if args.scale else [args.jobs]
    reports = []
    for jobs in counts:
        gpus = jobs * args.workers * args.gpus_per_worker
        nodes = args.nodes or (math.ceil(gpus / args.gpus_per_node) if args.scale else 100)
        shape = Shape(nodes, args.gpus_per_node, jobs, args.workers, args.gpus_per_worker)
        report = measure(shape, modes, options)
        reports.append(report)
        output = args.results / f"side-by-side-{nodes}x{jobs}.json"
        output.write_text(json.dumps(report, indent=2) + "\n")
        print(
            f"\n{jobs} jobs x {args.workers} workers on {nodes} nodes x {args.gpus_per_node} GPUs"
        )
        print(table(report))
        print(f"saved {output}", flush=True)
    if args.scale:
        summary = args.results / "side-by-side-scale.json"
        summary.write_text(json.dumps(reports, indent=2) + "\n")
        picture = summary.with_suffix(".png")
        plot(reports, picture)
        print(f"saved {summary} and {picture}")


if __name__ == "__main__":
    main()
