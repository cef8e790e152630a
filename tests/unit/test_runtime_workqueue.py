"""The reconcile work queue: one reconcile per burst, never two at once, retries with backoff."""

from __future__ import annotations

import asyncio

from plinth.runtime.workqueue import Key, WorkQueue

KEY: Key = ("TrainingJob", "ns", "job")


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def test_a_burst_of_adds_costs_one_reconcile() -> None:
    calls: list[Key] = []

    async def scenario() -> None:
        async def reconcile(key: Key) -> float | None:
            calls.append(key)
            return None

        queue = WorkQueue(reconcile=reconcile, workers=4)
        for _ in range(50):
            queue.add(KEY)
        queue.start()
        await asyncio.sleep(0.05)
        await queue.stop()

    run(scenario())
    assert calls == [KEY]


def test_an_add_during_a_reconcile_runs_again_after_it_never_alongside() -> None:
    running, overlaps, calls = set[Key](), [], []

    async def scenario() -> None:
        async def reconcile(key: Key) -> float | None:
            overlaps.append(key in running)
            running.add(key)
            calls.append(key)
            if len(calls) == 1:
                queue.add(KEY)
            await asyncio.sleep(0.01)
            running.discard(key)
            return None

        queue = WorkQueue(reconcile=reconcile, workers=4)
        queue.add(KEY)
        queue.start()
        await asyncio.sleep(0.1)
        await queue.stop()

    run(scenario())
    assert calls == [KEY, KEY]
    assert not any(overlaps)


def test_min_interval_coalesces_events_into_a_later_reconcile() -> None:
    times: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def reconcile(key: Key) -> float | None:
            times.append(loop.time())
            return None

        queue = WorkQueue(reconcile=reconcile, workers=2, min_interval=0.2)
        queue.start()
        queue.add(KEY)
        await asyncio.sleep(0.02)
        for _ in range(10):
            queue.add(KEY)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.4)
        await queue.stop()

    run(scenario())
    assert len(times) == 2
    assert times[1] - times[0] >= 0.19


def test_a_failing_reconcile_is_retried_with_backoff_not_in_a_loop() -> None:
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def reconcile(key: Key) -> float | None:
            calls.append(loop.time())
            raise RuntimeError("API server unavailable")

        queue = WorkQueue(reconcile=reconcile, workers=2)
        queue.add(KEY)
        queue.start()
        await asyncio.sleep(2.5)
        await queue.stop()

    run(scenario())
    assert len(calls) == 2  # the first try, one retry 2 s later; the next would wait 4 s
    assert calls[1] - calls[0] >= 1.9


def test_a_requested_recheck_runs_again_after_its_delay_until_forgotten() -> None:
    times: list[float] = []
    seen_before_forget = 0

    async def scenario() -> None:
        nonlocal seen_before_forget
        loop = asyncio.get_running_loop()

        async def reconcile(key: Key) -> float | None:
            times.append(loop.time())
            return 0.1

        queue = WorkQueue(reconcile=reconcile, workers=1)
        queue.add(KEY)
        queue.start()
        await asyncio.sleep(0.25)
        queue.forget(KEY)  # the object was deleted
        seen_before_forget = len(times)
        await asyncio.sleep(0.3)
        await queue.stop()

    run(scenario())
    assert seen_before_forget >= 2
    assert times[1] - times[0] >= 0.09
    assert len(times) == seen_before_forget


def test_reconciled_waits_for_a_run_that_started_after_the_call() -> None:
    runs: list[str] = []

    async def scenario() -> bool:
        gate = asyncio.Event()

        async def reconcile(key: Key) -> float | None:
            runs.append("start")
            await gate.wait()
            runs.append("end")
            return None

        queue = WorkQueue(reconcile=reconcile, workers=2)
        queue.start()
        queue.add(KEY)
        await asyncio.sleep(0.01)  # the first run is under way, blocked on the gate
        waiting = asyncio.create_task(queue.reconciled(KEY, timeout=5))
        await asyncio.sleep(0.01)
        gate_opened_before = waiting.done()
        gate.set()
        done = await waiting
        await queue.stop()
        return done and not gate_opened_before

    assert asyncio.run(scenario())
    assert runs[:4] == ["start", "end", "start", "end"]  # it waited for the second run
