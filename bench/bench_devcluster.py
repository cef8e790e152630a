"""Benchmark of the emulated cluster: warm `up` time, control-plane memory, 1,000 GPU nodes.

Run: `.venv/bin/python bench/bench_devcluster.py` (builds the binaries first if needed; the
build time is not part of the figures). Prints the figures and saves them to
bench/results/devcluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import plinth_devcluster as devcluster
from plinth_devcluster.binaries import build_record_path
from plinth_devcluster.nodes import GpuNodePool, create_nodes, ready_node_names, wait_nodes_ready
from plinth_devcluster.processes import cpu_seconds, memory_rss_bytes

RESULTS = Path(__file__).parent / "results" / "devcluster.json"
MIB = 1024 * 1024


def quiet(_: str) -> None:
    """Progress reporter that drops messages (timings are the benchmark's)."""


def control_plane_memory(name: str, state_dir: Path) -> dict[str, float]:
    """RSS in MiB of each running program of the cluster, and their sum."""
    processes = devcluster.status(name, state_dir=state_dir).processes
    per_program = {p.name: round(memory_rss_bytes(p.pid) / MIB, 1) for p in processes}
    return {**per_program, "total": round(sum(per_program.values()), 1)}


def control_plane_cpu(name: str, state_dir: Path) -> float:
    processes = devcluster.status(name, state_dir=state_dir).processes
    return sum(cpu_seconds(p.pid) for p in processes)


def timed_up(name: str, state_dir: Path) -> float:
    began = time.monotonic()
    devcluster.up(name, state_dir=state_dir, progress=quiet)
    return time.monotonic() - began


def warm_up_times(runs: int, root: Path) -> list[float]:
    """Seconds from `up` to ready, `runs` times, each followed by `down`."""
    times = []
    for run in range(runs):
        state_dir = root / f"warm-{run}"
        times.append(timed_up("bench-warm", state_dir))
        devcluster.down("bench-warm", state_dir=state_dir)
    return times


def thousand_nodes(name: str, state_dir: Path, count: int, steady_seconds: float) -> dict[str, Any]:
    """Create `count` GPU nodes, wait for Ready, then check they stay Ready (leases renewed)."""
    kubeconfig = devcluster.status(name, state_dir=state_dir).cluster
    assert kubeconfig is not None
    pool = GpuNodePool(count=count, name_prefix="bench-gpu")
    with devcluster.api_client(kubeconfig.kubeconfig) as api:
        began = time.monotonic()
        create_nodes(api, pool)
        created = time.monotonic() - began
        wait_nodes_ready(api, pool, timeout=600)
        ready = time.monotonic() - began
        memory_after = control_plane_memory(name, state_dir)
        cpu_before = control_plane_cpu(name, state_dir)
        time.sleep(steady_seconds)
        cpu_steady = (control_plane_cpu(name, state_dir) - cpu_before) / steady_seconds
        still_ready = len(ready_node_names(api, pool.selector))
    return {
        "nodes": count,
        "create_seconds": round(created, 1),
        "all_ready_seconds": round(ready, 1),
        "memory_mib_with_nodes": memory_after,
        "steady_window_seconds": steady_seconds,
        "steady_cpu_cores": round(cpu_steady, 2),
        "still_ready_after_window": still_ready,
    }


def build_records() -> dict[str, Any]:
    """How long the build of each cached source took (recorded by the build itself)."""
    records = {}
    for source in devcluster.SOURCES:
        path = build_record_path(source)
        if path.exists():
            records[source.name] = json.loads(path.read_text())
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--steady-seconds", type=float, default=70.0)
    args = parser.parse_args()
    devcluster.ensure_binaries()
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as root:
        warm = warm_up_times(args.warm_runs, Path(root))
        state_dir = Path(root) / "main"
        devcluster.up("bench", state_dir=state_dir, progress=quiet)
        try:
            memory_idle = control_plane_memory("bench", state_dir)
            scale = thousand_nodes("bench", state_dir, args.nodes, args.steady_seconds)
        finally:
            began = time.monotonic()
            devcluster.down("bench", state_dir=state_dir)
            down_seconds = time.monotonic() - began
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {s.name: s.version for s in devcluster.SOURCES},
        "warm_up_seconds": [round(t, 1) for t in warm],
        "warm_up_seconds_median": round(statistics.median(warm), 1),
        "memory_mib_idle_4_nodes": memory_idle,
        "scale": scale,
        "down_seconds": round(down_seconds, 1),
        "build_records": build_records(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
