"""A TrainingJob that trains for real: the reference trainer as local processes.

The pod runner plays the kubelet for pods annotated `devcluster.plinth.dev/runner: local`:
each worker runs `images/trainer/train.py` under torchrun with exactly the environment
the builder rendered (gloo on the CPU). The first attempt crashes on purpose at step 15;
the operator restarts the whole gang, which resumes from the step-10 checkpoint; metrics
reported by rank 0 reach the job's status through the operator's intake.
"""

from __future__ import annotations

from pathlib import Path

from plinth_devcluster import ClusterInfo, podrunner
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, condition
from tests.support.cluster import create_job, phase, trainingjob


def test_a_crashed_gang_resumes_from_its_checkpoint_and_reports_metrics(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,
    tmp_path: Path,
) -> None:
    checkpoints = tmp_path / "checkpoints"
    create_job(
        cluster,
        namespace,
        "mlp",
        image="ghcr.io/plinth-dev/plinth-trainer:0.1.0",
        args=[
            "--steps=30",
            "--checkpoint-every=10",
            "--report-every=5",
            "--fail-at-step=15",
            "--fail-rank=1",
            "--exit-code=3",
            "--dist-timeout=60",
        ],
        nodes=2,
        resources={"gpus": 1},
        checkpoint={"uri": str(checkpoints)},
        restartPolicy={"backoffLimit": 2},
        podTemplate={"annotations": {"devcluster.plinth.dev/runner": "local"}},
    )
    wait_for(
        lambda: phase(cluster, namespace, "mlp") in ("Succeeded", "Failed"),
        what="the job to finish",
        timeout=240,
    )
    job = trainingjob(cluster, namespace, "mlp")
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert (status["restarts"], status["preemptions"]) == (1, 0)
    assert condition(job, "Succeeded")["status"] == "True"  # type: ignore[index]
    resumed_log = pod_runner.log_text(
        namespace, next(run.name for run in pod_runner.started(namespace) if "-r1-0" in run.name)
    )
    assert "resumed from step 10" in resumed_log
    assert (checkpoints / "latest").read_text().strip().startswith("step-30")
    assert status["metrics"]["step"] == 30
    assert status["metrics"]["latest"]["loss"] < status["metrics"]["max"]["loss"]
    assert status["lastCheckpoint"]["step"] == 30
