"""The digits chain for tests: the reference trainer's `--task digits` as a TrainingJob and
as a sweep, a ModelDeployment serving a sweep's best model, and the client a user runs to
ask it about the held-out digits (`images/trainer/digits_client.py`)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.serving import REPO_ROOT, ModelDeploymentFactory, a_modeldeployment
from tests.support.sweeps import trainer_sweep

CLIENT = REPO_ROOT / "images" / "trainer" / "digits_client.py"
#: What the trainer's exported model takes and gives: 64 pixels in, 10 probabilities out.
DIGITS_TENSORS = {
    "inputs": [{"name": "INPUT", "dataType": "FP32", "dims": [64]}],
    "outputs": [{"name": "OUTPUT", "dataType": "FP32", "dims": [10]}],
}
HELD_OUT = 360
LOCAL = {"annotations": {"devcluster.plinth.dev/runner": "local"}}


def digits_args(steps: int, *extra: str) -> list[str]:
    return ["--task=digits", f"--steps={steps}", "--report-every=10", "--hidden=64", *extra]


def digits_sweep(name: str, checkpoints: Path, steps: int, **spec: Any) -> dict[str, Any]:
    """A sweep over the learning rate of the digits task, maximising held-out accuracy,
    ASHA stopping trials from step 10; `spec` replaces top-level spec fields."""
    fields: dict[str, Any] = {
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "parameters": [{"name": "lr", "type": "float", "min": 0.0003, "max": 0.05, "log": True}],
        "earlyStopping": {"name": "asha", "minSteps": 10, "reductionFactor": 3},
        **spec,
    }
    args = digits_args(steps, "--lr=${params.lr}")
    return trainer_sweep(name, checkpoints, trainer_args=args, **fields)


def served_from_sweep(namespace: str, name: str, sweep: str) -> ModelDeploymentFactory:
    """A ModelDeployment `name` serving the model of the sweep's best trial, run locally."""
    model = {"fromSweep": {"name": sweep}, "format": "python", **DIGITS_TENSORS}
    factory = a_modeldeployment().named(name).in_namespace(namespace).run_locally()
    return factory.with_fields(model=model).with_runtime(maxBatchSize=64)


@dataclass(frozen=True)
class Answer:
    """What the digits client printed: the accuracy line, parsed, and all of it."""

    accuracy: float
    right: int
    total: int
    output: str


def ask_digits(address: str, model: str) -> Answer:
    """Run the digits client as a user does against the Triton server at `address`."""
    result = subprocess.run(
        [sys.executable, str(CLIENT), f"http://{address}:8000", "--model", model],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = re.search(r"accuracy ([\d.]+) on (\d+) held-out digits \((\d+) right\)", result.stdout)
    assert found, result.stdout + result.stderr
    accuracy, total, right = float(found[1]), int(found[2]), int(found[3])
    return Answer(accuracy=accuracy, right=right, total=total, output=result.stdout)
