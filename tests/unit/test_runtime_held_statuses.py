"""How long the runtime holds back a resource's status update (`HeldStatuses`)."""

from __future__ import annotations

import pytest

from plinth.runtime.reconciler import MAX_STATUS_HOLD_SECONDS, STATUS_HOLD_SECONDS, HeldStatuses

KEY = ("TrainingJob", "ml", "llm")


def test_each_settling_status_written_doubles_the_next_hold_until_one_that_is_not() -> None:
    held = HeldStatuses()
    assert held.hold(KEY) == pytest.approx(STATUS_HOLD_SECONDS, abs=0.5)

    held.written(KEY, settling=True)
    assert held.hold(KEY) == pytest.approx(2 * STATUS_HOLD_SECONDS, abs=0.5)
    held.written(KEY, settling=True)
    held.written(KEY, settling=True)
    held.written(KEY, settling=True)
    assert held.hold(KEY) == pytest.approx(MAX_STATUS_HOLD_SECONDS, abs=0.5)

    held.settled(KEY)  # nothing new to write keeps the count
    assert held.hold(KEY) == pytest.approx(MAX_STATUS_HOLD_SECONDS, abs=0.5)

    held.written(KEY, settling=False)
    assert held.hold(KEY) == pytest.approx(STATUS_HOLD_SECONDS, abs=0.5)


def test_a_hold_counts_from_when_it_began() -> None:
    held = HeldStatuses()
    held.hold(KEY)
    assert held.hold(KEY) <= STATUS_HOLD_SECONDS
    held.release(KEY)
    held.written(KEY, settling=True)
    held.release(KEY)  # a deleted resource starts afresh if it comes back
    assert held.hold(KEY) == pytest.approx(STATUS_HOLD_SECONDS, abs=0.5)
