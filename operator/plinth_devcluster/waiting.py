"""Bounded polling: wait until a condition holds, failing fast when a watched program dies."""

from __future__ import annotations

import time
from collections.abc import Callable


class WaitTimeoutError(TimeoutError):
    """A condition did not hold in time; the message says what was awaited."""


def no_watchdog() -> None:
    """A watchdog that never objects."""


def wait_for(
    condition: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    watchdog: Callable[[], None] = no_watchdog,
) -> float:
    """Poll `condition` until true; return the seconds it took.

    `watchdog` runs before each poll and raises to abort the wait (e.g. a program exited).
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        watchdog()
        if condition():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
