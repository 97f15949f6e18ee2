"""A queue of runs to reconcile, served by a bounded pool of workers.

Any number of live runs costs no thread: a run is a key in the queue, and
the pool has a fixed number of workers. A key is never handed to two
workers at once; news about a key that is waiting coalesces into one pass,
and news during its pass queues exactly one more. Wake-ups a pass asks for
(retry delays, sleeps, approval timeouts, the periodic resync) wait in one
timer heap, not in sleeping threads.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

LOG = logging.getLogger("millrace.operator")

K = TypeVar("K", bound=Hashable)
W = TypeVar("W")


class KeyedQueue(Generic[K]):
    """Keys waiting for a pass, with at most one pass per key at a time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Condition()
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._sequence = 0
        self._closed = False

    def notify(self, key: K) -> None:
        """Something happened to `key`: give it a pass soon."""
        with self._lock:
            self._due.pop(key, None)
            self._enqueue(key)

    def notify_at(self, key: K, at: float) -> None:
        """Give `key` a pass at `at` (the queue's clock), unless it gets one sooner.

        Only the latest wake-up of a key counts: each pass asks again."""
        with self._lock:
            self._due[key] = at
            self._sequence += 1
            heapq.heappush(self._timers, (at, self._sequence, key))
            self._lock.notify_all()

    def forget(self, key: K) -> None:
        """The key is gone: drop its pending wake-up (a pass already queued still runs)."""
        with self._lock:
            self._due.pop(key, None)

    def get(self) -> K | None:
        """The next key to work on (now the caller's until `done`), or None when closed."""
        with self._lock:
            while not self._closed:
                self._fire_timers()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                wait = self._timers[0][0] - self.clock() if self._timers else None
                self._lock.wait(None if wait is None else max(0.0, wait))
            return None

    def done(self, key: K) -> None:
        """The pass over `key` ended; news that came meanwhile queues it again."""
        with self._lock:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._enqueue(key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def depth(self) -> int:
        """Keys waiting or being worked on (not those only waiting for a timer)."""
        with self._lock:
            return len(self._queued) + len(self._processing)

    def live(self) -> int:
        """Keys the queue follows: waiting, being worked on, or waiting for a timer."""
        with self._lock:
            return len(self._queued | self._processing | set(self._due))

    def _enqueue(self, key: K) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._lock.notify()

    def _fire_timers(self) -> None:
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            at, _, key = heapq.heappop(self._timers)
            if self._due.get(key) == at:
                del self._due[key]
                self._enqueue(key)


class WorkerPool(Generic[K, W]):
    """`size` threads, each with its own worker state (made in the thread, closed there).

    `work(state, key)` does one pass; it returns when to look at the key
    again (the queue's clock) or None for never. An exception is logged and
    the key retried with exponential backoff, so no key stalls the pool and
    none is forgotten.
    """

    def __init__(self, queue: KeyedQueue[K], size: int, make: Callable[[], W], close: Callable[[W], None],
                 work: Callable[[W, K], float | None], *, backoff_s: float = 1.0, max_backoff_s: float = 60.0) -> None:
        self.queue = queue
        self._make, self._close, self._work = make, close, work
        self._backoff_s, self._max_backoff_s = backoff_s, max_backoff_s
        self._failures: dict[K, int] = {}
        self._threads = [threading.Thread(target=self._serve, name=f"millrace-worker-{i}", daemon=True)
                         for i in range(size)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout)

    def _serve(self) -> None:
        state = self._make()
        try:
            while (key := self.queue.get()) is not None:
                try:
                    again = self._work(state, key)
                except Exception:
                    failures = self._failures[key] = self._failures.get(key, 0) + 1
                    delay = min(self._max_backoff_s, self._backoff_s * 2 ** (failures - 1))
                    LOG.exception("reconciling %s failed (%d in a row); retrying in %.0f s", key, failures, delay)
                    again = self.queue.clock() + delay
                else:
                    self._failures.pop(key, None)
                finally:
                    self.queue.done(key)
                if again is None:
                    self.queue.forget(key)
                else:
                    self.queue.notify_at(key, again)
        finally:
            self._close(state)
