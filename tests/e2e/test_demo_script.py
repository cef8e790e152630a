"""`make demo`'s script (scripts/demo.sh) run as a user runs it, so that it cannot silently
rot: on a cluster of its own (its own name, state folder and namespace, beside the test
session's cluster), then `plinth down`, which must leave no process behind: not the
cluster's, not the operator or the pod runner the demo started, not a trainer or Triton.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plinth_devcluster.state import Layout, load_record
from tests.plinth_testing import REPO_ROOT

pytestmark = pytest.mark.timeout(900)
CLUSTER = "demo-test"


def run_demo(state: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """The demo with the virtualenv first on PATH, as `make demo` runs it; its seconds."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PLINTH_DEMO_CLUSTER": CLUSTER,
        "PLINTH_DEMO_STATE_DIR": str(state),
        "PLINTH_DEMO_NAMESPACE": "plinth-demo",
    }
    began = time.monotonic()
    result = subprocess.run(
        ["bash", "scripts/demo.sh"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=780,
        check=False,
    )
    return result, time.monotonic() - began


def plinth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plinth", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of the live processes that name `text` (a folder of the demo's)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(w.decode(errors="replace") for w in words)
        if text in line and str(os.getpid()) != cmdline.parent.name:
            found.append(line)
    return found


def test_the_demo_trains_tunes_serves_and_plinth_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    where = ("--name", CLUSTER, "--state-dir", str(state))
    try:
        result, seconds = run_demo(state)
        out = result.stdout
        assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
        assert re.search(r"Succeeded\s+step 150 .*accuracy 0\.9", out), out
        assert "job mlp-multi: 2 ranks" in out
        counts = re.findall(r"Succeeded\s+(\d+) succeeded, (\d+) pruned, 0 running; best", out)
        assert counts and int(counts[-1][1]) >= 1, out
        (plot,) = re.findall(r"plot: (\S+\.png)", out)
        assert Path(plot).read_bytes().startswith(b"\x89PNG")
        accuracy = re.search(r"accuracy ([\d.]+) on 360 held-out digits", out)
        assert accuracy and float(accuracy[1]) > 0.85, out
        assert f"plinth down {' '.join(where)}" in out
        print(f"demo took {seconds:.0f}s")
    finally:
        down = plinth("down", *where)
    assert down.returncode == 0, down.stderr
    assert plinth("status", *where).returncode == 1
    record = load_record(Layout.of(CLUSTER, state))
    assert record is not None
    assert {"operator", "pod-runner", "kwok"} <= {p.name for p in record.processes}
    assert processes_mentioning(str(state)) == []
