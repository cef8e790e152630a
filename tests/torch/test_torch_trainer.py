"""The reference trainer, run for real as a gang of local processes on the gloo backend.

Every process gets exactly the environment a TrainingJob renders for its node (two nodes,
one process each); the gang is launched the three ways a pod can start it: directly
(MASTER_ADDR/WORLD_SIZE/RANK), under `torchrun` (PET_*), and under `plinth_client.launch`
(the trainer image's entrypoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plinth_client import CheckpointStore
from tests.torch.trainer_harness import (
    DIRECT,
    PLINTH_LAUNCH,
    TORCHRUN,
    Gang,
    PodResult,
    gang_environments,
    run_gang,
)

torch = pytest.importorskip("torch", reason="the trainer tests need torch (extra 'torch')")

pytestmark = pytest.mark.timeout(180)

STEPS = 30
ARGS = ["--steps", str(STEPS), "--checkpoint-every", "10", "--report-every", "5"]
FAIL_EXIT_CODE = 3


def assert_succeeded(results: list[PodResult]) -> None:
    for rank, result in enumerate(results):
        assert result.returncode == 0, f"rank {rank} failed:\n{result.stderr[-3000:]}"


def model_parameters(store: CheckpointStore, step: int) -> dict[str, Any]:
    parameters: dict[str, Any] = store.load(step).state["model"]
    return parameters


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[PodResult], Path]:
    """A 2-node job launched directly (no torchrun), trained to the end without a failure."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    environments = gang_environments("uninterrupted", (folder / "ckpt").as_uri())
    return run_gang(DIRECT, environments, ARGS, folder / "logs"), folder / "ckpt"


def test_direct_launch_trains_and_writes_checkpoints(
    uninterrupted: tuple[list[PodResult], Path],
) -> None:
    results, folder = uninterrupted
    assert_succeeded(results)
    primary = results[0]
    assert "job uninterrupted: 2 ranks, restart 0" in primary.stdout
    assert "starting from step 0" in primary.stdout
    assert primary.number("final loss") < primary.number("initial loss") / 5
    assert primary.number(f"step {STEPS} loss") < primary.number("step 5 loss")
    assert "final loss" not in results[1].stdout  # only rank 0 speaks
    store = CheckpointStore(folder)
    assert store.steps() == [10, 20, 30]
    assert (folder / "latest").read_text() == "step-30.pt\n"
    assert set(store.load(30).state) == {"step", "model", "optimizer"}


@pytest.mark.timeout(240)
def test_a_gang_killed_then_crashed_resumes_each_time_and_ends_as_if_never_interrupted(
    tmp_path: Path, uninterrupted: tuple[list[PodResult], Path]
) -> None:
    """Three runs with the same environment and arguments, as Plinth's gang restarts do.

    1. launched directly, it hangs after step 12 and is SIGKILLed (a preemption);
    2. under plinth_client.launch it resumes, then crashes after step 25 with exit code 3,
       which reaches both pods (torchrun alone would have turned it into 1);
    3. under torchrun it resumes again and finishes: same loss, same weights as run 0.
    """
    folder = tmp_path / "ckpt"
    store = CheckpointStore(folder)
    environments = gang_environments("resumed", folder.as_uri())
    faults = ["--hang-at-step", "12", "--fail-at-step", "25", "--exit-code", str(FAIL_EXIT_CODE)]
    args = [*ARGS, *faults]

    killed = Gang(DIRECT, environments, args, tmp_path / "killed")
    killed.wait_until((folder / ".hung-at-step-12").exists, timeout_s=90)
    killed.kill()

    assert store.steps() == [10]
    assert store.latest_step() == 10

    crashed = run_gang(PLINTH_LAUNCH, environments, args, tmp_path / "crashed")

    assert "resumed from step 10" in crashed[0].stdout
    assert "failing at step 25" in crashed[0].stdout
    assert [result.returncode for result in crashed] == [FAIL_EXIT_CODE] * 2, crashed[0].stderr
    assert store.steps() == [10, 20]

    finished = run_gang(TORCHRUN, environments, args, tmp_path / "finished")

    assert_succeeded(finished)
    assert "resumed from step 20" in finished[0].stdout
    assert store.steps() == [10, 20, 30]
    reference_results, reference_folder = uninterrupted
    assert finished[0].number("final loss") == reference_results[0].number("final loss")
    resumed = model_parameters(store, STEPS)
    reference = model_parameters(CheckpointStore(reference_folder), STEPS)
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-6, atol=1e-7)
