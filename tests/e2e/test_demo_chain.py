"""Train -> tune -> serve on real data, as `make demo` does it, smaller: the reference
trainer learns scikit-learn's handwritten digits in a TrainingJob, a sweep tunes its
learning rate, and a ModelDeployment (`fromSweep`) serves the best trial's model on a real
tritonserver, which the user's client asks about 360 held-out digits.

The accuracy threshold: chance is 10%, and a trial with too small a learning rate stays
near 50% at step 10 (ASHA stops it there); the 64-unit MLP of every trial that gets a usable
learning rate passes 90% on the held-out digits within 60 steps, so the best of four
trials served must pass 85%. The served model must also answer exactly as the trainer
measured it: its accuracy is the best trial's recorded value, to one digit in 360.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth_devcluster import ClusterInfo, podrunner
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, kubectl
from tests.support.cluster import create_job, phase, trainingjob
from tests.support.digits import (
    HELD_OUT,
    LOCAL,
    ask_digits,
    digits_args,
    digits_sweep,
    served_from_sweep,
)
from tests.support.serving_cluster import apply_md, ready_ips, status_of
from tests.support.sweeps import apply, sweep, sweep_phase

pytestmark = pytest.mark.timeout(600)
THRESHOLD = 0.85


def test_digits_are_trained_tuned_and_served_for_real(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,
    tmp_path: Path,
) -> None:
    create_job(
        cluster,
        namespace,
        "digits-once",
        image="ghcr.io/plinth-dev/plinth-trainer:0.1.0",
        args=digits_args(60, "--lr=0.01"),
        nodes=1,
        resources={"cpu": 1},
        checkpoint={"uri": str(tmp_path / "once")},
        podTemplate=LOCAL,
    )
    wait_for(
        lambda: phase(cluster, namespace, "digits-once") in ("Succeeded", "Failed"),
        what="the digits TrainingJob to finish",
        timeout=180,
    )
    status = trainingjob(cluster, namespace, "digits-once")["status"]
    assert status["phase"] == "Succeeded", status
    assert status["metrics"]["step"] == 60
    assert status["metrics"]["latest"]["accuracy"] > THRESHOLD
    assert status["metrics"]["latest"]["loss"] < status["metrics"]["max"]["loss"]
    assert status["lastCheckpoint"]["step"] == 60

    apply_md(cluster, served_from_sweep(namespace, "digits", "tune"))
    apply(
        cluster,
        namespace,
        digits_sweep("tune", tmp_path / "sweep", 60, budget={"maxTrials": 4, "parallelTrials": 2}),
    )
    wait_for(
        lambda: sweep_phase(cluster, namespace, "tune") in ("Succeeded", "Failed"),
        what="the sweep to end",
        timeout=300,
    )
    tuned = sweep(cluster, namespace, "tune")["status"]
    assert tuned["phase"] == "Succeeded", tuned
    best = tuned["bestTrial"]
    assert best["value"] > THRESHOLD
    assert best["value"] == max(
        t["values"]["accuracy"] for t in tuned["trials"] if t["state"] == "Succeeded"
    )

    wait_for(
        lambda: status_of(cluster, namespace, "digits").get("phase") == "Ready",
        what=f"the best model served ({status_of(cluster, namespace, 'digits')})",
        timeout=180,
    )
    served = status_of(cluster, namespace, "digits")
    assert served["model"]["uri"] == f"{tmp_path / 'sweep' / best['name']}/model"
    (address,) = ready_ips(cluster, namespace, "digits")
    answer = ask_digits(address, "digits")
    assert answer.total == HELD_OUT
    assert answer.accuracy > THRESHOLD
    assert abs(answer.right - best["value"] * HELD_OUT) <= 1, (answer.output, best)
    listing = kubectl(cluster, "-n", namespace, "get", "md", "digits").stdout.splitlines()
    assert listing[1].split()[1:5] == ["Ready", "digits", "1", "1"]
