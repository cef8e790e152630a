"""AutoMLSweeps for tests: a small real sweep over the reference trainer, and kubectl reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plinth_devcluster import ClusterInfo
from tests.plinth_testing import kubectl, kubectl_json

TRAINER_IMAGE = "ghcr.io/plinth-dev/plinth-trainer:0.1.0"


def trainer_sweep(
    name: str, checkpoints: Path, *, trainer_args: list[str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A sweep over the reference trainer's learning rate (which matters: 1e-4 barely
    learns in 40 steps, 0.3 diverges), trials run as local processes by the pod runner.
    `spec` replaces top-level spec fields."""
    args = trainer_args or [
        "--steps=40",
        "--report-every=5",
        "--checkpoint-every=20",
        "--step-seconds=0.15",
        "--lr=${params.lr}",
    ]
    body: dict[str, Any] = {
        "objectives": [{"metric": "loss", "direction": "minimize"}],
        "algorithm": {"name": "tpe", "seed": 11},
        "parameters": [{"name": "lr", "type": "float", "min": 0.0001, "max": 0.3, "log": True}],
        "budget": {"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 2},
        "trialTemplate": {
            "image": TRAINER_IMAGE,
            "args": args,
            "nodes": 1,
            "resources": {"gpus": 1},
            "checkpoint": {"uri": f"{checkpoints}/${{trial.name}}"},
            "restartPolicy": {"backoffLimit": 0},
            "podTemplate": {"annotations": {"devcluster.plinth.dev/runner": "local"}},
        },
    }
    body.update(spec)
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "AutoMLSweep",
        "metadata": {"name": name},
        "spec": body,
    }


def apply(cluster: ClusterInfo, namespace: str, document: dict[str, Any]) -> None:
    kubectl(cluster, "-n", namespace, "apply", "-f", "-", input_text=json.dumps(document))


def sweep(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl_json(cluster, "-n", namespace, "get", "automlsweep", name)
    return result


def sweep_phase(cluster: ClusterInfo, namespace: str, name: str) -> str | None:
    return sweep(cluster, namespace, name).get("status", {}).get("phase")


def trial_jobs(cluster: ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    """The sweep's trial TrainingJobs."""
    selector = f"plinth.dev/automlsweep={name}"
    items: list[dict[str, Any]] = kubectl_json(
        cluster, "-n", namespace, "get", "trainingjobs", "-l", selector
    )["items"]
    return items
