"""`plinth spawn`: a program started beside a cluster is recorded with it, restarted when
spawned again under its name, listed by `plinth status` and stopped by `plinth down`, with
its whole process group (as the pod runner's children would be).

The cluster here is only its record (no control plane): `spawn`, `status` and `down` read
nothing else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plinth_devcluster.cluster import down
from plinth_devcluster.processes import ProcessRecord, is_alive
from plinth_devcluster.state import ClusterRecord, Layout, Ports, load_record, save_record

NAME = "companions"


def plinth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plinth", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def recorded_cluster(state: Path) -> Layout:
    layout = Layout.of(NAME, state)
    layout.root.mkdir(parents=True)
    save_record(layout, ClusterRecord(NAME, "https://127.0.0.1:1", Ports(1, 2, 3, 4, 5)))
    return layout


def recorded(layout: Layout) -> list[ProcessRecord]:
    record = load_record(layout)
    assert record is not None
    return list(record.processes)


def test_spawned_programs_are_recorded_restarted_and_stopped_by_down(tmp_path: Path) -> None:
    layout = recorded_cluster(tmp_path / "state")
    where = ("--name", NAME, "--state-dir", str(layout.root))
    # A shell whose child sleeps: down must stop the child too (the process group).
    command = ("bash", "-c", "echo started; sleep 300 & wait")
    assert plinth("spawn", *where, "helper", "--", *command).returncode == 0
    (first,) = recorded(layout)
    assert plinth("spawn", *where, "helper", "--", *command).returncode == 0
    (second,) = recorded(layout)
    assert not is_alive(first), "spawning again under the same name replaces the program"
    assert is_alive(second)
    assert "helper" in plinth("status", *where).stdout
    assert layout.log("helper").read_text().count("started") == 2

    assert down(NAME, state_dir=layout.root) == 1
    assert not is_alive(second)
    group = subprocess.run(["pgrep", "-g", str(second.pid)], capture_output=True, check=False)
    assert group.stdout == b"", "the program's children outlived down"


def test_spawn_refuses_without_a_cluster(tmp_path: Path) -> None:
    result = plinth("spawn", "--name", NAME, "--state-dir", str(tmp_path), "x", "--", "true")
    assert result.returncode == 1
    assert "was never started" in result.stderr
