"""Run the reference trainer as a gang of local processes wired like Plinth's pods.

Each "pod" is one process started with the environment a TrainingJob renders for one node
(`pod_environment`), with MASTER_ADDR and PET_MASTER_ADDR pointing at 127.0.0.1. The
processes of a gang run at once and are waited for together, with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAINER = REPO / "images" / "trainer" / "train.py"
CONTRACT_PREFIXES = ("PLINTH_", "PET_", "TORCHELASTIC_")
CONTRACT_NAMES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")

DIRECT = (sys.executable, str(TRAINER))
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", str(TRAINER))
PLINTH_LAUNCH = (sys.executable, "-m", "plinth_client.launch", str(TRAINER))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pod_environment(
    *, job: str, checkpoint_uri: str, nodes: int, node_rank: int, port: int
) -> dict[str, str]:
    """The contract for one node of a `nodes` x 1-process job, as the builder renders it."""
    return {
        "PLINTH_JOB_NAME": job,
        "PLINTH_NAMESPACE": "default",
        "PLINTH_CHECKPOINT_URI": checkpoint_uri,
        "PLINTH_RESTART_COUNT": "0",
        "PET_NNODES": str(nodes),
        "PET_NPROC_PER_NODE": "1",
        "PET_NODE_RANK": str(node_rank),
        "PET_MASTER_ADDR": "127.0.0.1",
        "PET_MASTER_PORT": str(port),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(nodes),
        "RANK": str(node_rank),
    }


def gang_environments(job: str, checkpoint_uri: str, nodes: int = 2) -> list[dict[str, str]]:
    port = free_port()
    return [
        pod_environment(
            job=job, checkpoint_uri=checkpoint_uri, nodes=nodes, node_rank=rank, port=port
        )
        for rank in range(nodes)
    ]


@dataclass(frozen=True)
class PodResult:
    """How one process ended and what it printed."""

    returncode: int
    stdout: str
    stderr: str

    def number(self, label: str) -> float:
        """The number after `label` in the output, e.g. number("final loss")."""
        match = re.search(rf"^{re.escape(label)} (\S+)$", self.stdout, re.MULTILINE)
        assert match, f"no '{label}' line in:\n{self.stdout}\n{self.stderr[-3000:]}"
        return float(match.group(1))


class Gang:
    """Processes started together, one per pod environment, logging to files."""

    def __init__(
        self,
        command: Sequence[str],
        environments: Sequence[dict[str, str]],
        args: Sequence[str],
        logs: Path,
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self._logs = [
            (logs / f"pod-{i}.out", logs / f"pod-{i}.err") for i in range(len(environments))
        ]
        self.processes = [
            self._start([*command, *args], environment, out, err)
            for environment, (out, err) in zip(environments, self._logs, strict=True)
        ]

    @staticmethod
    def _start(
        argv: list[str], environment: dict[str, str], out: Path, err: Path
    ) -> subprocess.Popen[bytes]:
        with out.open("wb") as stdout, err.open("wb") as stderr:
            return subprocess.Popen(
                argv, env=process_environment(environment), stdout=stdout, stderr=stderr
            )

    def wait(self, timeout_s: float) -> list[PodResult]:
        deadline = time.monotonic() + timeout_s
        try:
            for process in self.processes:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"gang still running after {timeout_s} s:\n{self._tails()}"
            ) from None
        return [
            PodResult(process.returncode, out.read_text(), err.read_text())
            for process, (out, err) in zip(self.processes, self._logs, strict=True)
        ]

    def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.kill()
                raise AssertionError(f"condition not reached while the gang ran:\n{self._tails()}")
            time.sleep(0.005)

    def kill(self) -> None:
        """SIGKILL every process of the gang, as a node loss or preemption would."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        for process in self.processes:
            process.wait()

    def _tails(self) -> str:
        return "\n".join(
            f"{out.read_text()[-2000:]}{err.read_text()[-3000:]}" for out, err in self._logs
        )


def run_gang(
    command: Sequence[str],
    environments: Sequence[dict[str, str]],
    args: Sequence[str],
    logs: Path,
    timeout_s: float = 60,
) -> list[PodResult]:
    return Gang(command, environments, args, logs).wait(timeout_s)


def process_environment(contract: dict[str, str]) -> dict[str, str]:
    """This process's environment without any contract variable of its own, plus `contract`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CONTRACT_PREFIXES) and name not in CONTRACT_NAMES
    }
    python_path = os.pathsep.join(
        filter(None, [str(REPO / "operator"), inherited.get("PYTHONPATH")])
    )
    return {**inherited, "OMP_NUM_THREADS": "1", "PYTHONPATH": python_path, **contract}
