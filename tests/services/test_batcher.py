"""The dynamic batcher on its own (no server): batch limits, the wait, order, isolation and the queue bound."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from shared.service.batcher import Batcher, Overloaded


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


class Recorder:
    """A batch function that answers each item with (item, batch number) and fails the items 'bad'."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, items: list) -> list:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        time.sleep(self.delay)
        return [ValueError(f"bad {i}") if i == "bad" else (i, len(self.batches)) for i in items]


async def with_batcher(rec: Recorder, body, **kw):
    b = Batcher(rec, **{"max_batch": 4, "wait_s": 0.05, "max_queue": 100, **kw})
    b.start()
    try:
        return await body(b)
    finally:
        await b.stop()


def test_concurrent_items_share_batches_of_at_most_max_batch_and_get_their_own_results():
    rec = Recorder()

    async def body(b):
        return await asyncio.gather(*(b.submit(i, 1) for i in range(10)))

    results = run(with_batcher(rec, body))
    assert [r[0] for r in results] == list(range(10))
    assert [len(batch) for batch in rec.batches] == [4, 4, 2]
    assert [x for batch in rec.batches for x in batch] == list(range(10))  # first come, first served
    assert rec.threads and all(t.startswith("batch") for t in rec.threads)


def test_sizes_count_images_and_a_big_item_runs_alone():
    rec = Recorder()

    async def body(b):
        return await asyncio.gather(b.submit("a", 3), b.submit("b", 2), b.submit("big", 9), b.submit("c", 1))

    run(with_batcher(rec, body))
    assert rec.batches == [["a"], ["b"], ["big"], ["c"]]


def test_a_lone_item_waits_at_most_the_batch_wait():
    rec = Recorder()

    async def body(b):
        t = time.perf_counter()
        await b.submit("x", 1)
        return time.perf_counter() - t

    took = run(with_batcher(rec, body, wait_s=0.2))
    assert 0.2 <= took < 1.0
    took = run(with_batcher(rec, body, wait_s=0.0))
    assert took < 0.2


def test_one_failing_item_leaves_its_batch_mates_their_results():
    rec = Recorder()

    async def body(b):
        return await asyncio.gather(b.submit(1, 1), b.submit("bad", 1), b.submit(3, 1), return_exceptions=True)

    one, bad, three = run(with_batcher(rec, body))
    assert one[0] == 1 and three[0] == 3 and isinstance(bad, ValueError)
    assert len(rec.batches) == 1


def test_past_max_queue_items_are_refused_at_once():
    rec = Recorder(delay=0.3)

    async def body(b):
        first = asyncio.ensure_future(b.submit("first", 1))
        await asyncio.sleep(0.05)  # taken into a (slow) batch: the queue is empty again
        queued = asyncio.ensure_future(b.submit("queued", 2))
        await asyncio.sleep(0)
        t = time.perf_counter()
        with pytest.raises(Overloaded, match="MAX_QUEUE is 2"):
            await b.submit("refused", 1)
        refused_after = time.perf_counter() - t
        return await first, await queued, refused_after

    first, queued, refused_after = run(with_batcher(rec, body, max_queue=2, wait_s=0.0))
    assert first[0] == "first" and queued[0] == "queued" and refused_after < 0.05


def test_a_crashing_batch_function_fails_its_items_not_the_batcher():
    calls = []

    def crash(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return items

    async def body(b):
        with pytest.raises(RuntimeError, match="bug"):
            await b.submit("x", 1)
        return await b.submit("y", 1)

    assert run(with_batcher(crash, body)) == "y"


def test_stop_runs_what_is_queued_then_refuses():
    rec = Recorder(delay=0.05)

    async def main():
        b = Batcher(rec, max_batch=2, wait_s=0.0, max_queue=100)
        b.start()
        pending = [asyncio.ensure_future(b.submit(i, 1)) for i in range(5)]
        await asyncio.sleep(0)
        await b.stop()
        with pytest.raises(Overloaded, match="shutting down"):
            await b.submit("late", 1)
        return [p.result()[0] for p in pending]

    assert run(main()) == [0, 1, 2, 3, 4]
