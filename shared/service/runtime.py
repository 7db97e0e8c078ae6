"""One half of the model, loaded, verified, warmed up and run for requests in dynamic batches.

The service hands in its own loader (`load_encoder` or `load_decoder`): this module imports neither half.

Running the half from a request (after `start()`, on the event loop):

- `await runtime.infer(x)`: float32 (N, *input_shape) -> the half's float32 outputs (N, ...), in one
  model call with other requests' arrays (shared.service.batcher).
- `await runtime.submit(job)`: a request's whole work (`Job`): parsing and checking its body, the
  model call, the batch's one entropy-coding pass and framing its answer all run in the batch thread,
  so the event loop only queues requests and sends answers. One job's failure never fails the others.

Every model call runs exactly MAX_BATCH rows (zeros pad the rest): PyTorch's CPU kernels round a
row's results differently at different batch sizes, but not by its place or batch-mates at one size,
so an image's output bits do not depend on whom it shared a batch with. Calls of that size run the
forward traced (shared.service.graph). `run(x)` is the plain synchronous call; not on the event loop.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import torch
from torch import nn

from shared.codec.config import ModelConfig
from shared.codec.rangecoder import CodeError
from shared.codec.tables import first_error
from shared.codec.weights import HalfWeights
from shared.service.batcher import Batcher, Overloaded
from shared.service.graph import traced_forward
from shared.service.jobs import Entropic, Job
from shared.service.problems import Problem

log = logging.getLogger("aelink.service")
RETRY_AFTER = "1"  # seconds: a full queue drains in well under that at the default settings
WARMUP_CALLS = 2  # the first calls of a shape are slow (every call has one shape); pay them before turning ready
# The event loop and the batch thread share the GIL; at Python's default 5 ms switch interval each waits up
# to 5 ms for the other. 0.5 ms: +4% to +7% compact32 decode req/s (64 clients, three interleaved rounds).
GIL_SWITCH_S = 0.0005


@dataclass(frozen=True)
class HalfSpec:
    """What makes a service the sender or the receiver."""

    half: str  # "encoder" or "decoder", also the weights file's stem
    load: Callable[[Path], tuple[nn.Module, HalfWeights]]
    input_shape: Callable[[ModelConfig], tuple[int, ...]]  # shape of one input item


class _Infer(Job):
    def __init__(self, x: np.ndarray) -> None:
        self.x, self.size = x, len(x)

    def prepare(self) -> np.ndarray:
        return self.x


def overloaded(detail: str) -> Problem:
    return Problem(503, "overloaded", detail, headers={"Retry-After": RETRY_AFTER})


class HalfRuntime:
    def __init__(self, spec: HalfSpec, path: Path, threads: int, *, max_batch: int = 16,
                 batch_wait_ms: float = 2.0, max_queue: int = 1024,
                 on_batch: Callable[[int, list[float]], None] | None = None,
                 on_depth: Callable[[int], None] | None = None) -> None:
        self.spec, self.path, self.threads = spec, path, threads
        self._limiter: anyio.CapacityLimiter | None = None
        self.module: nn.Module | None = None
        self.forward: Callable[[torch.Tensor], torch.Tensor] | None = None  # the module's, traced
        self.weights: HalfWeights | None = None
        self.ready = False
        self.not_ready_reason = "weights not loaded yet"
        self._lock = threading.Lock()  # one forward at a time: the threads setting bounds CPU use
        self.batcher = Batcher(self._run_jobs, max_batch=max_batch, wait_s=batch_wait_ms / 1000,
                               max_queue=max_queue, on_batch=on_batch, on_depth=on_depth,
                               name=f"{spec.half}-batch")

    def load(self) -> HalfWeights:
        """Load and verify the weights; a WeightsError (naming the file) stops start-up."""
        torch.set_num_threads(self.threads)
        self.module, self.weights = self.spec.load(self.path)
        self.forward = traced_forward(self.module, torch.zeros(self.batch_shape))
        self.not_ready_reason = "warming up"
        log.info("loaded %s %s (fingerprint %s) from %s", self.spec.half, self.config.name,
                 self.weights.fingerprint, self.path)
        return self.weights

    @property
    def config(self) -> ModelConfig:
        assert self.weights is not None, "load() first"
        return self.weights.config

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The shape of every model call: MAX_BATCH inputs."""
        return (self.batcher.max_batch, *self.spec.input_shape(self.config))

    def warm_up(self) -> None:
        try:
            # (an rd half's compiled coder was compiled at load, when its tables were checked)
            for _ in range(WARMUP_CALLS):
                self.run(np.zeros(self.batch_shape, np.float32))
        except Exception as e:  # keep serving /healthz; /readyz says why it never got ready
            self.not_ready_reason = f"warm-up failed: {e}"
            log.exception("warm-up failed")
            return
        # The loaded model, the app and its libraries live as long as the process: freezing them keeps
        # the collector from walking them all in each full collection, a pause (0.1-0.4 s measured under
        # load) that every queued request would wait out.
        gc.freeze()
        self.ready = True
        self.not_ready_reason = ""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, *input_shape) -> float32 outputs; call from a worker thread, not the event loop."""
        assert self.module is not None, "load() first"
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        forward = self.forward if x.shape == self.batch_shape else self.module  # traced at that shape
        with self._lock, torch.inference_mode():
            return forward(x).numpy()

    def start(self) -> None:
        """Start batching (on the event loop, from the app's lifespan)."""
        self._limiter = anyio.CapacityLimiter(self.threads)
        sys.setswitchinterval(GIL_SWITCH_S)
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    async def warm(self) -> None:
        """warm_up() in the batch thread (after start()), where requests will run."""
        await self.batcher.call(self.warm_up)

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in a worker thread, at most THREADS at a time: per-request parsing that must happen
        before a request can join the queue (JSON, multipart). Bounded, so that a flood of big bodies
        leaves the event loop its share of the GIL; past MAX_QUEUE requests waiting for one, a 503."""
        waiting = self._limiter.statistics().tasks_waiting
        if waiting >= self.batcher.max_queue:
            raise overloaded(f"{waiting} requests are already waiting to be parsed (MAX_QUEUE is"
                             f" {self.batcher.max_queue}); retry shortly")
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._limiter)

    async def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, *input_shape) -> outputs, run in a dynamic batch with other requests' inputs;
        a 503 Problem (with Retry-After) when the queue is full."""
        x = np.asarray(x, np.float32)
        if not len(x):
            raise ValueError("infer() needs at least one input")
        return await self.submit(_Infer(x))

    async def submit(self, job: Job) -> Any:
        """Run a request's job in a dynamic batch; its answer, or its own exception raised; a 503 Problem
        (with Retry-After) when the queue is full."""
        try:
            return await self.batcher.submit(job, job.size)
        except Overloaded as e:
            raise overloaded(str(e)) from None

    # Entropy coding with the tables both halves of an rd model hold: read-only, no lock; worker threads.

    def compress(self, latents: np.ndarray) -> list[bytes]:
        """float32 latents (N, *code_shape) -> one entropy-coded code each."""
        return self.module.entropy.compress(torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)))

    def decompress(self, payloads: tuple[bytes, ...]) -> np.ndarray:
        """Entropy-coded codes -> float32 latents (N, *code_shape); CodeError names a bad code."""
        return self.module.entropy.decompress(payloads).numpy()

    def decompress_each(self, payloads: tuple[bytes, ...]) -> tuple[np.ndarray, list[CodeError | None]]:
        """Entropy-coded codes -> (latents, per code None or its CodeError), in one pass."""
        latents, errors = self.module.entropy.decompress_each(payloads)
        return latents.numpy(), errors

    # The batch thread's work: each stage runs once for the batch; only when it fails, job by job.

    def _run_jobs(self, jobs: list[Job]) -> list[Any]:
        results: list[Any] = [None] * len(jobs)
        inputs: dict[int, np.ndarray] = {}
        coded: dict[int, tuple[bytes, ...]] = {}
        for i, job in enumerate(jobs):
            try:
                prepared = job.prepare()
            except Exception as e:
                results[i] = e
                continue
            if isinstance(prepared, Entropic):
                coded[i] = prepared.payloads
            else:
                inputs[i] = prepared
        for i, latents in self._decode_jobs(coded, results, jobs).items():
            try:
                inputs[i] = jobs[i].decoded(latents)
            except Exception as e:
                results[i] = e
        outputs = self._each(dict(sorted(inputs.items())), self._forward_all, results, jobs)
        wanted = {i: out for i, out in outputs.items() if jobs[i].entropy_out}
        codes = self._each(wanted, self._encode_all, results, jobs)
        for i, out in outputs.items():
            if results[i] is not None:
                continue
            try:
                results[i] = jobs[i].finish(out, codes.get(i))
            except Exception as e:
                results[i] = e
        return results

    def _each(self, parts: dict[int, Any], stage: Callable[[list[Any]], list[Any]], results: list[Any],
              jobs: list[Job]) -> dict[int, Any]:
        """Run a stage on all parts at once; if that fails, part by part, recording each failure."""
        if not parts:
            return {}
        try:
            return dict(zip(parts, stage(list(parts.values())), strict=True))
        except Exception as e:
            if len(parts) == 1:  # nothing to tell apart: the one job gets the error
                results[next(iter(parts))] = e
                return {}
        done = {}
        for i, part in parts.items():
            try:
                done[i] = stage([part])[0]
            except Exception as e:
                results[i] = e
        return done

    def _decode_jobs(self, coded: dict[int, tuple[bytes, ...]], results: list[Any],
                     jobs: list[Job]) -> dict[int, np.ndarray]:
        """Every job's entropy-coded codes in one decoding pass, which tells each code's error apart: a
        job with a code that does not decode gets its own answer (`undecodable`), the others go on."""
        if not coded:
            return {}
        try:
            latents, errors = self.decompress_each(tuple(p for part in coded.values() for p in part))
        except Exception as e:  # not a code's fault (the tables): every job gets it
            for i in coded:
                results[i] = e
            return {}
        done, start = {}, 0
        for i, part in coded.items():
            end = start + len(part)
            error = first_error(errors[start:end])
            if error is None:
                done[i] = latents[start:end]
            else:
                results[i] = jobs[i].undecodable(error)
            start = end
        return done

    def _forward_all(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        x = np.concatenate(parts) if len(parts) > 1 else parts[0]
        n, k = len(x), self.batcher.max_batch
        # Always calls of exactly max_batch rows (zeros pad the last): the kernels' arithmetic depends on
        # the batch's size, not on the other rows or a row's place, so an image gets the very same
        # output bits whoever it shares a batch with, or alone.
        padded = np.zeros((-(-n // k) * k, *x.shape[1:]), np.float32)
        padded[:n] = x
        out = np.concatenate([self.run(padded[i:i + k]) for i in range(0, len(padded), k)])[:n]
        return np.split(out, np.cumsum([len(p) for p in parts])[:-1])

    def _encode_all(self, parts: list[np.ndarray]) -> list[list[bytes]]:
        codes = self.compress(np.concatenate(parts) if len(parts) > 1 else parts[0])
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return [codes[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
