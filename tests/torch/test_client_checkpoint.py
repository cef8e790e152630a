"""`plinth_client.checkpoint`: atomic saves, the `latest` pointer and resume, on a real disk."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from plinth_client import CheckpointStore, PlinthEnvironment
from tests.torch.trainer_harness import process_environment

torch = pytest.importorskip("torch", reason="checkpoints are torch.save files (extra 'torch')")


def state(value: float) -> dict[str, object]:
    return {"model": {"weight": torch.full((2, 2), value)}, "optimizer": {"lr": 0.1}}


def test_nothing_to_resume_from_an_empty_or_missing_folder(tmp_path: Path) -> None:
    assert CheckpointStore(tmp_path / "missing").load_latest() is None
    assert CheckpointStore(tmp_path).load_latest() is None
    assert CheckpointStore(tmp_path).latest_step() is None


def test_save_writes_the_step_file_and_moves_the_pointer(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "ckpt")

    path = store.save(10, state(1.0))
    store.save(20, state(2.0))

    assert path == tmp_path / "ckpt" / "step-10.pt"
    assert sorted(entry.name for entry in store.directory.iterdir()) == [
        "latest",
        "step-10.pt",
        "step-20.pt",
    ]
    assert (store.directory / "latest").read_text() == "step-20.pt\n"
    latest = store.load_latest()
    assert latest is not None
    assert (latest.step, latest.path) == (20, store.directory / "step-20.pt")
    assert latest.state["step"] == 20
    assert torch.equal(latest.state["model"]["weight"], torch.full((2, 2), 2.0))
    assert latest.state["optimizer"] == {"lr": 0.1}


def test_files_are_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    previous = os.umask(0o022)
    try:
        path = store.save(1, state(1.0))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_pointer_decides_so_editing_it_rolls_back(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(10, state(1.0))
    store.save(20, state(2.0))

    (tmp_path / "latest").write_text("step-10.pt\n")

    assert store.latest_step() == 10


def test_a_missing_or_dangling_pointer_falls_back_to_the_highest_step(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    for step in (5, 30, 20):
        store.save(step, state(float(step)))

    (tmp_path / "latest").write_text("step-40.pt\n")
    assert store.latest_step() == 30
    (tmp_path / "latest").unlink()
    assert store.latest_step() == 30


def test_partial_writes_are_ignored_then_discarded(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(10, state(1.0))
    leftover = tmp_path / ".step-20.pt.k3j2l1.tmp"
    leftover.write_bytes(b"PK\x03\x04 torn write")

    assert store.steps() == [10]
    assert store.latest_step() == 10
    assert store.discard_partial_writes() == 1
    assert not leftover.exists()


def test_keep_last_prunes_the_oldest_checkpoints(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep_last=2)
    for step in (10, 20, 30, 40):
        store.save(step, state(float(step)))

    assert store.steps() == [30, 40]
    assert store.latest_step() == 40


def test_a_state_that_names_another_step_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step 7"):
        CheckpointStore(tmp_path).save(8, {"step": 7, "model": {}})


def test_from_environment_uses_a_local_checkpoint_uri_only(tmp_path: Path) -> None:
    local = PlinthEnvironment(checkpoint_uri=tmp_path.as_uri())
    remote = PlinthEnvironment(checkpoint_uri="s3://bucket/run")
    store = CheckpointStore.from_environment(local)
    assert store is not None
    assert store.directory == tmp_path
    assert CheckpointStore.from_environment(remote) is None


WRITER = textwrap.dedent(
    """
    import sys, torch
    from plinth_client import CheckpointStore, PlinthEnvironment
    store = CheckpointStore(sys.argv[1])
    step = 0
    while True:
        step += 1
        store.save(step, {"model": {"w": torch.full((1024, 1024), float(step))}})
    """
)


@pytest.mark.timeout(60)
def test_a_writer_killed_mid_save_leaves_every_checkpoint_loadable(tmp_path: Path) -> None:
    """SIGKILL a process that saves 4 MiB checkpoints back to back, then resume."""
    store = CheckpointStore(tmp_path)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], env=process_environment({})
    )
    try:
        while len(store.steps()) < 5 and writer.poll() is None:
            time.sleep(0.01)
    finally:
        writer.kill()
        writer.wait()

    assert len(store.steps()) >= 5
    latest = store.load_latest()
    assert latest is not None
    assert latest.step in (store.steps()[-1], store.steps()[-2])
    for step in store.steps():
        weights = store.load(step).state["model"]["w"]
        assert torch.equal(weights, torch.full((1024, 1024), float(step)))
    store.discard_partial_writes()
    assert all(not entry.name.endswith(".tmp") for entry in tmp_path.iterdir())
