"""One local pod's process: started in its own session, stopped by process group."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from plinth_devcluster.waiting import WaitTimeoutError, wait_for

log = logging.getLogger(__name__)

SIGNAL_EXIT_BASE = 128


def exit_status(returncode: int) -> int:
    """A Popen return code as a container exit code (killed by signal N: 128 + N)."""
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


class LocalProcess:
    """A pod's process in its own session; stopped by process group, gracefully or not."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            self.popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self._kill_timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._exited = threading.Event()

    @property
    def exited(self) -> bool:
        """Whether the process and everything it left in its group are gone."""
        return self._exited.is_set()

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM to the group now, SIGKILL after `grace_seconds`; once, and not once exited."""
        with self._lock:
            if self._kill_timer is not None or self.exited:
                return
            self._kill_timer = threading.Timer(grace_seconds, self._signal, (signal.SIGKILL,))
            self._kill_timer.daemon = True
            self._kill_timer.start()
            self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the group now, as when its machine is lost."""
        with self._lock:
            if not self.exited:
                self._signal(signal.SIGKILL)

    def wait(self) -> int:
        """Wait for the process, kill whatever it left in its group; return its exit code."""
        returncode = self.popen.wait()
        with self._lock:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            self._signal(signal.SIGKILL)
        try:
            wait_for(lambda: not self._group_exists(), what=f"group {self.pid} gone", timeout=5)
        except WaitTimeoutError:
            log.warning("pod runner: processes of group %s outlived SIGKILL", self.pid)
        self._exited.set()
        return exit_status(returncode)

    def _signal(self, signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _group_exists(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
