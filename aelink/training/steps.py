"""How a training step runs: on the calling thread, or with the batch split over threads; in fp32 or bf16.

Why threads. On our 2-core machines a seed step of 128 images is slowest with both cores as torch's
intra-op threads (every op split in two and joined, about thirty times a step), faster as two torchrun
processes (but every step waits for DDP's gloo all-reduce and for the slower process),
and fastest as two threads in one process that each run a whole forward and backward on half the batch
with one intra-op thread (`aelink bench speed`: "fp32" against "fp32-intra-op"; README, "Training
speed"). PyTorch lets go of the GIL inside each op and runs a CPU backward on the thread that asks for
it, so the two halves run side by side.

Each part's gradients come back from `torch.autograd.grad` and are summed here, part by part in order,
weighted by the part's share of the batch: the whole batch's mean gradient up to float rounding, and the
same sum on every run. A model that draws noise in its step (rd, vae) gets one generator per part,
seeded from the global generator on this thread, so a run (and a resumed one) draws the same noise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn

TERMS = ("loss", "bits", "kl")  # the terms a step reports (batch means), where the model has them


def cores() -> int:
    """The CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Steps:
    """Runs `step_model(x, target[, generator])` (a model's training terms) and its backward.

    With `shards` > 1 the batch splits into that many parts, one per thread (this one and shards - 1 in
    a pool); the gradients are set in each parameter's `.grad` (the caller sets them to None first).
    """

    def __init__(self, step_model: nn.Module, params: list[nn.Parameter], shards: int = 1,
                 bf16: bool = False) -> None:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, not {shards}")
        self.step_model, self.params, self.shards, self.bf16 = step_model, list(params), shards, bf16
        self.pool = ThreadPoolExecutor(shards - 1, thread_name_prefix="aelink-shard") if shards > 1 else None

    def run(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """Forward and backward of a batch; returns its terms' means (floats)."""
        if self.pool is None:  # backward() into .grad: under torchrun DDP's hooks average it there
            terms = self.terms(x, target)
            terms["loss"].backward()
            return {k: terms[k].item() for k in TERMS if k in terms}
        # an epoch's last batch may hold fewer images than there are threads: empty parts are left out
        parts = [(px, pt) for px, pt in zip(x.tensor_split(self.shards), target.tensor_split(self.shards),
                                            strict=True) if len(px)]
        # drawn here, in part order, so the noise each part gets does not depend on thread timing
        seeds = torch.randint(2**62, (len(parts),)).tolist()
        futures = [self.pool.submit(self.part, px, pt, len(x), s)
                   for (px, pt), s in zip(parts[1:], seeds[1:], strict=True)]
        results = [self.part(*parts[0], len(x), seeds[0])] + [f.result() for f in futures]
        for i, p in enumerate(self.params):
            found = [grads[i] for grads, _ in results if grads[i] is not None]
            if found:
                total = found[0]  # autograd.grad's own tensor: summing into it copies nothing
                for g in found[1:]:
                    total.add_(g)
                p.grad = total
        return {k: sum(terms[k] for _, terms in results) for k in results[0][1]}

    def terms(self, x: torch.Tensor, target: torch.Tensor, *generator: torch.Generator
              ) -> dict[str, torch.Tensor]:
        """The model's terms, in bf16 autocast if asked: entered on the thread that runs them (it is
        per thread)."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.step_model(x, target, *generator)

    def part(self, x: torch.Tensor, target: torch.Tensor, n: int, seed: int
             ) -> tuple[tuple[torch.Tensor | None, ...], dict[str, float]]:
        """One part's weighted gradients and terms (runs on a pool thread, or on the caller's)."""
        share = len(x) / n
        terms = self.terms(x, target, torch.Generator().manual_seed(seed))
        grads = torch.autograd.grad(terms["loss"] * share, self.params, allow_unused=True)
        return grads, {k: terms[k].item() * share for k in TERMS if k in terms}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def plan(threads: int | None, shards: int | None, world: int, batch: int) -> tuple[int, int]:
    """(step threads, intra-op threads for each) for one of `world` processes, each taking `batch`
    images of a global batch.

    By default a single process runs one step thread per core with one intra-op thread each; under
    torchrun (one process per core) a process runs one step thread, with `threads` intra-op threads if
    given (else torch's, which torchrun sets to 1). `shards` > 1 with `threads` gives each step thread
    threads // shards intra-op threads.
    """
    if world > 1:
        if shards and shards > 1:
            raise ValueError("--shards splits a batch over threads in one process; under torchrun use 1")
        return 1, threads or torch.get_num_threads()
    threads = threads or cores()
    shards = shards or min(threads, batch)
    if not 1 <= shards <= batch:
        raise ValueError(f"--shards {shards}: a batch of {batch} images splits over 1 to {batch} threads")
    return shards, max(1, threads // shards)


@functools.cache
def cpu() -> tuple[str, frozenset[str]]:
    """This CPU's model name and feature flags, from Linux's /proc/cpuinfo (x86 `flags`, Arm `Features`);
    elsewhere the platform's processor name and no flags."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = frozenset(value.split())
    return model, flags


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16; AMX CPUs have it too), where bf16
    autocast runs faster than fp32 instead of emulating it."""
    return "avx512_bf16" in cpu()[1]


def choose_bf16(requested: bool | None, kind: str, entropy_coded: bool) -> bool:
    """Whether a run's steps use bf16 autocast: as asked (--bf16 / --no-bf16), else for the seed kind on
    a CPU that multiplies bf16 natively. There the seed's step is much faster (`aelink bench speed`:
    "bf16" against "fp32") and over 50 epochs it learned as fp32 did, on three seeds (README, "Training
    speed"); the other kinds gain less and keep fp32 unless asked. rd models always keep fp32."""
    if requested and entropy_coded:  # the prior's likelihoods need fp32's range
        raise ValueError("--bf16 is for models without a prior (seed, compact, vae)")
    return requested if requested is not None else kind == "seed" and native_bf16()
