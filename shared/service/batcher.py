"""Dynamic batching: concurrent requests queue up and run as one call of up to MAX_BATCH images.

Like Triton's dynamic batcher: the first queued request waits at most BATCH_WAIT_MS (counted from its
arrival) for company, less when MAX_BATCH images are already queued; requests are never split, so one
larger than MAX_BATCH runs alone. One batch runs at a time, in a thread of its own, so the event loop
only queues and answers. The queue is bounded: past MAX_QUEUE waiting images a request is refused at
once (`Overloaded`), instead of waiting without bound; a request always gets in when the queue is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("aelink.service")


class Overloaded(Exception):
    """The queue is full (or the service is stopping): answer 503 with Retry-After."""


@dataclass(eq=False)
class _Entry:
    item: Any
    size: int
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class Batcher:
    """Queue items (each worth `size` images) for `run`, which takes a list of items in the batch thread
    and returns one result per item, in order: a value, or an exception that only that item raises."""

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], *, max_batch: int, wait_s: float,
                 max_queue: int, on_batch: Callable[[int, list[float]], None] | None = None,
                 on_depth: Callable[[int], None] | None = None, name: str = "batch") -> None:
        self.run, self.max_batch, self.wait_s, self.max_queue = run, max_batch, wait_s, max_queue
        self.on_batch, self.on_depth = on_batch, on_depth
        self.name = name
        self._entries: deque[_Entry] = deque()
        self._queued = 0  # images waiting (not yet taken into a batch)
        self._arrived: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: list[_Entry] = []
        self._stopping = False

    def start(self) -> None:
        """Start the batching task on the running event loop (the app's lifespan calls this)."""
        self._arrived, self._full = asyncio.Event(), asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._task = asyncio.get_running_loop().create_task(self._serve(), name=self.name)

    async def stop(self, drain_s: float = 30.0) -> None:
        """Refuse new items, run what is queued (for at most drain_s), then stop the thread."""
        self._stopping = True
        deadline = time.perf_counter() + drain_s
        running = self._task is not None and not self._task.done()
        while running and (self._entries or self._inflight) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for entry in [*self._inflight, *self._entries]:
            if not entry.future.done():
                entry.future.set_exception(Overloaded("the service is shutting down; retry shortly"))
        self._entries.clear()
        self._queued = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def call(self, fn: Callable[[], Any]) -> Any:
        """fn() in the batch thread (between batches): warm-up runs there, where the batches will."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def queued(self) -> int:
        return self._queued

    async def submit(self, item: Any, size: int) -> Any:
        """Queue the item and wait for its result (raised when it is an exception); Overloaded at once
        when the queue cannot take `size` more images."""
        if self._task is None:
            raise RuntimeError("Batcher.start() first")
        if self._stopping:
            raise Overloaded("the service is shutting down; retry shortly")
        if self._queued and self._queued + size > self.max_queue:
            raise Overloaded(f"{self._queued} images are already waiting (MAX_QUEUE is {self.max_queue});"
                             " retry shortly")
        entry = _Entry(item, size, asyncio.get_running_loop().create_future())
        self._entries.append(entry)
        self._queued += size
        self._arrived.set()
        if self._queued >= self.max_batch:
            self._full.set()
        if self.on_depth:
            self.on_depth(self._queued)
        result = await entry.future
        if isinstance(result, BaseException):
            raise result
        return result

    def _take(self) -> list[_Entry]:
        """Whole entries from the front, up to max_batch images (always at least one)."""
        batch, images = [], 0
        while self._entries and (not batch or images + self._entries[0].size <= self.max_batch):
            entry = self._entries.popleft()
            images += entry.size
            batch.append(entry)
        self._queued -= images
        if self._queued < self.max_batch:
            self._full.clear()
        if self.on_depth:
            self.on_depth(self._queued)
        return batch

    async def _serve(self) -> None:
        while True:
            if not self._entries:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            # Wait for company, counted from the oldest arrival: after a long batch, the queue that
            # built up meanwhile goes at once.
            left = self._entries[0].queued + self.wait_s - time.perf_counter()
            if left > 0 and self._queued < self.max_batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), left)
            batch = [e for e in self._take() if not e.future.done()]  # done: the client gave up
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[_Entry]) -> None:
        self._inflight = batch
        try:
            if self.on_batch:
                start = time.perf_counter()
                self.on_batch(sum(e.size for e in batch), [start - e.queued for e in batch])
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.run, [e.item for e in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} items gave {len(results)} results")
        except Exception as e:  # a bug in run: every item of the batch gets it (as a 500), the queue goes on
            log.exception("batch of %d items failed", len(batch))
            results = [e] * len(batch)
        for entry, result in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)
        self._inflight = []
