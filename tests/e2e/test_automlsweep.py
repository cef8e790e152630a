"""AutoMLSweeps end to end: trials that train for real, suggested and pruned by Optuna.

Trials are TrainingJobs whose workers the pod runner runs as local processes (the
reference trainer, on the CPU); the sweep reads only their status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from plinth_devcluster import ClusterInfo, podrunner
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, condition, event_reasons, kubectl
from tests.support.sweeps import apply, sweep, sweep_phase, trainer_sweep, trial_jobs

FINISHED = ("Succeeded", "Failed")


def finished(cluster: ClusterInfo, namespace: str, name: str) -> bool:
    return sweep_phase(cluster, namespace, name) in FINISHED


def test_a_sweep_trains_prunes_and_records_the_best_trial(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,
    tmp_path: Path,
) -> None:
    document = trainer_sweep(
        "lr",
        tmp_path / "checkpoints",
        earlyStopping={"name": "asha", "minSteps": 5, "reductionFactor": 3},
        budget={"maxTrials": 6, "parallelTrials": 2, "maxFailedTrials": 1},
    )
    apply(cluster, namespace, document)
    wait_for(lambda: finished(cluster, namespace, "lr"), what="the sweep to end", timeout=300)
    status = sweep(cluster, namespace, "lr")["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(sweep(cluster, namespace, "lr"), "Succeeded")["reason"] == "BudgetExhausted"  # type: ignore[index]
    trials = status["trials"]
    assert [t["number"] for t in trials] == list(range(6))
    assert [t["name"] for t in trials] == [f"lr-{n}" for n in range(6)]
    states = {t["state"] for t in trials}
    assert states <= {"Succeeded", "Pruned"}, trials
    best = status["bestTrial"]
    finished_values = [t["values"]["loss"] for t in trials if t["state"] == "Succeeded"]
    assert best["value"] == min(finished_values)
    assert best["checkpointUri"].endswith("/lr-" + str(best["number"]))
    first = trials[0]
    if first["state"] == "Succeeded":
        assert best["value"] <= first["values"]["loss"]
    assert status["trialCounts"]["total"] == 6
    assert status["gpuHours"] > 0
    reasons = event_reasons(cluster, namespace, "lr")
    assert {"TrialCreated", "TrialSucceeded"} <= reasons
    jobs = trial_jobs(cluster, namespace, "lr")
    assert sorted(j["metadata"]["name"] for j in jobs) == [f"lr-{n}" for n in range(6)]
    pruned = [t for t in trials if t["state"] == "Pruned"]
    assert pruned, "ASHA stopped no trial of lr 1e-4..0.3"
    for trial in pruned:
        job = next(j for j in jobs if j["metadata"]["name"] == trial["name"])
        assert job["spec"]["suspend"] is True
        assert trial["reason"].startswith("stopped by asha at step")
        assert trial["values"]["loss"] == trial["intermediateValues"][-1]["value"]
        wait_for(
            lambda name=trial["name"]: not worker_pods(cluster, namespace, name),
            what=f"the pods of pruned trial {trial['name']} gone",
            timeout=60,
        )
        wait_for(
            lambda name=trial["name"]: stopped_condition(cluster, namespace, name) is not None,
            what=f"pruned trial {trial['name']}'s TrainingJob to say why it stopped",
            timeout=60,
        )
        told = stopped_condition(cluster, namespace, trial["name"])
        assert told is not None
        assert told["message"].startswith(f"Trial of lr, {trial['reason']}. spec.suspend"), told
    picture = tmp_path / "lr.png"
    assert plot(cluster, namespace, "lr", picture) == str(picture)
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert picture.stat().st_size > 20_000  # three panels drawn, not an empty canvas


def plot(cluster: ClusterInfo, namespace: str, name: str, output: Path) -> str:
    """`plinth sweep plot` as a user runs it; returns what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "plinth", "sweep", "plot", name, "-n", namespace, "-o", str(output)],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout.strip()


def stopped_condition(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, str] | None:
    """The trial TrainingJob's Suspended condition once it names its sweep as the cause."""
    listing = kubectl(cluster, "-n", namespace, "get", "trainingjob", name, "-o", "json")
    found = condition(json.loads(listing.stdout), "Suspended")
    return found if found and found.get("reason") == "StoppedBySweep" else None


def worker_pods(cluster: ClusterInfo, namespace: str, trainingjob: str) -> list[str]:
    selector = f"plinth.dev/trainingjob={trainingjob}"
    listing = kubectl(cluster, "-n", namespace, "get", "pods", "-l", selector, "-o", "name")
    return listing.stdout.split()


def test_a_goal_ends_the_sweep_early(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,
    tmp_path: Path,
) -> None:
    document = trainer_sweep(
        "goal",
        tmp_path / "checkpoints",
        objectives=[{"metric": "loss", "direction": "minimize", "goal": 10.0}],
        budget={"maxTrials": 20, "parallelTrials": 1},
    )
    apply(cluster, namespace, document)
    wait_for(lambda: finished(cluster, namespace, "goal"), what="the sweep to end", timeout=180)
    resource = sweep(cluster, namespace, "goal")
    assert resource["status"]["phase"] == "Succeeded"
    assert condition(resource, "Succeeded")["reason"] == "GoalReached"  # type: ignore[index]
    assert resource["status"]["trialCounts"]["total"] < 20


def test_trials_that_all_fail_fail_the_sweep_after_max_failed_trials(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,
    tmp_path: Path,
) -> None:
    document = trainer_sweep(
        "broken",
        tmp_path / "checkpoints",
        trainer_args=["--steps=5", "--fail-at-step=1", "--exit-code=3", "--lr=${params.lr}"],
        budget={"maxTrials": 10, "parallelTrials": 1, "maxFailedTrials": 1},
    )
    apply(cluster, namespace, document)
    wait_for(lambda: finished(cluster, namespace, "broken"), what="the sweep to end", timeout=180)
    resource = sweep(cluster, namespace, "broken")
    failed = condition(resource, "Failed")
    assert resource["status"]["phase"] == "Failed"
    assert failed is not None and failed["reason"] == "TooManyFailedTrials"
    assert "broken-1" in failed["message"] and "exit" in failed["message"]
    assert resource["status"]["trialCounts"] == {
        "total": 2,
        "pending": 0,
        "running": 0,
        "succeeded": 0,
        "pruned": 0,
        "failed": 2,
    }


def test_a_trial_that_never_reports_fails_with_no_metric_and_more_trials_can_be_added(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,
    tmp_path: Path,
) -> None:
    document = trainer_sweep(
        "silent",
        tmp_path / "checkpoints",
        objectives=[{"metric": "accuracy", "direction": "maximize"}],
        budget={"maxTrials": 1, "parallelTrials": 1, "maxFailedTrials": 5},
    )
    apply(cluster, namespace, document)
    wait_for(lambda: finished(cluster, namespace, "silent"), what="the sweep to end", timeout=180)
    status = sweep(cluster, namespace, "silent")["status"]
    (trial,) = status["trials"]
    assert trial["state"] == "Failed"
    assert trial["reason"].startswith("NoMetric") and "accuracy" in trial["reason"]
    assert status["phase"] == "Succeeded"

    kubectl(
        cluster,
        "-n",
        namespace,
        "patch",
        "automlsweep",
        "silent",
        "--type=merge",
        "-p",
        '{"spec": {"budget": {"maxTrials": 2}}}',
    )
    wait_for(
        lambda: len(sweep(cluster, namespace, "silent")["status"]["trials"]) == 2,
        what="a trial added after raising maxTrials",
        timeout=60,
    )
    wait_for(lambda: finished(cluster, namespace, "silent"), what="the sweep to end", timeout=180)
    assert [t["name"] for t in sweep(cluster, namespace, "silent")["status"]["trials"]] == [
        "silent-0",
        "silent-1",
    ]
