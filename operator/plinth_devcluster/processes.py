"""Start the cluster's programs as detached daemons, recognise them later, and stop them.

Each program is started through a tiny launcher that starts it in a new session (its own
process group) and exits at once, so the program's parent is init, which reaps it: whichever
process later runs `down` (the one that ran `up`, or another), no zombie is left behind.
A program is recorded by pid and kernel start time, so a recycled pid is never mistaken for
it. Linux only (it reads /proc).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAUNCHER = (
    "import subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=2, stderr=2,"
    " start_new_session=True)\n"
    "print(child.pid)\n"
)


REAP_SECONDS = 5.0  # init reaps orphans (process_api here: about once a second)


class StillRunningError(RuntimeError):
    """Some programs outlived SIGKILL (should not happen); the message names them."""


@dataclass(frozen=True)
class ProcessRecord:
    """One started program: its name, pid, kernel start time (clock ticks) and log file."""

    name: str
    pid: int
    start_ticks: int
    log: Path

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "log": str(self.log),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            log=Path(data["log"]),
        )


def spawn(name: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> ProcessRecord:
    """Start `argv` detached, in its own process group, stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as log_file:
        launched = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *argv],
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=dict(env),
            check=True,
        )
    pid = int(launched.stdout)
    return ProcessRecord(name=name, pid=pid, start_ticks=start_ticks(pid) or -1, log=log)


def proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (field 3), or None if no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    """The kernel start time of `pid` in clock ticks since boot (field 22 of its stat)."""
    fields = proc_stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(record: ProcessRecord) -> bool:
    """Whether the recorded program still runs: same pid, same start time, not a zombie."""
    fields = proc_stat_fields(record.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == record.start_ticks


def signal_group(record: ProcessRecord, signum: signal.Signals) -> None:
    """Send `signum` to the program's process group, if it is still the recorded program."""
    if is_alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signum)


def wait_gone(records: Iterable[ProcessRecord], timeout: float) -> list[ProcessRecord]:
    """Wait until none of `records` is alive, at most `timeout` seconds; return survivors."""
    deadline = time.monotonic() + timeout
    survivors = [r for r in records if is_alive(r)]
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = [r for r in survivors if is_alive(r)]
    return survivors


def stop_all(records: Sequence[ProcessRecord], grace: float = 15.0) -> None:
    """SIGTERM every program's group, SIGKILL those still there after `grace`, verify all gone.

    Call `wait_reaped` afterwards to also see them leave the process table.
    """
    for record in records:
        signal_group(record, signal.SIGTERM)
    survivors = wait_gone(records, grace)
    for record in survivors:
        signal_group(record, signal.SIGKILL)
    if still := wait_gone(survivors, 5.0):
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in still)
        raise StillRunningError(f"these processes survived SIGKILL: {names}")


def wait_reaped(records: Iterable[ProcessRecord], timeout: float = REAP_SECONDS) -> None:
    """Wait (at most `timeout`) until exited programs have left the process table, so not
    even a <defunct> entry is left to see (init reaps them, not us)."""
    deadline = time.monotonic() + timeout
    waiting = list(records)
    while waiting and time.monotonic() < deadline:
        waiting = [r for r in waiting if start_ticks(r.pid) == r.start_ticks]
        if waiting:
            time.sleep(0.02)


def memory_rss_bytes(pid: int) -> int:
    """Resident memory of a running process, in bytes (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used so far (0 if it is gone)."""
    fields = proc_stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
