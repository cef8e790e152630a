"""Crash safety of a sweep: the operator SIGKILLed at random moments while trials train.

Run with one trial at a time and no pruning, a sweep is deterministic: the same seed gives
the same trials in the same order. The sweep is run once undisturbed and once with the
operator killed and restarted every few seconds; both must end with the same trials (numbers
contiguous, none twice, every finished trial's value in status) and the same best trial.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from plinth_devcluster import ClusterInfo, podrunner
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, start_operator
from tests.support.sweeps import apply, sweep, sweep_phase, trainer_sweep, trial_jobs

SEED = 20261129
MIN_KILLS = 5
BUDGET = {"maxTrials": 4, "parallelTrials": 1, "maxFailedTrials": 0}


def finished(cluster: ClusterInfo, namespace: str, name: str) -> bool:
    return sweep_phase(cluster, namespace, name) in ("Succeeded", "Failed")


def test_random_operator_kills_during_a_sweep_change_nothing_it_decides(
    installed_crds: ClusterInfo,
    namespace: str,
    tmp_path: Path,
    pod_runner: podrunner.PodRunner,
) -> None:
    cluster, chance, log = installed_crds, random.Random(SEED), tmp_path / "operator.log"
    operator: OperatorProcess = start_operator(cluster.kubeconfig, log)
    try:
        apply(cluster, namespace, trainer_sweep("calm", tmp_path / "calm", budget=BUDGET))
        wait_for(lambda: finished(cluster, namespace, "calm"), what="calm sweep", timeout=300)
        apply(cluster, namespace, trainer_sweep("killed", tmp_path / "killed", budget=BUDGET))
        kills, deadline = 0, time.monotonic() + 300
        while (kills < MIN_KILLS or not finished(cluster, namespace, "killed")) and (
            time.monotonic() < deadline
        ):
            time.sleep(chance.uniform(0.5, 3.0))
            operator.stop(signal.SIGKILL)
            kills += 1
            operator = start_operator(cluster.kubeconfig, log, port=operator.probe_port)
        wait_for(lambda: finished(cluster, namespace, "killed"), what="killed sweep", timeout=120)
    finally:
        operator.stop()
    print(f"operator killed {kills} times")
    calm, killed = (sweep(cluster, namespace, name)["status"] for name in ("calm", "killed"))
    outcome = [(t["name"], t["state"], t.get("reason")) for t in killed["trials"]]
    assert killed["phase"] == calm["phase"] == "Succeeded", outcome
    assert [t["number"] for t in killed["trials"]] == [0, 1, 2, 3]
    names = [j["metadata"]["name"] for j in trial_jobs(cluster, namespace, "killed")]
    assert sorted(names) == ["killed-0", "killed-1", "killed-2", "killed-3"]
    for trial in killed["trials"]:
        assert trial["state"] == "Succeeded", trial
        assert "loss" in trial["values"], trial
    assert [t["parameters"] for t in killed["trials"]] == [t["parameters"] for t in calm["trials"]]
    assert killed["bestTrial"]["number"] == calm["bestTrial"]["number"]
    assert killed["bestTrial"]["value"] == pytest.approx(calm["bestTrial"]["value"])
