"""Benchmark of AutoMLSweep: search efficiency, operator overhead per trial, operator memory.

1. Search efficiency (pure, no cluster). Plinth's own planner (`plan_sweep`) is driven in a
   simulation loop on a fixed noisy objective with a known optimum and learning curves:
   Branin over (log-scale lr, int width) plus an offset per categorical optimizer (optimum
   0.432: width is an int), loss(step) falling as 1/step onto it, seeded noise. Each round
   every running trial reports 10 more steps (to 100); its TrainingJob body with status
   (phase, metrics latest/min/max/step, gpuSeconds) is built from the planner's own
   manifest, plan_sweep is called with the previous status, and its decisions are applied
   (new trials start, suspended trials stop). TPE+ASHA, TPE alone and random search get the
   same budget, counted in GPU time as a sweep's maxGpuHours counts it: 40 full trials' worth,
   2 trials in parallel (maxTrials 200, so a pruned trial's savings buy more trials).
   Recorded per seed: trials and trial-steps (the GPU-time proxy) until the sweep's
   bestTrial first reaches a target, and the best value when the budget is spent.
2. Operator overhead per trial (emulated cluster, 4 nodes). A sweep with parallelTrials 1
   whose trial pods kwok ends after 3 s; the bench posts each trial's report to the
   operator's intake with the token from the trial's Secret (as training code would), so
   trials succeed. Per trial: from the trial's TrainingJob ending to the next trial's first
   pod existing, stamped as watch events arrive (median, p99), and where that time goes.
3. Operator memory. 20 sweeps whose status already holds 100 finished trial records each
   (written by the planner for a simulated sweep, then through the status subresource;
   maxTrials 100 so nothing starts); the operator is started and every sweep reconciled:
   peak RSS, CPU seconds, reconcile time per sweep (its plinth_reconcile_duration_seconds),
   then every sweep's spec is edited once and reconciled again by the warm operator.

    .venv/bin/python bench/bench_automlsweep.py            # ~4.5 min on 2 cores
    .venv/bin/python bench/bench_automlsweep.py --quick    # ~2 min: fewer seeds and trials
    .venv/bin/python bench/bench_automlsweep.py --only search

Prints the figures and saves them to bench/results/automlsweep.json (automlsweep-quick.json).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from kubernetes import client, watch

import plinth_devcluster as devcluster
from plinth.api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    AutoMLSweepSpec,
    AutoMLSweepStatus,
    parse_spec,
)
from plinth.api.wellknown import (
    ObjectRef,
    OwnerMeta,
    format_time,
    metrics_path,
    metrics_secret_name,
    parse_time,
    trial_name,
)
from plinth.builders.automlsweep import trial_manifest
from plinth.status.automlsweep import plan_sweep
from plinth.status.automlsweep_observed import observe_sweep
from plinth_devcluster.network import free_ports
from plinth_devcluster.processes import cpu_seconds
from plinth_devcluster.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
GROUP, VERSION = API_GROUP, API_VERSION
IMAGE = "ghcr.io/plinth-dev/plinth-trainer:0.1.0"
CLUSTER_NAME = "plinth-bench-sweep"

# --------------------------------------------------------------------------------------
# 1. The objective: Branin over (lr on a log scale, an int), plus a categorical offset
# --------------------------------------------------------------------------------------

LR_MIN, LR_MAX = 1e-5, 1.0
WIDTH_MIN, WIDTH_MAX = 0, 15
#: Added to Branin per optimizer: only adam reaches the optimum.
OPTIMIZER_OFFSET = {"adam": 0.0, "rmsprop": 0.5, "sgd": 2.0}
#: Learning-curve height per optimizer (sgd learns slowest), scaled by the lr below.
OPTIMIZER_SLOWNESS = {"adam": 10.0, "rmsprop": 15.0, "sgd": 30.0}
#: Steps of a full trial; a trial reports every REPORT_EVERY steps.
STEPS, REPORT_EVERY = 100, 10
NOISE_SIGMA = 0.1
#: GPU-seconds per step: a full trial is one GPU-hour, so maxGpuHours counts full trials.
GPU_SECONDS_PER_STEP = 3600.0 / STEPS
SEARCH_SPACE: list[dict[str, Any]] = [
    {"name": "lr", "type": "float", "min": LR_MIN, "max": LR_MAX, "log": True},
    {"name": "width", "type": "int", "min": WIDTH_MIN, "max": WIDTH_MAX},
    {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", "rmsprop"]},
]
#: (label, algorithm, ASHA?): the configurations compared.
CONFIGS = (("tpe+asha", "tpe", True), ("tpe", "tpe", False), ("random", "random", False))
#: Targets for the best final loss: the main one, and a hard one close to the optimum.
TARGET, HARD_TARGET = 3.0, 1.0


def branin(x1: Any, x2: Any) -> Any:
    """The Branin-Hoo function (three global minima of 0.397887); numpy-friendly."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


def branin_x1(lr: Any) -> Any:
    """log10(lr) in [-5, 0] mapped onto Branin's x1 in [-5, 10]."""
    low, high = math.log10(LR_MIN), math.log10(LR_MAX)
    return -5 + 15 * (np.log10(lr) - low) / (high - low)


def final_loss(params: Mapping[str, Any]) -> float:
    """A trial's noise-free loss at its last step."""
    value = branin(branin_x1(params["lr"]), float(params["width"]))
    return float(value) + OPTIMIZER_OFFSET[str(params["optimizer"])]


def loss_at(params: Mapping[str, Any], seed: int, number: int, step: int) -> float:
    """The loss trial `number` reports at `step`: it falls as 1/step onto its final loss;
    lower learning rates learn more slowly; seeded noise per (seed, trial, step)."""
    height = OPTIMIZER_SLOWNESS[str(params["optimizer"])] * 10 ** (
        -0.2 * (math.log10(params["lr"]) + 2.5)
    )
    noise = random.Random(f"{seed}/{number}/{step}").gauss(0.0, NOISE_SIGMA)
    return final_loss(params) + height * (1 / step - 1 / STEPS) + noise


def known_optimum() -> float:
    """The lowest final loss over the whole space (adam; each int width; a fine lr grid)."""
    x1 = np.linspace(-5.0, 10.0, 300_001)
    return min(float(branin(x1, float(width)).min()) for width in range(WIDTH_MIN, WIDTH_MAX + 1))


def share_at_or_below(target: float, samples: int = 200_000) -> float:
    """Share of the search space (uniform in log lr, width, optimizer) with a final loss at
    or below `target`: random search's chance per trial."""
    rng = np.random.default_rng(0)
    lr = 10 ** rng.uniform(math.log10(LR_MIN), math.log10(LR_MAX), samples)
    width = rng.integers(WIDTH_MIN, WIDTH_MAX + 1, samples).astype(float)
    offsets = np.array(list(OPTIMIZER_OFFSET.values()))[rng.integers(0, 3, samples)]
    values = branin(branin_x1(lr), width) + offsets
    return float(np.mean(values <= target))


# --------------------------------------------------------------------------------------
# 1. The simulation: plan_sweep in a loop, trials as TrainingJob bodies with status
# --------------------------------------------------------------------------------------

SIM_START = datetime(2026, 1, 1, tzinfo=UTC)
ROUND = timedelta(minutes=1)


def sweep_fields(
    algorithm: str,
    asha: bool,
    seed: int,
    *,
    max_trials: int,
    parallel: int,
    max_gpu_hours: float | None = None,
) -> dict[str, Any]:
    budget: dict[str, Any] = {
        "maxTrials": max_trials,
        "parallelTrials": parallel,
        "maxFailedTrials": max_trials,
    }
    if max_gpu_hours is not None:
        budget["maxGpuHours"] = max_gpu_hours
    fields: dict[str, Any] = {
        "objectives": [{"metric": "loss", "direction": "minimize"}],
        "algorithm": {"name": algorithm, "seed": seed},
        "parameters": SEARCH_SPACE,
        "budget": budget,
        "trialTemplate": {
            "image": IMAGE,
            "args": ["--lr=${params.lr}", "--width=${params.width}", "--opt=${params.optimizer}"],
            "nodes": 1,
            "resources": {"gpus": 1},
        },
    }
    if asha:
        fields["earlyStopping"] = {"name": "asha", "minSteps": REPORT_EVERY, "reductionFactor": 3}
    return fields


@dataclass
class SimTrial:
    """One trial TrainingJob of the simulation: the planner's manifest and what it did."""

    manifest: Mapping[str, Any]
    params: Mapping[str, Any]
    started: datetime
    step: int = 0
    stopped: bool = False
    losses: list[float] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.stopped or self.step >= STEPS

    def body(self, now: datetime) -> dict[str, Any]:
        """The TrainingJob as the API server would hold it, with its operator's status."""
        if self.stopped:
            phase = "Suspended"
        elif self.step >= STEPS:
            phase = "Succeeded"
        else:
            phase = "Running" if self.losses else "Pending"
        status: dict[str, Any] = {
            "phase": phase,
            "gpuSeconds": GPU_SECONDS_PER_STEP * self.step,
            "startTime": format_time(self.started),
        }
        if self.losses:
            status["metrics"] = {
                "step": self.step,
                "time": format_time(now),
                "latest": {"loss": self.losses[-1]},
                "min": {"loss": min(self.losses)},
                "max": {"loss": max(self.losses)},
            }
        if phase == "Succeeded":
            status["completionTime"] = format_time(now)
        return {**self.manifest, "status": status}


@dataclass
class SweepSimulation:
    """A sweep driven by plan_sweep: each round every running trial reports once more."""

    spec: AutoMLSweepSpec
    seed: int
    name: str = "sim"
    trials: dict[int, SimTrial] = field(default_factory=dict)
    status: AutoMLSweepStatus = field(default_factory=AutoMLSweepStatus)
    now: datetime = SIM_START
    rounds: int = 0
    plan_calls: int = 0
    plan_seconds: float = 0.0
    plan_seconds_max: float = 0.0

    def __post_init__(self) -> None:
        self.ref = ObjectRef(f"{GROUP}/{VERSION}", "AutoMLSweep", "bench", self.name, "sim-uid")
        self.owner = OwnerMeta(ref=self.ref, generation=1, created=SIM_START)

    @property
    def ended(self) -> bool:
        return self.status.phase in ("Succeeded", "Failed")

    @property
    def trial_steps(self) -> int:
        return sum(trial.step for trial in self.trials.values())

    @property
    def best(self) -> float | None:
        best = self.status.best_trial
        return None if best is None else best.value

    def advance(self) -> None:
        """One round: running trials report their next step (the last one succeeds)."""
        self.rounds += 1
        self.now += ROUND
        for number, trial in self.trials.items():
            if not trial.done:
                trial.step += REPORT_EVERY
                trial.losses.append(loss_at(trial.params, self.seed, number, trial.step))

    def plan(self) -> None:
        """Call the planner on what the trials' status says, and do what it decided."""
        observed = observe_sweep([trial.body(self.now) for trial in self.trials.values()])
        began = time.perf_counter()
        plan = plan_sweep(self.spec, self.owner, self.status, observed, self.now)
        took = time.perf_counter() - began
        self.plan_calls += 1
        self.plan_seconds += took
        self.plan_seconds_max = max(self.plan_seconds_max, took)
        for decided in plan.trials:
            if decided.suspend:
                self.trials[decided.number].stopped = True
            elif decided.number not in self.trials:
                self.trials[decided.number] = SimTrial(
                    manifest=trial_manifest(self.ref, decided),
                    params=dict(decided.parameters),
                    started=self.now,
                )
        self.status = plan.status


@dataclass(frozen=True)
class Reach:
    """When a run's best value first reached a target (None: it never did)."""

    trials: int
    trial_steps: int
    rounds: int


def run_search(
    algorithm: str, asha: bool, seed: int, budget_trials: int, parallel: int
) -> dict[str, Any]:
    """One sweep to the end of its budget; when it reached each target."""
    fields = sweep_fields(
        algorithm,
        asha,
        seed,
        max_trials=5 * budget_trials,
        parallel=parallel,
        max_gpu_hours=float(budget_trials),
    )
    sim = SweepSimulation(spec=parse_spec("AutoMLSweep", fields), seed=seed)
    reached: dict[float, Reach] = {}
    sim.plan()
    while not sim.ended:
        sim.advance()
        # Counted before this round's plan starts new trials: what it took to get here.
        trials_before, steps_before = len(sim.trials), sim.trial_steps
        sim.plan()
        for target in (TARGET, HARD_TARGET):
            if target not in reached and sim.best is not None and sim.best <= target:
                reached[target] = Reach(trials_before, steps_before, sim.rounds)
    counts = sim.status.trial_counts
    return {
        "seed": seed,
        "reached": {
            str(target): (vars(reached[target]) if target in reached else None)
            for target in (TARGET, HARD_TARGET)
        },
        "best_at_end": round(sim.best, 4) if sim.best is not None else None,
        "trials": counts.total,
        "succeeded": counts.succeeded,
        "pruned": counts.pruned,
        "trial_steps": sim.trial_steps,
        "rounds": sim.rounds,
        "gpu_hours": sim.status.gpu_hours,
        "plan_sweep_calls": sim.plan_calls,
        "plan_sweep_ms_mean": round(1000 * sim.plan_seconds / sim.plan_calls, 2),
        "plan_sweep_ms_max": round(1000 * sim.plan_seconds_max, 1),
    }


def median_or_none(values: Sequence[float | None]) -> float | None:
    """Median where a run that never reached counts as worse than any that did; None when
    half or more never reached."""
    ordered = sorted(v if v is not None else math.inf for v in values)
    middle = statistics.median(ordered) if ordered else math.inf
    return None if math.isinf(middle) else middle


def summarise(runs: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    hits = [run["reached"][str(target)] for run in runs]

    def median_of(key: str) -> float | None:
        return median_or_none([hit[key] if hit else None for hit in hits])

    return {
        "reached": sum(hit is not None for hit in hits),
        "runs": len(runs),
        "trials_median": median_of("trials"),
        "trial_steps_median": median_of("trial_steps"),
        "rounds_median": median_of("rounds"),
    }


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return round(value / baseline, 2)


def search_efficiency(seeds: int, budget_trials: int, parallel: int) -> dict[str, Any]:
    optimum = known_optimum()
    began = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {}
    for label, algorithm, asha in CONFIGS:
        for seed in range(seeds):
            runs.setdefault(label, []).append(
                run_search(algorithm, asha, seed, budget_trials, parallel)
            )
            print(f"  search {label} seed {seed}: {runs[label][-1]['best_at_end']}", flush=True)
    by_target: dict[str, dict[str, Any]] = {}
    for target in (TARGET, HARD_TARGET):
        table = {label: summarise(runs[label], target) for label, _, _ in CONFIGS}
        baseline = table["random"]
        for row in table.values():
            row["trials_vs_random"] = ratio(row["trials_median"], baseline["trials_median"])
            row["trial_steps_vs_random"] = ratio(
                row["trial_steps_median"], baseline["trial_steps_median"]
            )
        share = share_at_or_below(target)
        by_target[str(target)] = {
            "target": target,
            "share_of_space_at_or_below": round(share, 5),
            "random_expected_trials": round(1 / share, 1) if share else None,
            "configs": table,
        }
    return {
        "objective": (
            "Branin(x1 = log10(lr) in [-5, 0] mapped to [-5, 10], x2 = width int 0..15) + "
            f"optimizer offset {OPTIMIZER_OFFSET}; loss(step) = final + h*(1/step - 1/{STEPS})"
            f" + N(0, {NOISE_SIGMA}), h = {OPTIMIZER_SLOWNESS}[optimizer] * "
            "10**(-0.2*(log10(lr)+2.5)); reports every 10 steps up to 100"
        ),
        "known_optimum": round(optimum, 4),
        "seeds": seeds,
        "budget": {
            "max_gpu_hours": budget_trials,
            "meaning": f"{budget_trials} full trials of {STEPS} steps (pruned ones cost less)",
            "max_trials": 5 * budget_trials,
            "parallel_trials": parallel,
        },
        "asha": {"minSteps": REPORT_EVERY, "reductionFactor": 3},
        "targets": by_target,
        "best_at_end_median": {
            label: round(statistics.median(r["best_at_end"] for r in runs[label]), 4)
            for label, _, _ in CONFIGS
        },
        "trials_median": {
            label: statistics.median(r["trials"] for r in runs[label]) for label, _, _ in CONFIGS
        },
        "plan_sweep_ms_mean": {
            label: round(statistics.mean(r["plan_sweep_ms_mean"] for r in runs[label]), 2)
            for label, _, _ in CONFIGS
        },
        "runs": runs,
        "seconds": round(time.monotonic() - began, 1),
    }


# --------------------------------------------------------------------------------------
# The cluster and the operator
# --------------------------------------------------------------------------------------


@dataclass
class OperatorRun:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float
    ready_after: float

    def alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"operator exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status), answer.read().decode()
    except OSError:
        return 0, ""


def start_operator(kubeconfig: Path, state: Path, namespace: str) -> OperatorRun:
    """`plinth run` watching `namespace`, with its intake reachable on the probe port."""
    port = free_ports(1)[0]
    log = state / f"operator-{namespace}.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    command = [
        *(sys.executable, "-m", "plinth", "run", "--namespace", namespace),
        *("--probe-port", str(port), "--metrics-base-url", f"http://127.0.0.1:{port}"),
        *("--intake-key-file", str(state / "intake.key")),
    ]
    started = time.monotonic()
    with log.open("wb") as stream:
        process = subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT)
    run = OperatorRun(process, port, log, started, 0.0)
    wait_for(
        lambda: probe(port, "/readyz")[0] == 200,
        what="operator ready",
        timeout=90,
        watchdog=run.alive,
    )
    run.ready_after = time.monotonic() - started
    return run


def process_usage(pid: int) -> dict[str, float]:
    """CPU seconds (user + system), RSS now and peak RSS (MiB) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    memory = {
        line.split(":")[0]: int(line.split()[1]) / 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith(("VmHWM:", "VmRSS:"))
    }
    return {
        "cpu_seconds": (int(fields[11]) + int(fields[12])) / ticks,
        "rss_mib": memory["VmRSS"],
        "peak_rss_mib": memory["VmHWM"],
    }


Histograms = dict[str, dict[str, Any]]


def reconcile_histograms(port: int) -> Histograms:
    """Per kind: plinth_reconcile_duration_seconds as read from /metrics (sum, count and
    the cumulative buckets)."""
    found: Histograms = {}
    for line in probe(port, "/metrics")[1].splitlines():
        if not line.startswith("plinth_reconcile_duration_seconds"):
            continue
        name, value = line.rsplit(" ", 1)
        kind = name.split('kind="', 1)[1].split('"', 1)[0]
        entry = found.setdefault(kind, {"sum": 0.0, "count": 0.0, "buckets": {}})
        if name.startswith("plinth_reconcile_duration_seconds_sum"):
            entry["sum"] = float(value)
        elif name.startswith("plinth_reconcile_duration_seconds_count"):
            entry["count"] = float(value)
        elif name.startswith("plinth_reconcile_duration_seconds_bucket"):
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            entry["buckets"][float(bound)] = float(value)
    return found


def reconcile_summary(after: Histograms, before: Histograms | None = None) -> dict[str, Any]:
    """Per kind: reconciles, mean seconds and the histogram bounds of the median and p99
    (of the reconciles between `before` and `after`)."""
    summary = {}
    for kind, entry in after.items():
        earlier = (before or {}).get(kind, {"sum": 0.0, "count": 0.0, "buckets": {}})
        count = entry["count"] - earlier["count"]
        if count <= 0:
            continue
        buckets = sorted(
            (bound, seen - earlier["buckets"].get(bound, 0.0))
            for bound, seen in entry["buckets"].items()
        )

        summary[kind] = {
            "reconciles": int(count),
            "mean_seconds": round((entry["sum"] - earlier["sum"]) / count, 4),
            "median_seconds_at_most": histogram_bound(buckets, count, 0.5),
            "p99_seconds_at_most": histogram_bound(buckets, count, 0.99),
        }
    return summary


def histogram_bound(buckets: Sequence[tuple[float, float]], count: float, fraction: float) -> Any:
    """The upper bound of the bucket holding the `fraction` quantile (None: above them all)."""
    found = next((bound for bound, seen in buckets if seen >= fraction * count), math.inf)
    return found if math.isfinite(found) else None


def install(cluster: devcluster.ClusterInfo) -> None:
    kubectl = [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.kubeconfig)]
    crds = str(REPO / "crds")
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", crds],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f", crds],
        check=True,
        capture_output=True,
    )

    def served() -> bool:
        listing = subprocess.run(
            [*kubectl, "get", "automlsweeps,trainingjobs", "-A"], check=False, capture_output=True
        )
        return listing.returncode == 0

    wait_for(served, what="the CRDs served", timeout=60, interval=0.5)


def create_namespace(api: client.ApiClient, name: str) -> None:
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    client.CoreV1Api(api).create_namespace(body)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p99": None, "min": None, "max": None}
    return {
        "median": round(statistics.median(values), 3),
        "p99": round(percentile(values, 0.99), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


# --------------------------------------------------------------------------------------
# 2. Operator overhead per trial
# --------------------------------------------------------------------------------------

OVERHEAD_NAMESPACE = "bench-overhead"
OVERHEAD_SWEEP = "overhead"
#: kwok keeps each trial's pod Running this long (plus up to a second), then it succeeds.
TRIAL_RUN_SECONDS = 3


def overhead_sweep(trials: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AutoMLSweep",
        "metadata": {"name": OVERHEAD_SWEEP, "namespace": OVERHEAD_NAMESPACE},
        "spec": {
            "objectives": [{"metric": "loss", "direction": "minimize"}],
            "algorithm": {"name": "tpe", "seed": 1},
            "parameters": [{"name": "lr", "type": "float", "min": 1e-4, "max": 0.1, "log": True}],
            "budget": {"maxTrials": trials, "parallelTrials": 1, "maxFailedTrials": trials},
            "trialTemplate": {
                "image": IMAGE,
                "args": ["--lr=${params.lr}"],
                "nodes": 1,
                "resources": {"gpus": 1},
                "restartPolicy": {"backoffLimit": 0},
                "podTemplate": {
                    "annotations": {"devcluster.plinth.dev/run-seconds": str(TRIAL_RUN_SECONDS)}
                },
            },
        },
    }


def post_report(url: str, token: str, body: Mapping[str, Any]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


class TrialTimeline:
    """Watches a sweep's trial TrainingJobs, their Jobs and pods; stamps each transition
    with the bench's monotonic clock as its watch event arrives, and reports each new
    trial's loss to the intake as its training code would."""

    #: What is stamped per trial.
    STAMPS = (
        "trial_added",
        "job_added",
        "pod_added",
        "pod_ended",
        "job_ended",
        "trial_ended",
    )

    def __init__(self, api: client.ApiClient, namespace: str, port: int) -> None:
        self.api, self.namespace, self.port = api, namespace, port
        self.stamps: dict[str, dict[str, float]] = {stamp: {} for stamp in self.STAMPS}
        #: Per trial: its completionTime, and its first pod's creationTimestamp.
        self.completion_time: dict[str, str] = {}
        self.pod_created: dict[str, str] = {}
        self.reports: dict[str, int] = {}
        self.stop = threading.Event()
        self.reporters = ThreadPoolExecutor(max_workers=4, thread_name_prefix="report")
        self.threads = [
            threading.Thread(target=self._guarded, args=(follow,), daemon=True)
            for follow in (self._trials, self._jobs, self._pods)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        self.reporters.shutdown(wait=False, cancel_futures=True)

    def stamp(self, what: str, trial: str, when: float) -> bool:
        """Record the first time `what` happened to `trial`; whether this was it."""
        if trial in self.stamps[what]:
            return False
        self.stamps[what][trial] = when
        return True

    def _guarded(self, follow: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                follow()
            except Exception as error:  # a dropped watch is restarted
                if not self.stop.is_set():
                    print(f"  watch restarted: {error}", file=sys.stderr)
                    time.sleep(0.2)

    def _trials(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        stream = watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            "trainingjobs",
            label_selector="plinth.dev/automlsweep",
            timeout_seconds=600,
        ):
            now = time.monotonic()
            job = event["object"]
            name = job["metadata"]["name"]
            if self.stamp("trial_added", name, now):
                annotations = job["metadata"].get("annotations") or {}
                params = json.loads(annotations.get("plinth.dev/trial-parameters", "{}"))
                self.reporters.submit(self._report, name, params)
            status = job.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                self.stamp("trial_ended", name, now)
                self.completion_time.setdefault(name, status.get("completionTime") or "")
            if self.stop.is_set():
                stream.stop()

    def _jobs(self) -> None:
        batch = client.BatchV1Api(self.api)
        stream = watch.Watch()
        for event in stream.stream(
            batch.list_namespaced_job,
            self.namespace,
            label_selector="plinth.dev/trainingjob",
            timeout_seconds=600,
        ):
            now = time.monotonic()
            job = event["object"]
            trial = job.metadata.labels["plinth.dev/trainingjob"]
            self.stamp("job_added", trial, now)
            conditions = (job.status.conditions if job.status else None) or []
            if any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions):
                self.stamp("job_ended", trial, now)
            if self.stop.is_set():
                stream.stop()

    def _pods(self) -> None:
        core = client.CoreV1Api(self.api)
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_pod,
            self.namespace,
            label_selector="plinth.dev/trainingjob",
            timeout_seconds=600,
        ):
            now = time.monotonic()
            pod = event["object"]
            trial = pod.metadata.labels["plinth.dev/trainingjob"]
            if self.stamp("pod_added", trial, now):
                self.pod_created[trial] = format_time(pod.metadata.creation_timestamp)
            if pod.status.phase in ("Succeeded", "Failed"):
                self.stamp("pod_ended", trial, now)
            if self.stop.is_set():
                stream.stop()

    def _report(self, trial: str, params: Mapping[str, Any]) -> None:
        """What the trial's training code would send: its loss, with a checkpoint, so the
        intake answers only once the report is in the TrainingJob's status."""
        core = client.CoreV1Api(self.api)
        deadline = time.monotonic() + 60
        token = None
        while token is None and time.monotonic() < deadline and not self.stop.is_set():
            try:
                secret = core.read_namespaced_secret(metrics_secret_name(trial), self.namespace)
                token = base64.b64decode(secret.data["token"]).decode()
            except client.ApiException:
                time.sleep(0.1)
        if token is None:
            self.reports[trial] = 0
            return
        lr = float(params.get("lr", 0.01))
        body = {
            "step": STEPS,
            "metrics": {"loss": (math.log10(lr) + 2) ** 2 + 0.1},
            "checkpoint": f"s3://bench/{trial}/step-{STEPS}.pt",
        }
        url = f"http://127.0.0.1:{self.port}{metrics_path(self.namespace, trial)}"
        code = 0
        for _ in range(3):
            code = post_report(url, token, body)
            if code != 503:
                break
        self.reports[trial] = code


def read_sweep(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "automlsweeps", name
    )
    return found


def operator_overhead(
    api: client.ApiClient, kubeconfig: Path, state: Path, trials: int
) -> dict[str, Any]:
    create_namespace(api, OVERHEAD_NAMESPACE)
    operator = start_operator(kubeconfig, state, OVERHEAD_NAMESPACE)
    try:
        time.sleep(2)
        idle = process_usage(operator.process.pid)
        timeline = TrialTimeline(api, OVERHEAD_NAMESPACE, operator.port)
        timeline.start()
        time.sleep(1)  # the watches are established before the first trial exists
        began = time.monotonic()
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, OVERHEAD_NAMESPACE, "automlsweeps", overhead_sweep(trials)
        )

        def ended() -> bool:
            status = read_sweep(api, OVERHEAD_NAMESPACE, OVERHEAD_SWEEP).get("status") or {}
            return status.get("phase") in ("Succeeded", "Failed")

        wait_for(
            ended,
            what="the overhead sweep to end",
            timeout=60 + 30 * trials,
            interval=0.5,
            watchdog=operator.alive,
        )
        total = time.monotonic() - began
        time.sleep(1)
        timeline.close()
        status = read_sweep(api, OVERHEAD_NAMESPACE, OVERHEAD_SWEEP)["status"]
        usage = process_usage(operator.process.pid)
        reconciles = reconcile_summary(reconcile_histograms(operator.port))
    finally:
        operator.stop()
    return {
        **overhead_figures(timeline, trials),
        "trials": trials,
        "trial_pod_run_seconds": TRIAL_RUN_SECONDS,
        "trial_states": dict(status["trialCounts"]),
        "sweep_phase": status["phase"],
        "report_answers": sorted(timeline.reports.values()),
        "seconds_for_whole_sweep": round(total, 1),
        "seconds_per_trial": round(total / trials, 2),
        "reconcile": reconciles,
        "operator_cpu_seconds": round(usage["cpu_seconds"] - idle["cpu_seconds"], 2),
        "operator_idle_rss_mib": round(idle["rss_mib"], 1),
        "operator_peak_rss_mib": round(usage["peak_rss_mib"], 1),
    }


#: Segments from trial i's pod ending to trial i+1's first pod: (label, from, to, who acts),
#: each a stamp of trial i ("this") or of trial i+1 ("next"); they add up to the whole.
SEGMENTS = (
    ("pod ended -> trial Succeeded", ("this", "pod_ended"), ("this", "trial_ended"), "plinth"),
    ("trial Succeeded -> next trial", ("this", "trial_ended"), ("next", "trial_added"), "plinth"),
    ("next trial -> its Job", ("next", "trial_added"), ("next", "job_added"), "plinth"),
    ("its Job -> its first pod", ("next", "job_added"), ("next", "pod_added"), "kube"),
)
#: For comparison, not part of the chain: when the Job controller marked the Job Complete.
JOB_COMPLETE = ("pod ended -> its Job Complete", ("this", "pod_ended"), ("this", "job_ended"))


def overhead_figures(timeline: TrialTimeline, trials: int) -> dict[str, Any]:
    """Per trial i (all but the last): how long after trial i ended trial i+1's pod existed,
    and where that time went."""
    stamps = timeline.stamps
    segments: dict[str, list[float]] = {label: [] for label, *_ in (*SEGMENTS, JOB_COMPLETE)}
    from_trial_end, from_pod_end, plinth_part, from_completion = [], [], [], []
    for number in range(trials - 1):
        names = {
            "this": trial_name(OVERHEAD_SWEEP, number),
            "next": trial_name(OVERHEAD_SWEEP, number + 1),
        }

        def at(which: str, stamp: str, names: dict[str, str] = names) -> float | None:
            return stamps[stamp].get(names[which])

        ended, next_pod = at("this", "trial_ended"), at("next", "pod_added")
        if ended is None or next_pod is None:
            continue
        from_trial_end.append(next_pod - ended)
        pod_ended = at("this", "pod_ended")
        if pod_ended is not None:
            from_pod_end.append(next_pod - pod_ended)
        plinth = 0.0
        for label, start, end, who in SEGMENTS:
            began, finished = at(*start), at(*end)
            if began is None or finished is None:
                plinth = math.nan
                continue
            segments[label].append(finished - began)
            plinth += (finished - began) if who == "plinth" else 0.0
        if not math.isnan(plinth):
            plinth_part.append(plinth)
        label, start, end = JOB_COMPLETE
        began, finished = at(*start), at(*end)
        if began is not None and finished is not None:
            segments[label].append(finished - began)
        completion = timeline.completion_time.get(names["this"])
        created = timeline.pod_created.get(names["next"])
        if completion and created:
            seconds = (parse_time(created) - parse_time(completion)).total_seconds()  # type: ignore[operator]
            from_completion.append(seconds)
    return {
        "intervals": len(from_trial_end),
        "seconds_trial_end_to_next_pod": spread(from_trial_end),
        "seconds_pod_end_to_next_pod": spread(from_pod_end),
        "seconds_plinth_part": spread(plinth_part),
        "seconds_completion_time_to_next_pod_creation_timestamp": spread(from_completion),
        "segments": {
            label: {"who": who, **spread(segments[label])} for label, _, _, who in SEGMENTS
        },
        "for_comparison": {JOB_COMPLETE[0]: {"who": "kube", **spread(segments[JOB_COMPLETE[0]])}},
        "note": (
            "Stamped by the bench when each watch event arrives. trial end: the trial "
            "TrainingJob's phase Succeeded/Failed; pod end: its worker pod Succeeded; next "
            "pod: the next trial's first pod ADDED. The segments add up from pod end to the "
            "next pod; Plinth's part is the segments where the operator acts (TrainingJob and "
            "AutoMLSweep reconciles; the first includes any wait for the Job controller, whose "
            "Complete time is shown for comparison). completionTime and creationTimestamp "
            "have 1-second resolution."
        ),
    }


# --------------------------------------------------------------------------------------
# 3. Operator memory with many recorded trials
# --------------------------------------------------------------------------------------

MEMORY_NAMESPACE = "bench-memory"


def recorded_history(trials: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sweep spec and the status the planner itself wrote after `trials` finished trials
    (random search on the bench objective, 10 at a time)."""
    fields = sweep_fields("random", False, seed=3, max_trials=trials, parallel=10)
    sim = SweepSimulation(spec=parse_spec("AutoMLSweep", fields), seed=3, name="history")
    sim.plan()
    while not sim.ended:
        sim.advance()
        sim.plan()
    status = sim.status.to_dict()
    for key in ("phase", "conditions", "observedGeneration", "completionTime"):
        status.pop(key, None)
    return fields, status


def renamed(status: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
    """The recorded status of sweep `old` as sweep `new`'s (trial names follow the sweep)."""
    text = json.dumps(status).replace(f'"{old}-', f'"{new}-')
    copied: dict[str, Any] = json.loads(text)
    return copied


def create_recorded_sweeps(
    api: client.ApiClient, sweeps: int, fields: Mapping[str, Any], status: Mapping[str, Any]
) -> tuple[list[str], list[float]]:
    """Create the sweeps, then write each one's recorded status (one at a time: the seconds
    the API server takes per status write are returned too)."""
    custom = client.CustomObjectsApi(api)
    names = [f"recorded-{i:02d}" for i in range(sweeps)]
    writes = []
    for name in names:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AutoMLSweep",
            "metadata": {"name": name, "namespace": MEMORY_NAMESPACE},
            "spec": dict(fields),
        }
        custom.create_namespaced_custom_object(
            GROUP, VERSION, MEMORY_NAMESPACE, "automlsweeps", body
        )
        written = renamed(status, "history", name)
        began = time.monotonic()
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            MEMORY_NAMESPACE,
            "automlsweeps",
            name,
            {"status": written},
            _content_type="application/merge-patch+json",
        )
        writes.append(time.monotonic() - began)
    return names, writes


class SweepWatch:
    """Stamps (bench clock, as the watch event arrives) when each sweep's status first says
    it was computed from a generation and the sweep Succeeded."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.reconciled: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._guarded, daemon=True)
        self.thread.start()

    def count(self, generation: int) -> int:
        return sum(seen == generation for _, seen in list(self.reconciled))

    def times(self, generation: int) -> dict[str, float]:
        return {name: t for (name, seen), t in list(self.reconciled.items()) if seen == generation}

    def _guarded(self) -> None:
        while not self.stop.is_set():
            try:
                self._follow()
            except Exception as error:  # a dropped watch is restarted
                if not self.stop.is_set():
                    print(f"  watch restarted: {error}", file=sys.stderr)
                    time.sleep(0.2)

    def _follow(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        stream = watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            "automlsweeps",
            timeout_seconds=600,
        ):
            now = time.monotonic()
            sweep = event["object"]
            status = sweep.get("status") or {}
            succeeded = any(
                c.get("type") == "Succeeded" and c.get("status") == "True"
                for c in status.get("conditions", [])
            )
            generation = status.get("observedGeneration")
            if succeeded and generation:
                self.reconciled.setdefault((sweep["metadata"]["name"], generation), now)
            if self.stop.is_set():
                stream.stop()


def edit_every_sweep(api: client.ApiClient, names: Sequence[str]) -> dict[str, float]:
    """A user's edit of every sweep, one after another (a new generation, so each is planned
    and its status written again); when each edit was accepted."""
    custom = client.CustomObjectsApi(api)
    patch = {"spec": {"budget": {"maxFailedTrials": 99}}}
    accepted = {}
    for name in names:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            MEMORY_NAMESPACE,
            "automlsweeps",
            name,
            patch,
            _content_type="application/merge-patch+json",
        )
        accepted[name] = time.monotonic()
    return accepted


def control_plane_cpu(state: Path) -> dict[str, float]:
    """CPU seconds so far of each program of the bench's cluster."""
    processes = devcluster.status(CLUSTER_NAME, state_dir=state).processes
    return {p.name: cpu_seconds(p.pid) for p in processes if p.alive}


def cpu_spent(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    names = ("kube-apiserver", "etcd")
    return {name: round(after.get(name, 0.0) - before.get(name, 0.0), 2) for name in names}


def operator_memory(
    api: client.ApiClient, kubeconfig: Path, state: Path, sweeps: int, trials: int
) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)
    fields, status = recorded_history(trials)
    create_namespace(api, MEMORY_NAMESPACE)
    names, writes = create_recorded_sweeps(api, sweeps, fields, status)
    items = custom.list_namespaced_custom_object(GROUP, VERSION, MEMORY_NAMESPACE, "automlsweeps")[
        "items"
    ]
    stored = [len((item.get("status") or {}).get("trials", [])) for item in items]
    status_bytes = statistics.mean(len(json.dumps(item.get("status"))) for item in items)
    sweeps_seen = SweepWatch(api, MEMORY_NAMESPACE)
    time.sleep(1)  # the watch is established before the operator starts
    cluster_before = control_plane_cpu(state)
    operator = start_operator(kubeconfig, state, MEMORY_NAMESPACE)
    try:
        at_ready = process_usage(operator.process.pid)
        wait_for(
            lambda: sweeps_seen.count(1) >= sweeps,
            what=f"{sweeps} sweeps reconciled",
            timeout=300,
            interval=0.1,
            watchdog=operator.alive,
        )
        start_times = [t - operator.started for t in sweeps_seen.times(1).values()]
        time.sleep(3)  # the reconciles that their own status writes cause
        first = reconcile_histograms(operator.port)
        usage = process_usage(operator.process.pid)
        cluster_started = control_plane_cpu(state)
        # Second round: every sweep edited once the operator is warm.
        edited = time.monotonic()
        accepted = edit_every_sweep(api, names)
        wait_for(
            lambda: sweeps_seen.count(2) >= sweeps,
            what=f"{sweeps} edited sweeps reconciled",
            timeout=300,
            interval=0.1,
            watchdog=operator.alive,
        )
        done = sweeps_seen.times(2)
        edit_latency = [done[name] - accepted[name] for name in names]
        all_edited = max(done.values()) - edited
        time.sleep(3)
        second = reconcile_histograms(operator.port)
        final = process_usage(operator.process.pid)
        cluster_edited = control_plane_cpu(state)
        sweeps_seen.stop.set()
        trainingjobs = custom.list_namespaced_custom_object(
            GROUP, VERSION, MEMORY_NAMESPACE, "trainingjobs"
        )["items"]
        after = custom.list_namespaced_custom_object(
            GROUP, VERSION, MEMORY_NAMESPACE, "automlsweeps"
        )["items"]
    finally:
        operator.stop()
    start_round = reconcile_summary(first).get("AutoMLSweep", {})
    edit_round = reconcile_summary(second, first).get("AutoMLSweep", {})
    return {
        "sweeps": len(names),
        "trials_recorded_per_sweep": min(stored),
        "trials_in_status_after": sorted({len(i["status"]["trials"]) for i in after}),
        "phases_after": sorted({i["status"].get("phase") for i in after}),
        "status_json_kib_per_sweep": round(status_bytes / 1024, 1),
        "seconds_per_status_write_by_the_bench": spread(writes),
        "trial_trainingjobs_created": len(trainingjobs),
        "operator_seconds_to_ready": round(operator.ready_after, 2),
        "operator_seconds_to_each_reconciled": spread(start_times),
        "operator_rss_at_ready_mib": round(at_ready["rss_mib"], 1),
        "operator_peak_rss_mib": round(final["peak_rss_mib"], 1),
        "operator_peak_rss_after_start_round_mib": round(usage["peak_rss_mib"], 1),
        "operator_rss_at_end_mib": round(final["rss_mib"], 1),
        "operator_cpu_seconds_start_round": round(usage["cpu_seconds"], 2),
        "operator_cpu_seconds_start_round_after_ready": round(
            usage["cpu_seconds"] - at_ready["cpu_seconds"], 2
        ),
        "control_plane_cpu_seconds_start_round": cpu_spent(cluster_started, cluster_before),
        "operator_cpu_seconds_edit_round": round(final["cpu_seconds"] - usage["cpu_seconds"], 2),
        "control_plane_cpu_seconds_edit_round": cpu_spent(cluster_edited, cluster_started),
        "seconds_edit_to_reconciled": spread(edit_latency),
        "seconds_to_reconcile_all_edited": round(all_edited, 2),
        "reconcile_start_round": start_round,
        "reconcile_edit_round": edit_round,
        "note": (
            "start round: the operator starts with every sweep's records in status and "
            "reconciles each (the first reconciles also wait for the kube client's API "
            "discovery); edit round: every sweep's spec edited once, one after another (a new "
            "generation), so each is planned and its status written again by a warm "
            "operator; edit -> reconciled: from the edit's acceptance to the watch showing "
            "the status of the new generation. Times are stamped by the bench's watch."
        ),
    }


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds, trials and sweeps")
    parser.add_argument(
        "--only",
        choices=("search", "overhead", "memory"),
        action="append",
        help="run only these parts (repeatable); default: all three",
    )
    parser.add_argument("--seeds", type=int, default=None, help="search: seeds per config")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="keep the cluster's and operators' logs here"
    )
    args = parser.parse_args()
    args.parts = set(args.only or ("search", "overhead", "memory"))
    quick = args.quick
    args.seeds = args.seeds or (3 if quick else 10)
    args.budget_trials = 20 if quick else 40
    args.parallel = 2
    args.overhead_trials = 6 if quick else 16
    args.memory_sweeps = 5 if quick else 20
    args.memory_trials = 100
    return args


def cluster_parts(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    began = time.monotonic()
    cluster = devcluster.up(CLUSTER_NAME, state_dir=state, nodes=4, gpus_per_node=8)
    try:
        figures["cluster_up_seconds"] = round(time.monotonic() - began, 1)
        install(cluster)
        with devcluster.api_client(cluster.kubeconfig) as api:
            if "overhead" in args.parts:
                figures["overhead"] = operator_overhead(
                    api, cluster.kubeconfig, state, args.overhead_trials
                )
            if "memory" in args.parts:
                figures["memory"] = operator_memory(
                    api, cluster.kubeconfig, state, args.memory_sweeps, args.memory_trials
                )
    finally:
        devcluster.down(CLUSTER_NAME, state_dir=state)
    return figures


def show(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}{unit}"
    return f"{value}{unit}"


def print_search(search: Mapping[str, Any]) -> None:
    budget = search["budget"]
    print(
        f"\n1. Search efficiency: known optimum {search['known_optimum']}, {search['seeds']} "
        f"seeds, budget {budget['max_gpu_hours']} GPU-hours (= {budget['max_gpu_hours']} "
        f"full trials), {budget['parallel_trials']} in parallel; medians over seeds"
    )
    for key, block in search["targets"].items():
        print(
            f"   target loss <= {key} ({100 * block['share_of_space_at_or_below']:.2f}% of "
            f"the space; random needs ~{block['random_expected_trials']} trials on average)"
        )
        print(
            f"   {'config':<10}{'reached':>9}{'trials':>9}{'x random':>10}"
            f"{'trial-steps':>13}{'x random':>10}{'rounds':>8}"
        )
        for label, row in block["configs"].items():
            print(
                f"   {label:<10}{row['reached']:>5}/{row['runs']:<3}"
                f"{show(row['trials_median']):>9}{show(row['trials_vs_random']):>10}"
                f"{show(row['trial_steps_median']):>13}{show(row['trial_steps_vs_random']):>10}"
                f"{show(row['rounds_median']):>8}"
            )
    print(
        "   best at end of budget (median): "
        + ", ".join(f"{k} {v}" for k, v in search["best_at_end_median"].items())
        + "; trials run (median): "
        + ", ".join(f"{k} {v}" for k, v in search["trials_median"].items())
        + "; plan_sweep ms/call: "
        + ", ".join(f"{k} {v}" for k, v in search["plan_sweep_ms_mean"].items())
    )


def print_overhead(overhead: Mapping[str, Any]) -> None:
    def line(label: str, values: Mapping[str, Any]) -> str:
        return (
            f"   {label:<48} median {show(values['median'], ' s'):>9}   "
            f"p99 {show(values['p99'], ' s'):>9}"
        )

    print(
        f"\n2. Operator overhead per trial: {overhead['intervals']} intervals between "
        f"{overhead['trials']} trials (parallelTrials 1; trials {overhead['trial_states']})"
    )
    print(
        line(
            "trial TrainingJob ended -> next trial's pod", overhead["seconds_trial_end_to_next_pod"]
        )
    )
    print(line("trial's pod ended -> next trial's pod", overhead["seconds_pod_end_to_next_pod"]))
    print(line("  Plinth's part of that", overhead["seconds_plinth_part"]))
    for label, values in overhead["segments"].items():
        print(line(f"  {label} ({values['who']})", values))
    for label, values in overhead["for_comparison"].items():
        print(line(f"  (compare: {label})", values))
    print(
        line(
            "completionTime -> next pod creationTimestamp",
            overhead["seconds_completion_time_to_next_pod_creation_timestamp"],
        )
    )
    print(
        f"   whole sweep {overhead['seconds_for_whole_sweep']} s, "
        f"{overhead['seconds_per_trial']} s per trial (pod run time "
        f"{overhead['trial_pod_run_seconds']} s + up to 1 s); operator CPU "
        f"{overhead['operator_cpu_seconds']} s, peak RSS {overhead['operator_peak_rss_mib']} MiB"
    )
    for kind, values in overhead["reconcile"].items():
        print(
            f"   {kind} reconciles: {values['reconciles']}, mean {values['mean_seconds']} s, "
            f"median <= {show(values['median_seconds_at_most'], ' s')}, "
            f"p99 <= {show(values['p99_seconds_at_most'], ' s')}"
        )


def print_memory(memory: Mapping[str, Any]) -> None:
    print(
        f"\n3. Operator memory: {memory['sweeps']} sweeps x {memory['trials_recorded_per_sweep']}"
        f" recorded trials ({memory['status_json_kib_per_sweep']} KiB of status each)"
    )
    each = memory["operator_seconds_to_each_reconciled"]
    print(
        f"   operator RSS at ready {memory['operator_rss_at_ready_mib']} MiB, peak "
        f"{memory['operator_peak_rss_mib']} MiB (after the start round "
        f"{memory['operator_peak_rss_after_start_round_mib']} MiB)"
    )
    print(
        f"   start round: ready {memory['operator_seconds_to_ready']} s after start; each "
        f"sweep reconciled {each['min']}..{each['max']} s after start (median {each['median']}"
        f" s); operator CPU {memory['operator_cpu_seconds_start_round']} s "
        f"({memory['operator_cpu_seconds_start_round_after_ready']} s after ready); "
        f"control plane CPU {memory['control_plane_cpu_seconds_start_round']}"
    )
    latency = memory["seconds_edit_to_reconciled"]
    print(
        f"   edit round: edit -> reconciled median {latency['median']} s, p99 "
        f"{latency['p99']} s; all {memory['sweeps']} done "
        f"{memory['seconds_to_reconcile_all_edited']} s after the first edit; operator CPU "
        f"{memory['operator_cpu_seconds_edit_round']} s; "
        f"control plane CPU {memory['control_plane_cpu_seconds_edit_round']}"
    )
    for label, key in (
        ("start round", "reconcile_start_round"),
        ("edit round", "reconcile_edit_round"),
    ):
        values = memory[key]
        if values:
            print(
                f"   {label}: {values['reconciles']} sweep reconciles (plinth_reconcile_duration"
                f"_seconds), mean {values['mean_seconds']} s, median <= "
                f"{show(values['median_seconds_at_most'], ' s')}, p99 <= "
                f"{show(values['p99_seconds_at_most'], ' s')}"
            )
    writes = memory["seconds_per_status_write_by_the_bench"]
    print(
        f"   one 100-trial status write by the bench itself: median {writes['median']} s, "
        f"max {writes['max']} s; trial TrainingJobs created: "
        f"{memory['trial_trainingjobs_created']}; phases after: {memory['phases_after']}"
    )


def source_version() -> dict[str, Any]:
    """The commit measured, and whether the operator's sources differ from it."""

    def git(*arguments: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(REPO), *arguments], check=False, capture_output=True, text=True
        )
        return result.stdout.strip()

    changed = git("status", "--porcelain", "--", "operator/plinth").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "operator_files_changed": len(changed)}


def main() -> None:
    args = parse_args()
    began = time.monotonic()
    figures: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "source": source_version(),
        "quick": args.quick,
    }
    if "search" in args.parts:
        figures["search"] = search_efficiency(args.seeds, args.budget_trials, args.parallel)
        print_search(figures["search"])
    if args.parts & {"overhead", "memory"} and args.state_dir is not None:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        figures.update(cluster_parts(args, args.state_dir))
    elif args.parts & {"overhead", "memory"}:
        with tempfile.TemporaryDirectory(prefix="plinth-bench-sweep-") as folder:
            figures.update(cluster_parts(args, Path(folder)))
    figures["total_seconds"] = round(time.monotonic() - began, 1)
    print(json.dumps({k: v for k, v in figures.items() if k != "search"}, indent=2))
    if "search" in figures:
        print_search(figures["search"])
    if "overhead" in figures:
        print_overhead(figures["overhead"])
    if "memory" in figures:
        print_memory(figures["memory"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS / (
        "automlsweep-quick.json" if args.quick else "automlsweep.json"
    )
    output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nsaved {output} ({figures['total_seconds']} s)")


if __name__ == "__main__":
    main()
