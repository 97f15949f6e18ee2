"""The operator's run queue: one pass per key at a time, news coalesces, timers in one heap."""

from __future__ import annotations

import threading

from millrace.cluster.workqueue import KeyedQueue, WorkerPool


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_news_about_a_waiting_key_coalesces_into_one_pass() -> None:
    queue: KeyedQueue[str] = KeyedQueue()
    for _ in range(5):
        queue.notify("a")
    queue.notify("b")
    assert queue.get() == "a"
    assert queue.get() == "b"
    assert queue.depth() == 2  # both being worked on, nothing else waiting


def test_news_during_a_pass_queues_exactly_one_more_after_it() -> None:
    queue: KeyedQueue[str] = KeyedQueue()
    queue.notify("a")
    assert queue.get() == "a"
    queue.notify("a")
    queue.notify("a")
    queue.notify("b")
    # "a" is not handed out while its pass runs, even though it has news.
    assert queue.get() == "b"
    queue.done("a")
    assert queue.get() == "a"
    queue.done("a")
    queue.done("b")
    assert queue.depth() == 0


def test_a_wake_up_fires_when_due_and_only_the_latest_counts() -> None:
    clock = FakeClock()
    queue: KeyedQueue[str] = KeyedQueue(clock)
    queue.notify_at("a", 110.0)
    queue.notify_at("a", 120.0)  # the pass asked again: 110 no longer counts
    queue.notify_at("b", 105.0)
    clock.now = 111.0
    assert queue.get() == "b"
    assert queue.live() == 2
    clock.now = 120.0
    assert queue.get() == "a"


def test_news_replaces_a_pending_wake_up_and_forget_drops_it() -> None:
    clock = FakeClock()
    queue: KeyedQueue[str] = KeyedQueue(clock)
    queue.notify_at("a", 200.0)
    queue.notify("a")
    assert queue.get() == "a"
    queue.done("a")
    clock.now = 300.0
    queue.notify_at("b", 250.0)
    queue.forget("b")
    queue.notify("c")
    assert queue.get() == "c"  # neither a's old timer nor b's dropped one fired
    assert queue.live() == 1


def test_the_pool_never_runs_one_key_on_two_workers_and_retries_failures() -> None:
    queue: KeyedQueue[str] = KeyedQueue()
    lock = threading.Lock()
    running: set[str] = set()
    overlaps: list[str] = []
    passes: dict[str, int] = {}
    all_done = threading.Event()
    made: list[int] = []

    def work(state: int, key: str) -> float | None:
        with lock:
            if key in running:
                overlaps.append(key)
            running.add(key)
            passes[key] = passes.get(key, 0) + 1
            count = passes[key]
        for _ in range(3):
            queue.notify(key)  # news while it runs
        with lock:
            running.discard(key)
        if key == "flaky" and count == 1:
            raise RuntimeError("the API answered 503")
        if all(passes.get(k, 0) >= 3 for k in ("x", "y", "flaky")):
            all_done.set()
        return None if count >= 3 else queue.clock()

    pool = WorkerPool(queue, 3, lambda: made.append(1) or len(made), lambda _state: None, work, backoff_s=0.01)
    pool.start()
    for key in ("x", "y", "flaky"):
        queue.notify(key)
    assert all_done.wait(20)
    pool.stop()
    assert overlaps == []
    assert len(made) == 3  # one worker state (sandbox) per thread
