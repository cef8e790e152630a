"""A de-duplicating work queue of object keys, drained by a few reconcile workers.

Watch events only enqueue keys; workers reconcile each key from the whole observed state
(level-based), so a burst of pod events for one job costs one reconcile. A key added
`urgent` (a resource created or its spec changed) is taken before the others: in a burst,
new jobs get their children before the jobs already running get their status refreshed.
A key is never reconciled by two workers at once; one enqueued while it is being
reconciled runs again after. A reconcile may ask to be run again later (`requeue after`),
and a failing one is retried with exponential backoff, so no object is ever hot-looped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

#: (kind, namespace, name) of an object.
Key = tuple[str, str, str]
#: Reconciles one key; returns seconds until it should run again, or None.
Reconciler = Callable[[Key], Awaitable[float | None]]

MAX_BACKOFF_SECONDS = 300.0
LOGGER = logging.getLogger("plinth.runtime")


@dataclass
class WorkQueue:
    """Keys waiting to be reconciled, and the workers that reconcile them."""

    reconcile: Reconciler
    workers: int = 8
    #: A key is reconciled at most once per this many seconds: a burst of events for one
    #: object (its pods starting one by one) costs one reconcile, not one per event.
    min_interval: float = 0.0
    _queue: asyncio.PriorityQueue[tuple[int, int, Key]] = field(
        default_factory=asyncio.PriorityQueue
    )
    _added: itertools.count[int] = field(default_factory=itertools.count)
    _queued: set[Key] = field(default_factory=set)
    _urgent: set[Key] = field(default_factory=set)
    _running: set[Key] = field(default_factory=set)
    _dirty: set[Key] = field(default_factory=set)
    _failures: dict[Key, int] = field(default_factory=dict)
    _timers: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _last_run: dict[Key, float] = field(default_factory=dict)
    _waiters: dict[Key, list[asyncio.Future[None]]] = field(default_factory=dict)
    #: Keys being reconciled for someone waiting on `reconciled`: never superseded.
    _awaited: set[Key] = field(default_factory=set)

    def add(self, key: Key, *, urgent: bool = False) -> None:
        """Reconcile `key` soon (once, however often it is added meanwhile); a key added
        while it is being reconciled runs again after (`superseded` tells its reconcile).
        `urgent` keys are taken before the others."""
        if key in self._running:
            self._dirty.add(key)
            return
        wait = self._last_run.get(key, -self.min_interval) + self.min_interval - self._now()
        if wait > 0:
            self.add_after(key, wait)
            return
        self._enqueue(key, urgent=urgent)

    async def reconciled(self, key: Key, timeout: float) -> bool:
        """Reconcile `key` soon and wait until a reconcile that started after this call has
        finished (successfully or not); False when `timeout` seconds passed first."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        self.add(key)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return False
        return True

    def superseded(self, key: Key) -> bool:
        """Whether `key`, being reconciled, was added again meanwhile (its reconcile's
        result is already out of date), and no one waits for that reconcile to finish.
        Safe to call from the reconcile's thread."""
        return key in self._dirty and key not in self._awaited

    def urgent_waiting(self) -> bool:
        """Whether urgent keys wait to be taken (new resources waiting for their first
        writes). Safe to call from a reconcile's thread."""
        return bool(self._urgent)

    def add_after(self, key: Key, delay: float) -> None:
        """Reconcile `key` after `delay` seconds (an earlier request wins)."""
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None and existing.when() <= loop.time() + delay:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def forget(self, key: Key) -> None:
        """Stop scheduled retries of a deleted object."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)
        self._last_run.pop(key, None)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self._enqueue(key)

    def _enqueue(self, key: Key, *, urgent: bool = False) -> None:
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            if urgent:
                self._urgent.add(key)
            self._queue.put_nowait((0 if urgent else 1, next(self._added), key))

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()

    async def _work(self) -> None:
        while True:
            _priority, _order, key = await self._queue.get()
            self._queued.discard(key)
            self._urgent.discard(key)
            self._running.add(key)
            self._last_run[key] = self._now()
            waiting = self._waiters.pop(key, [])
            if waiting:
                self._awaited.add(key)
            try:
                delay = await self._run_one(key)
            finally:
                self._running.discard(key)
                self._awaited.discard(key)
                for waiter in waiting:
                    if not waiter.done():
                        waiter.set_result(None)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)  # waits out min_interval
            elif delay is not None:
                self.add_after(key, delay)

    async def _run_one(self, key: Key) -> float | None:
        try:
            delay = await self.reconcile(key)
        except Exception:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            backoff = min(2.0**failures, MAX_BACKOFF_SECONDS)
            LOGGER.exception("reconcile of %s %s/%s failed; retrying in %.0fs", *key, backoff)
            return backoff
        self._failures.pop(key, None)
        return delay
