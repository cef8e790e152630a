"""The reference trainer, run for real as a gang of local processes on the gloo backend.

Every process gets exactly the environment a TrainingJob renders for its node; the gang is
launched the three ways a pod can start it: directly (MASTER_ADDR/WORLD_SIZE/RANK), under
`torchrun` (PET_*), and under `plinth_client.launch` (the trainer image's entrypoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from trainer_harness import (
    DIRECT,
    PLINTH_LAUNCH,
    TORCHRUN,
    Gang,
    PodResult,
    gang_environments,
    run_gang,
)

torch = pytest.importorskip("torch", reason="the trainer tests need torch (extra 'torch')")

from plinth_client import CheckpointStore  # noqa: E402

pytestmark = pytest.mark.timeout(120)

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


def test_failed_gang_restarted_under_torchrun_resumes_where_it_left_off(
    tmp_path: Path, uninterrupted: tuple[list[PodResult], Path]
) -> None:
    folder = tmp_path / "ckpt"
    environments = gang_environments("resumed", folder.as_uri())
    failing = [*ARGS, "--fail-at-step", "25", "--exit-code", str(FAIL_EXIT_CODE)]

    first = run_gang(PLINTH_LAUNCH, environments, failing, tmp_path / "first")

    assert [result.returncode for result in first] == [FAIL_EXIT_CODE] * 2, first[0].stderr
    assert "failing at step 25" in first[0].stdout
    store = CheckpointStore(folder)
    assert store.steps() == [10, 20]
    assert store.latest_step() == 20

    second = run_gang(TORCHRUN, environments, failing, tmp_path / "second")

    assert_succeeded(second)
    assert "resumed from step 20" in second[0].stdout
    assert store.steps() == [10, 20, 30]
    reference_results, reference_folder = uninterrupted
    assert second[0].number("final loss") == reference_results[0].number("final loss")
    resumed = model_parameters(store, STEPS)
    reference = model_parameters(CheckpointStore(reference_folder), STEPS)
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-6, atol=1e-7)


def test_killed_gang_restarted_with_the_same_environment_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ckpt"
    store = CheckpointStore(folder)
    environments = gang_environments("killed", str(folder))
    args = ["--steps", "120", "--checkpoint-every", "10", "--report-every", "50"]

    gang = Gang(DIRECT, environments, args, tmp_path / "first")
    gang.wait_until(lambda: (store.latest_step() or 0) >= 10, timeout_s=60)
    gang.kill()

    saved = store.latest_step()
    assert saved is not None
    assert saved < 120
    second = run_gang(DIRECT, environments, args, tmp_path / "second")

    assert_succeeded(second)
    assert f"resumed from step {saved}" in second[0].stdout
    assert store.latest_step() == 120
